"""Peer benchmark: sslzoo's graph methods (``sslzoo._ops.graph``) beside scikit-learn's ``LabelPropagation`` and
``LabelSpreading`` (kNN kernel), on the same split and the same features, accuracy and wall time in one run.

    pip install -e ".[bench]"
    python benchmarks/graph_sklearn.py --dataset moons --seeds 5 --out benchmarks/results/graph_sklearn_moons.json
    python benchmarks/graph_sklearn.py --dataset mnist --labels 100 1000 --seeds 3 \\
        --out benchmarks/results/graph_sklearn_mnist.json

The split is sslzoo's for the seed (``sslzoo._datasets.split.initial_labels``, class-balanced): two-moons as the
``moons-6`` preset has it (1000 training and 1000 test points, noise 0.1, 3 labels per class; the
seed's draw) or MNIST (60,000 training images, the official 10,000 test images) projected on the top
``--pca`` principal axes of the training images (pixels / 255; the projection computed once and given to
both sides, not timed). The other training points are the unlabeled ones. Both sides get the same
hyper-parameters, scikit-learn's defaults for the kNN kernel unless given: ``n_neighbors=7``;
propagation ``max_iter=1000``; spreading ``alpha=0.2``, ``max_iter=30``; ``tol=1e-3``.

For each method it reports the accuracy on the unlabeled training points (the transduction) and on the
test points (each predicted from its ``n_neighbors`` nearest training points' distributions, as
scikit-learn's ``predict``), and the wall time of the fit (graph and propagation) and of the test
prediction. Ours runs in float32 distances and float64 propagation on the CPU with torch; scikit-learn's
on float64 arrays (its default). Both are held to ``--threads`` threads (torch's intra-op threads;
threadpoolctl for scikit-learn's BLAS and OpenMP), 1 by default as the other benchmarks here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.semi_supervised import LabelPropagation, LabelSpreading
from threadpoolctl import threadpool_limits

import sslzoo
from sslzoo._datasets.mnist import load_mnist
from sslzoo._datasets.moons import make_moons
from sslzoo._datasets.split import initial_labels
from sslzoo._ops import graph


def split(dataset: str, labels: int, seed: int, pca: int) -> dict[str, Any]:
    """Features (float32) of the training and test points, the labeled ids and the truth."""
    if dataset == "moons":
        x, y = make_moons(1000, 0.1, seed)
        x_test, y_test = make_moons(1000, 0.1, seed + 1_000_003)  # as sslzoo's moons dataset draws its test set
    else:
        x_train, y, x_test_raw, y_test = load_mnist()
        train = x_train.flatten(1).float() / 255.0
        test = x_test_raw.flatten(1).float() / 255.0
        x, x_test = graph.pca(train, pca), graph.pca(test, pca, fit_on=train)
    labeled = initial_labels(y, labels, seed, "balanced")
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test, "labeled": labeled}


def ours(method: str, data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    x, y, labeled = data["x"], data["y"], data["labeled"]
    started = time.perf_counter()
    g = graph.knn_graph(x, params["n_neighbors"])
    graph_s = time.perf_counter() - started
    classes = int(y.max()) + 1
    if method == "label_spreading":
        result = graph.label_spreading(g, labeled, y[labeled], classes, params["alpha"], params["max_iter"],
                                       params["tol"])
    else:
        result = graph.label_propagation(g, labeled, y[labeled], classes, params["max_iter"], params["tol"])
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    test = graph.predict(result.distributions, x, data["x_test"], params["n_neighbors"]).argmax(1)
    predict_s = time.perf_counter() - started
    return {"transduction": result.distributions.argmax(1).numpy(), "test": test.numpy(), "fit_s": fit_s,
            "graph_s": graph_s, "predict_s": predict_s, "iterations": result.iterations,
            "converged": result.converged, "edges": g.edges}


def scikit(method: str, data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    x = data["x"].double().numpy()
    y = np.full(len(x), -1)
    y[data["labeled"].numpy()] = data["y"][data["labeled"]].numpy()
    if method == "label_spreading":
        model = LabelSpreading(kernel="knn", n_neighbors=params["n_neighbors"], alpha=params["alpha"],
                               max_iter=params["max_iter"], tol=params["tol"])
    else:
        model = LabelPropagation(kernel="knn", n_neighbors=params["n_neighbors"], max_iter=params["max_iter"],
                                 tol=params["tol"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        model.fit(x, y)
        fit_s = time.perf_counter() - started
    started = time.perf_counter()
    test = model.predict(data["x_test"].double().numpy())
    predict_s = time.perf_counter() - started
    return {"transduction": model.transduction_, "test": test, "fit_s": fit_s, "predict_s": predict_s,
            "iterations": int(model.n_iter_), "converged": int(model.n_iter_) < params["max_iter"]}


def measure(method: str, side: str, data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    out = (ours if side == "sslzoo" else scikit)(method, data, params)
    y, labeled = data["y"].numpy(), data["labeled"].numpy()
    unlabeled = np.setdiff1d(np.arange(len(y)), labeled)
    out["transductive_accuracy"] = float((out.pop("transduction")[unlabeled] == y[unlabeled]).mean())
    out["test_accuracy"] = float((out.pop("test") == data["y_test"].numpy()).mean())
    out["wall_s"] = out["fit_s"] + out["predict_s"]
    return out


def defaults(method: str, given: dict[str, Any]) -> dict[str, Any]:
    base = {"n_neighbors": 7, "tol": 1e-3}
    base.update({"alpha": 0.2, "max_iter": 30} if method == "label_spreading" else {"max_iter": 1000})
    base.update({k: v for k, v in given.items() if v is not None and (k != "alpha" or method == "label_spreading")})
    return base


def summary(rows: list[dict[str, Any]]) -> str:
    lines = ["| dataset | labels | method | implementation | transductive acc. | test acc. | fit s | predict s |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["dataset"], r["labels"], r["method"], r["implementation"]) for r in rows},
                  key=lambda k: (k[0], k[1], k[2], k[3] != "sslzoo"))
    for key in keys:
        group = [r for r in rows if (r["dataset"], r["labels"], r["method"], r["implementation"]) == key]

        def stat(name: str, scale: float = 1.0, digits: int = 2, group: list[dict[str, Any]] = group) -> str:
            values = [scale * r[name] for r in group]
            spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
            return f"{statistics.mean(values):.{digits}f}{spread}"

        lines.append(f"| {key[0]} | {key[1]} | `{key[2]}` | {key[3]} | {stat('transductive_accuracy', 100)} % | "
                     f"{stat('test_accuracy', 100)} % | {stat('fit_s')} | {stat('predict_s')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["moons", "mnist"], default="moons")
    parser.add_argument("--labels", type=int, nargs="+", help="labeled points (moons: 6; mnist: 100 1000)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pca", type=int, default=50, help="mnist: principal axes")
    parser.add_argument("--methods", nargs="+", default=["label_propagation", "label_spreading"])
    parser.add_argument("--n-neighbors", type=int)
    parser.add_argument("--alpha", type=float)
    parser.add_argument("--max-iter", type=int)
    parser.add_argument("--tol", type=float)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("SSLZOO_BENCH_THREADS", "1")))
    parser.add_argument("--out", help="a JSON file for the rows and the machine")
    args = parser.parse_args(argv)
    command = "python benchmarks/graph_sklearn.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    given = {"n_neighbors": args.n_neighbors, "alpha": args.alpha, "max_iter": args.max_iter, "tol": args.tol}
    rows: list[dict[str, Any]] = []
    load = os.getloadavg()
    with threadpool_limits(args.threads):
        for labels in args.labels or ([6] if args.dataset == "moons" else [100, 1000]):
            for seed in range(args.seed, args.seed + args.seeds):
                data = split(args.dataset, labels, seed, args.pca)
                for method in args.methods:
                    params = defaults(method, given)
                    for side in ("sslzoo", "scikit-learn"):
                        row = {"dataset": args.dataset, "labels": labels, "seed": seed, "method": method,
                               "implementation": side, "params": params, **measure(method, side, data, params)}
                        rows.append(row)
                        print(f"{args.dataset} {labels} seed {seed} {method:<17} {side:<12} "
                              f"transductive {100 * row['transductive_accuracy']:.2f} %  "
                              f"test {100 * row['test_accuracy']:.2f} %  fit {row['fit_s']:.2f} s  "
                              f"predict {row['predict_s']:.2f} s  ({row['iterations']} iterations)", flush=True)
    table = summary(rows)
    print(table)
    if args.out:
        machine = {"cpus": os.cpu_count(), "threads": args.threads, "load_before": load, "load_after": os.getloadavg(),
                   "processor": platform.processor() or platform.machine()}
        versions = {"sslzoo": sslzoo.__version__, "torch": torch.__version__, "scikit-learn": sklearn.__version__,
                    "numpy": np.__version__, "python": platform.python_version()}
        Path(args.out).write_text(json.dumps({"command": command, "machine": machine, "versions": versions,
                                              "rows": rows, "table": table}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
