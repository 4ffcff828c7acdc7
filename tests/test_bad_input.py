"""Bad input costs nothing: a one-line error (exit code 1, no traceback) before any run starts, or
a refusal, and every record and file that existed before is intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry, reset_default_registry
from sslzoo._datasets.mnist import load_mnist
from sslzoo._planning.bench import DEFAULT_BENCH
from sslzoo.errors import DataError, PluginWarning

FAST = ["--dataset", "moons", "--labels", "10", "--epochs", "2", "-q"]
HUGE = "99999999999999999999"


class Observer:
    """Notes every run that starts."""

    def __init__(self) -> None:
        self.started: list[dict] = []

    @hookimpl
    def run_started(self, run: dict) -> None:
        self.started.append(run)


@pytest.fixture
def observer():
    watch = Observer()
    reset_default_registry(Registry(make_plugins(load="", extra=(watch,))))
    return watch


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
    assert result.output.strip().splitlines() == [result.output.strip()], result.output
    assert fragment in result.output, result.output


@pytest.fixture
def existing(tmp_path):
    """A store holding a finished run's record and a --json-out file from an earlier bench."""
    store, json_file = tmp_path / "store", tmp_path / "earlier.json"
    first = invoke("bench", "-s", "supervised", *FAST, "--out", str(store), "--json-out", str(json_file))
    assert first.exit_code == 0, first.output
    return store, json_file, (store / "records.jsonl").read_bytes(), json_file.read_bytes()


@pytest.mark.parametrize(("args", "fragment"), [
    (["-s", "self_training", "-o", "threshold=nan"], "option threshold='nan' of strategy 'self_training' is not "
                                                     "allowed: it must be a finite number"),
    (["-s", "supervised", "-o", "lr=nan"], "option lr='nan' of strategy 'supervised' is not allowed"),
    (["-s", "supervised", "-o", "weight_decay=nan"], "option weight_decay='nan'"),
    (["-s", "supervised", "-o", "lr=inf"], "it must be a finite number"),
    (["-s", "supervised", "--seed", HUGE], f"--seed {HUGE}: seeds must lie between 0 and 4294967295"),
    (["-s", "supervised", "--seed", "-1"], "seeds must lie between 0 and"),
    (["-s", "supervised", "--seeds", HUGE], f"--seeds {HUGE} is too many: at most 1000 seeds"),
    (["-s", "bald", "-o", f"passes={HUGE}"], f"option passes='{HUGE}' of strategy 'bald' is not allowed: it must "
                                              "be between 1 and 10000"),
    (["-s", "random", "-o", f"budget={HUGE}"], "it must fit in 64 bits"),
    (["-s", "supervised", "-s", "supervised"], "strategy 'supervised' is given twice"),
    (["-s", "supervised", "-o", "epochs=ten", "--epochs", "5"], "--epochs 5 and -o epochs=ten both set epochs"),
    (["-s", "pseudo_label", "-o", "pseudo_label.epochs=3", "--epochs", "5"], "both set epochs; give one of them"),
])
def test_bad_input_is_refused_before_any_run_and_nothing_is_lost(args, fragment, existing, observer):
    store, json_file, records, earlier = existing
    flags = [a for a in FAST if a not in ("--epochs", "2")] if "--epochs" in args else FAST
    result = invoke("bench", *args, *flags, "--out", str(store), "--resume", "--json-out", str(json_file))
    one_line_error(result, fragment)
    assert observer.started == []
    assert (store / "records.jsonl").read_bytes() == records and json_file.read_bytes() == earlier


@pytest.mark.parametrize(("target", "fragment"), [
    ("no/such/dir/r.json", "the directory {tmp}/no/such/dir does not exist"),
    ("", "is a directory; give a file name such as"),
])
def test_an_unwritable_json_path_is_refused_before_any_run(target, fragment, tmp_path, observer):
    result = invoke("bench", "-s", "supervised", *FAST, "--json-out", str(tmp_path / target))
    one_line_error(result, fragment.format(tmp=tmp_path))
    assert observer.started == []


