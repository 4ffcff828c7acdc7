"""sslzoo._ops.graph: the chunked kNN search, the symmetric sparse graph, label propagation and spreading
(against scikit-learn where it is installed), and the graph pseudo-labelers as strategies."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import sslzoo
from sslzoo._datasets.moons import make_moons
from sslzoo._datasets.split import initial_labels
from sslzoo._engine.run import Run, RunSpec
from sslzoo._ops import graph
from sslzoo.errors import OptionError
from sslzoo.testing import TINY_DATA, check_strategy, tiny_options, tiny_run


def brute_knn(x: torch.Tensor, k: int, queries: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    q = x if queries is None else queries
    d = torch.cdist(q.double(), x.double()).square()
    if queries is None:
        d.fill_diagonal_(torch.inf)
    return d.topk(k, dim=1, largest=False)


@pytest.mark.parametrize(("n", "dims", "elements"), [(700, 2, None), (700, 2, 5000), (3001, 20, None), (65, 3, 64)])
def test_knn_finds_the_nearest_rows_whatever_the_tiles(n, dims, elements):
    x = torch.randn(n, dims, generator=torch.Generator().manual_seed(n))
    dist, index = graph.knn(x, 7, elements=elements)
    want = brute_knn(x, 7)
    assert torch.equal(index, want.indices)
    assert torch.allclose(dist.double(), want.values, atol=1e-4)
    queries = torch.randn(50, dims, generator=torch.Generator().manual_seed(1))
    _, index = graph.knn(x, 5, queries=queries, elements=elements)
    assert torch.equal(index, brute_knn(x, 5, queries).indices)


def test_knn_cuts_k_to_the_rows_there_are():
    x = torch.randn(4, 2)
    dist, index = graph.knn(x, 10)
    assert index.shape == (4, 3) and not (index == torch.arange(4).unsqueeze(1)).any()
    assert graph.knn(x[:1], 3)[1].shape == (1, 0)


def test_the_graph_is_symmetric_without_self_loops_and_holds_every_knn_edge():
    x, _ = make_moons(400, 0.1, 0)
    for kernel in ("knn", "rbf"):
        g = graph.knn_graph(x, 7, kernel=kernel, gamma=20.0)
        w = g.dense()
        assert torch.equal(w, w.T)
        assert not w.diagonal().any()
        _, index = graph.knn(x, 7)
        assert (w[torch.arange(400).repeat_interleave(7), index.flatten()] > 0).all()
        assert 400 * 7 <= g.edges <= 2 * 400 * 7 and g.edges == int((w > 0).sum())
        if kernel == "knn":
            assert set(g.values.tolist()) == {1.0}
        else:
            d = torch.cdist(x.double(), x.double()).square()
            assert torch.allclose(w[w > 0], torch.exp(-20.0 * d[w > 0]), atol=1e-5)


def test_rows_of_the_propagation_matrices_and_distributions_sum_to_one():
    x, y = make_moons(300, 0.1, 1)
    g = graph.knn_graph(x, 7)
    degrees = g.degrees()
    assert torch.allclose(g.dense().sum(1), degrees)
    transition = g.csr(g.values.double() / degrees[g.rows]).to_dense()
    assert torch.allclose(transition.sum(1), torch.ones(300, dtype=torch.float64))
    seeds = torch.tensor([0, 1, 2, 3])
    for result in (graph.label_propagation(g, seeds, y[seeds], 2), graph.label_spreading(g, seeds, y[seeds], 2)):
        sums = result.distributions.sum(1)
        assert torch.allclose(sums[result.reached], torch.ones(int(result.reached.sum()), dtype=torch.float64))
        assert ((result.distributions >= 0) & (result.distributions <= 1)).all()


def test_propagation_clamps_the_labels_and_leaves_unreached_nodes_empty():
    x = torch.tensor([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])  # two components, labels in the first only
    g = graph.knn_graph(x, 2)
    seeds, labels = torch.tensor([0]), torch.tensor([1])
    for result in (graph.label_propagation(g, seeds, labels, 2), graph.label_spreading(g, seeds, labels, 2)):
        assert result.reached.tolist() == [True] * 3 + [False] * 3
        assert result.labels()[1][:3].tolist() == [1, 1, 1]
        assert not result.distributions[3:].any()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from /proc (Linux)")
def test_no_dense_n_by_n_matrix_is_built_for_a_large_graph():
    """knn_graph over 25,000 points keeps the process under 1.2 GB; one dense 25,000² float32 matrix alone
    would take 2.5 GB. Run in a fresh interpreter so that its peak memory is this graph's: the peak is its
    VmHWM, which starts afresh at exec (getrusage's ru_maxrss can carry the forking test process's size)."""
    code = """