def test_json_records_are_replaced_whole_after_each_run(tmp_path):
    out = tmp_path / "records.json"
    result = invoke("bench", "-s", "supervised", "--seeds", "2", *FAST, "--json-out", str(out))
    assert result.exit_code == 0, result.output
    assert [r["seed"] for r in json.loads(out.read_text())] == [0, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["records.json"]  # no temporary file left


# -- MNIST files -------------------------------------------------------------------------------------
def _idx(kind: int, dims: list[int], payload: bytes) -> bytes:
    return bytes([0, 0, 8, kind]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload


def _mnist_root(root: Path, labels: bytes = bytes(range(10)) * 2) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 20), ("t10k", 10)):
        pixels = bytes(range(256)) * 3 * n + bytes(16 * n)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(_idx(3, [n, 28, 28], pixels))
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(_idx(1, [n], labels[:n]))
    return raw


def test_a_valid_torchvision_root_loads(tmp_path):
    _mnist_root(tmp_path)
    x_train, y_train, x_test, y_test = load_mnist(data_dir=tmp_path)
    assert x_train.shape == (20, 1, 28, 28) and y_test.tolist() == list(range(10))


def _label_200(raw: Path) -> None:
    path = raw / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[8 + 5] = 200
    path.write_bytes(bytes(data))


def _bad_magic(raw: Path) -> None:
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(b"\0\0\x09\x03" + path.read_bytes()[4:])


def _zero_header(raw: Path) -> None:
    path = raw / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes(8) + path.read_bytes()[8:])