import json, torch
import sslzoo
from sslzoo._ops import graph
from sslzoo._engine.run import Run, RunSpec
torch.manual_seed(0)
x = torch.randn(25000, 4)
g = graph.knn_graph(x, 7)
result = graph.label_spreading(g, torch.arange(10), torch.arange(10) % 3, 3)
status = open("/proc/self/status").read()
peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"edges": g.edges, "peak_kb": peak_kb, "shape": list(result.distributions.shape)}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     timeout=600).stdout)
    assert out["shape"] == [25000, 3] and 25000 * 7 <= out["edges"] <= 2 * 25000 * 7
    assert out["peak_kb"] < 1.2 * 2**20, f"peak memory {out['peak_kb'] / 2**20:.2f} GB"


def test_no_tile_holds_more_distances_than_asked(monkeypatch):
    shapes = []
    addmm = torch.addmm

    def spy(*args, **kwargs):
        out = addmm(*args, **kwargs)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(graph.torch, "addmm", spy)
    graph.knn(torch.randn(5000, 4), 7, elements=2**16)
    assert shapes and max(a * b for a, b in shapes) <= 2**16 and len(shapes) > 1


def test_pca_matches_the_principal_axes_up_to_sign_and_standardize_scales():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 6, generator=g) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    z = graph.pca(x, 2)
    centred = (x - x.mean(0)).double()
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    want = centred @ vh[:2].T
    assert torch.allclose(z.double().abs(), want.abs(), atol=1e-3)
    s = graph.standardize(torch.cat([x, torch.ones(500, 1)], 1))
    assert torch.allclose(s.std(0, correction=0)[:6], torch.ones(6), atol=1e-4) and not s[:, 6].any()


@pytest.mark.parametrize("method", ["label_propagation", "label_spreading"])
def test_propagation_finds_the_two_moons_from_three_labels_each(method):
    x, y = make_moons(1000, 0.1, 0)
    seeds = initial_labels(y, 6, 0, "balanced")
    g = graph.knn_graph(x, 10, kernel="rbf", gamma=100.0)
    if method == "label_propagation":
        result = graph.label_propagation(g, seeds, y[seeds], 2, max_iter=10000)
    else:
        result = graph.label_spreading(g, seeds, y[seeds], 2, alpha=0.99, max_iter=1000)
    assert result.converged
    assert float((result.labels()[1] == y).double().mean()) >= 0.99


def test_bad_seeds_labels_and_alpha_are_errors():
    g = graph.knn_graph(torch.randn(20, 2), 3)
    with pytest.raises(ValueError, match="seed positions"):
        graph.label_propagation(g, torch.tensor([25]), torch.tensor([0]), 2)
    with pytest.raises(ValueError, match="labels must lie"):
        graph.label_spreading(g, torch.tensor([1]), torch.tensor([2]), 2)
    with pytest.raises(ValueError, match="alpha"):
        graph.label_spreading(g, torch.tensor([1]), torch.tensor([0]), 2, alpha=1.0)


# -- agreement with scikit-learn (the test extra) -----------------------------------------------------