def _truncated(raw: Path) -> None:
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize(("corrupt", "fragment"), [
    (_label_200, "train-labels-idx1-ubyte has label 200 at index 5; MNIST labels are the digits 0-9"),
    (_bad_magic, "train-images-idx3-ubyte has a corrupted header: magic number 0x00000903, expected 0x00000803"),
    (_zero_header, "t10k-labels-idx1-ubyte has a corrupted header: magic number 0x00000000, expected 0x00000801"),
    (_truncated, "train-images-idx3-ubyte is truncated: 1000 bytes, its header announces 20 images (15696 bytes)"),
])
def test_a_broken_mnist_file_is_named_with_its_problem_before_any_run(corrupt, fragment, tmp_path, observer):
    corrupt(_mnist_root(tmp_path))
    with pytest.raises(DataError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_mnist(data_dir=tmp_path)
    result = invoke("bench", "-s", "supervised", "--labels", "10", "--epochs", "1", "-q", "--data-dir", str(tmp_path))
    one_line_error(result, fragment)
    assert str(tmp_path / "MNIST" / "raw") in result.output
    assert observer.started == []


# -- the store lock ----------------------------------------------------------------------------------
HOLD = """import sys, time
from sslzoo._results.store import RecordStore
with RecordStore(sys.argv[1]).lock():
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_writer_on_one_out_directory_is_refused_and_a_killed_ones_lock_is_gone(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = invoke("bench", "-s", "supervised", *FAST, "--out", str(out))
        one_line_error(result, f"{out}: another sslzoo bench is writing to this directory")
        assert not (out / "records.jsonl").exists()
    finally:
        holder.kill()  # as a killed run: no chance to clean up
        holder.wait()
    result = invoke("bench", "-s", "supervised", *FAST, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert len((out / "records.jsonl").read_text().splitlines()) == 1


def test_a_preset_with_several_label_counts_locks_its_whole_out_directory(tmp_path):
    from sslzoo._results.store import RecordStore

    with RecordStore(tmp_path).lock():
        result = invoke("bench", "--preset", "mnist-tiny", "--ci", "-q", "--out", str(tmp_path))
    one_line_error(result, "another sslzoo bench is writing to this directory")


# -- the results page --------------------------------------------------------------------------------
def test_results_never_overwrites_a_page_it_did_not_write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# my own notes\n")
    one_line_error(invoke("results"), "benchmarks/results: no such results directory")
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    one_line_error(invoke("results"), "docs/results.md: exists and was not written by `sslzoo results`")
    assert page.read_text() == "# my own notes\n"
    assert not (tmp_path / "docs" / "results").exists()


def test_records_of_a_plain_run_are_not_published_as_a_presets(tmp_path):
    plain = invoke("bench", "-s", "supervised", *FAST, "--out", str(tmp_path / "resx" / "moons-6"))
    assert plain.exit_code == 0, plain.output
    result = invoke("results", "--results", str(tmp_path / "resx"), "--out", str(tmp_path / "page.md"))
    one_line_error(result, "moons-6/records.jsonl:1: a record of a run without --preset, not of preset 'moons-6'")
    assert not (tmp_path / "page.md").exists()


def test_a_preset_run_with_other_labels_is_not_published_as_the_presets(tmp_path):
    other = invoke("bench", "--preset", "moons-6", "--ci", "-s", "supervised", "--labels", "10", "-q",
                   "--out", str(tmp_path / "resx" / "moons-6"))
    assert other.exit_code == 0, other.output
    result = invoke("results", "--results", str(tmp_path / "resx"), "--out", str(tmp_path / "page.md"))
    one_line_error(result, "strategy 'supervised' with 10 labels is not a run of preset 'moons-6:ci'")


# -- plugins, the registry and the Python API --------------------------------------------------------
def test_an_unmatched_plugin_name_warns():
    with pytest.warns(PluginWarning, match="SSLZOO_LOAD_PLUGINS names 'sslzoo-nonexist', which is no installed"):
        make_plugins(load="sslzoo-nonexist")
    done = subprocess.run([sys.executable, "-m", "sslzoo", "models"], capture_output=True, text=True,
                          env={**os.environ, "SSLZOO_LOAD_PLUGINS": "sslzoo-nonexist"})
    assert done.returncode == 0 and "cnn" in done.stdout
    assert done.stderr.strip().startswith("warning: SSLZOO_LOAD_PLUGINS names 'sslzoo-nonexist'"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_models_register_with_the_keyword_the_hookspec_documents():
    from sslzoo._contract import hookspecs
    class Models:
        @hookimpl
        def register_models(self, register):
            register("tiny", lambda shape, classes: None, summary="a tiny model")

    assert 'register(name, build, summary="")' in hookspecs.register_models.__doc__
    reset_default_registry(Registry(make_plugins(load="", extra=(Models(),))))
    assert sslzoo.get_model("tiny").summary == "a tiny model"
    assert "a tiny model" in invoke("models").output


def test_the_api_and_the_command_run_the_same_default_comparison(monkeypatch):
    from sslzoo._cli import main as cli
    api_plan: list = []
    sslzoo.run(plan=lambda built: api_plan.extend(built) or [])
    cli_plan: list = []
    real = cli.run_plan

    def capture(*args, **kwargs):
        given = kwargs["on_plan"]
        kwargs["on_plan"] = lambda built, store: cli_plan.extend(built) or given([], store)
        return real(*args, **kwargs)

    monkeypatch.setattr(cli, "run_plan", capture)
    assert invoke("bench", "-q").exit_code == 0
    described = [[(spec.strategy, spec.dataset, spec.labels, spec.seed, strategy.resolved_options())
                  for spec, strategy in plan] for plan in (api_plan, cli_plan)]
    assert described[0] == described[1]
    assert [s for s, *_ in described[0]] == list(DEFAULT_BENCH["strategies"])
    pseudo = next(options for s, *_, options in described[0] if s == "pseudo_label")
    assert (pseudo["epochs"], pseudo["t1"], pseudo["t2"]) == (20, 4, 12)  # the scaled schedule, not the paper's