@pytest.mark.parametrize("method", ["label_propagation", "label_spreading"])
def test_same_distributions_as_scikit_learn_on_the_same_graph(method):
    """Given our graph as a callable kernel, scikit-learn's estimator makes the same iterations: the same
    number of them and the same label distributions."""
    semi = pytest.importorskip("sklearn.semi_supervised")
    x, y = make_moons(300, 0.1, 2)
    seeds = initial_labels(y, 10, 2, "random")
    g = graph.knn_graph(x, 7)
    w = g.dense().numpy()
    partial = torch.full((300,), -1)
    partial[seeds] = y[seeds]
    estimator = (semi.LabelPropagation if method == "label_propagation" else semi.LabelSpreading)(
        kernel=lambda a, b: w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its ConvergenceWarning, its division of empty rows
        estimator.fit(x.double().numpy(), partial.numpy())
    ours = getattr(graph, method)(g, seeds, y[seeds], 2)
    assert ours.iterations == estimator.n_iter_
    assert torch.allclose(ours.distributions, torch.from_numpy(estimator.label_distributions_), atol=1e-10)


@pytest.mark.parametrize("method", ["label_propagation", "label_spreading"])
def test_as_accurate_as_scikit_learns_knn_estimator_on_two_moons(method):
    """Over 5 seeds of the moons-6 split, with scikit-learn's defaults on both sides (kNN kernel, 7
    neighbours; its own graph is directed and holds each point among its neighbours)."""
    semi = pytest.importorskip("sklearn.semi_supervised")
    ours, theirs = [], []
    for seed in range(5):
        x, y = make_moons(1000, 0.1, seed)
        seeds = initial_labels(y, 6, seed, "balanced")
        partial = torch.full((1000,), -1)
        partial[seeds] = y[seeds]
        estimator = (semi.LabelPropagation if method == "label_propagation" else semi.LabelSpreading)(
            kernel="knn", n_neighbors=7)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(x.double().numpy(), partial.numpy())
        theirs.append(float((torch.from_numpy(estimator.transduction_) == y).double().mean()))
        result = getattr(graph, method)(graph.knn_graph(x, 7), seeds, y[seeds], 2)
        ours.append(float((result.labels()[1] == y).double().mean()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    assert mean(ours) >= mean(theirs) - 0.01, (ours, theirs)


# -- the strategies ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "options"), [
    ("margin+label_spreading", {}),
    ("entropy+label_propagation", {"criterion": "threshold", "max_iter": 200}),
    ("margin>label_propagation", {"max_iter": 200}),
    ("label_spreading", {"features": "model", "criterion": "k_best", "k_best": 20, "max_rounds": 3}),
    ("label_propagation", {"standardize": True, "pca": 1, "kernel": "rbf", "criterion": "threshold",
                           "max_rounds": 3, "max_iter": 200}),
])
def test_graph_strategies_honour_the_contract_in_compositions_and_with_options(name, options):
    check_strategy(name, **options)


def test_a_round_pseudo_labels_every_reached_pool_id_with_its_propagated_label():
    run = tiny_run("label_propagation", kernel="rbf", gamma=100.0, n_neighbors=10, max_iter=10000)
    ledger, judge = run.job.data.ledger, run.job.judge
    pseudo = ledger.pseudo()
    assert run.record["termination"] in ("pool_empty", "max_rounds")
    assert pseudo.numel() == run.record["curve"][-1]["pseudo_labels"] > 150
    assert float(judge.correct(pseudo, ledger.target[pseudo]).double().mean()) > 0.9
    assert (ledger.round[pseudo] == 1).all() and (ledger.weight[pseudo] == 1).all()
    assert [e["round"] for e in run.record["curve"]] == [0, 1]


def test_criteria_accept_what_they_say():
    run = tiny_run("label_spreading", criterion="k_best", k_best=7, max_rounds=2)
    assert [e["pseudo_labels"] for e in run.record["curve"]] == [0, 7, 14]
    run = tiny_run("label_propagation", criterion="threshold", threshold=0.99, weighting="confidence")
    ledger = run.job.data.ledger
    pseudo = ledger.pseudo()
    assert (ledger.confidence[pseudo] >= 0.99).all()
    assert torch.equal(ledger.weight[pseudo], ledger.confidence[pseudo])


def test_the_inputs_graph_is_built_once_per_run(monkeypatch):
    built = []
    knn_graph = graph.knn_graph

    def spy(*args, **kwargs):
        built.append(args[0].shape)
        return knn_graph(*args, **kwargs)

    monkeypatch.setattr(graph, "knn_graph", spy)
    for features, builds in (("inputs", 1), ("model", 3)):
        built.clear()
        options = tiny_options("label_spreading", features=features, criterion="k_best", k_best=5, max_rounds=3)
        spec = RunSpec(strategy="label_spreading", dataset="moons", labels=10, device="cpu", split="random",
                       options=options, dataset_options=dict(TINY_DATA))
        record = Run(spec, sslzoo.create_strategy("label_spreading", **options)).execute()
        assert len(built) == builds and record["curve"][-1]["pseudo_labels"] == 15
    assert built[0][1] == 10  # features=model: the moons_mlp's last hidden layer


@pytest.mark.parametrize(("options", "fragment"), [
    ({"alpha": 1.0}, "strictly between 0 and 1"),
    ({"alpha": 0.0}, "strictly between 0 and 1"),
    ({"n_neighbors": 0}, "at least 1"),
    ({"kernel": "gaussian"}, "one of 'knn', 'rbf'"),
    ({"criterion": "best"}, "one of 'all', 'threshold', 'k_best'"),
    ({"threshold": 1.5}, "between 0.0 and 1.0"),
])
def test_options_are_validated(options, fragment):
    with pytest.raises(OptionError, match=fragment):
        sslzoo.create_strategy("label_spreading", **options)


def test_a_pca_wider_than_the_inputs_is_an_error_before_training():
    with pytest.raises(OptionError, match="pca=3 .* the inputs have 2 features"):
        tiny_run("label_propagation", pca=3)


def test_both_are_listed_as_semi_supervised_with_their_papers():
    from click.testing import CliRunner

    from sslzoo._cli.main import main

    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(main, ["strategies", "--json"]).output)}
    assert rows["label_propagation"]["family"] == rows["label_spreading"]["family"] == "ssl"
    assert "Zhu and Zoubin Ghahramani" in rows["label_propagation"]["paper"]
    assert "Local and Global Consistency" in rows["label_spreading"]["paper"]
    defaults = {o["name"]: o["default"] for o in rows["label_spreading"]["options"]}
    assert (defaults["alpha"], defaults["max_iter"], defaults["n_neighbors"], defaults["kernel"]) == (0.2, 30, 7, "knn")
    defaults = {o["name"]: o["default"] for o in rows["label_propagation"]["options"]}
    assert (defaults["max_iter"], defaults["tol"], defaults["n_neighbors"]) == (1000, 1e-3, 7)
