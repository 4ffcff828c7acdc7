"""Extension points beyond strategies: plugins that add datasets and models, plugins that observe
runs, and ``SSLZOO_TRACE_PLUGINS=1``, which prints each hook call and its plugin to stderr."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslzoo._cli.main import main
from sslzoo._contract.plugins import make_plugins
from tests.plugin_helpers import install_fake_distribution

BLOBS_PLUGIN = """
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import sslzoo


@dataclass
class BlobsOptions:
    n_train: int = field(default=300, metadata={"min": 3, "help": "training samples"})
    n_test: int = field(default=300, metadata={"min": 3, "help": "test samples"})
    spread: float = field(default=0.3, metadata={"min": 0.0, "help": "std of each blob"})


class Blobs(sslzoo.Dataset):
    name = "blobs"
    summary = "three gaussian blobs in 2-D, generated per seed"
    num_classes = 3
    default_model = "blobs_mlp"
    train_defaults = {"epochs": 30, "batch_size": 16, "lr": 0.05, "optimizer": "adam"}
    Options = BlobsOptions

    def load(self, seed: int) -> sslzoo.Arrays:
        generator = torch.Generator().manual_seed(seed)
        centers = torch.tensor([[0.0, 2.0], [-2.0, -1.0], [2.0, -1.0]])

        def draw(n):
            y = torch.arange(n) % 3
            return centers[y] + self.options.spread * torch.randn(n, 2, generator=generator), y

        x_train, y_train = draw(self.options.n_train)
        x_test, y_test = draw(self.options.n_test)
        return sslzoo.Arrays(x_train, y_train, x_test, y_test)


def blobs_mlp(input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(input_shape[0], 16), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                               torch.nn.Linear(16, num_classes))


@sslzoo.hookimpl
def register_datasets(register: Callable[[type], None]) -> None:
    register(Blobs)


@sslzoo.hookimpl
def register_models(register: Callable[..., None]) -> None:
    register("blobs_mlp", blobs_mlp, "2-16-3 ReLU MLP with dropout 0.1")
"""

OBSERVER_PLUGIN = """
import logging

import sslzoo

log = logging.getLogger("sslzoo_observer")


@sslzoo.hookimpl
def run_started(run):
    log.info("start %s on %s, seed %d", run["strategy"], run["dataset"], run["seed"])


@sslzoo.hookimpl
def round_ended(run, entry):
    log.info("round %d of %s: %d labels, test accuracy %.3f", entry["round"], run["strategy"],
             entry["labels"], entry["test_accuracy"])


@sslzoo.hookimpl
def run_ended(record):
    log.info("end %s: %s after %d rounds", record["strategy"], record["termination"], len(record["curve"]))
"""

AL_BENCH = ["-s", "margin", "--dataset", "moons", "--labels", "10", "-d", "n_train=100", "-d", "n_test=100",
            "--epochs", "2", "--query-size", "5", "--budget", "20", "--quiet", "--json"]


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("sslzoo_fake_blobs", "sslzoo_fake_observer"):
        sys.modules.pop(name, None)


def invoke(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_a_plugin_adds_a_dataset_and_a_model_that_bench_runs_on(site, monkeypatch):
    install_fake_distribution(site, "sslzoo-blobs", "sslzoo_fake_blobs", BLOBS_PLUGIN)
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "sslzoo-blobs")
    (row,) = [d for d in json.loads(invoke("datasets", "--json").stdout) if d["name"] == "blobs"]
    assert row["plugin"] == "sslzoo-blobs (sslzoo-blobs)" and row["default_model"] == "blobs_mlp"
    assert [o["name"] for o in row["options"]] == ["n_train", "n_test", "spread"]
    assert "sslzoo-blobs (sslzoo-blobs)" in invoke("models").stdout
    plugins = {p["name"]: p for p in json.loads(invoke("plugins", "--json").stdout)}
    assert plugins["sslzoo-blobs"]["hooks"] == ["register_datasets", "register_models"]

    result = invoke("bench", "-s", "supervised", "-s", "bald", "--dataset", "blobs", "--labels", "6",
                    "-d", "n_train=150", "-d", "spread=0.4", "--budget", "12", "--query-size", "3", "-o", "passes=4",
                    "--quiet", "--json")
    records = json.loads(result.stdout)
    assert [r["strategy"] for r in records] == ["supervised", "bald"]
    for record in records:
        assert record["dataset"] == "blobs" and record["model"] == "blobs_mlp"
        assert record["dataset_options"] == {"n_train": 150, "n_test": 300, "spread": 0.4}
        assert record["test_accuracy"] >= 0.9, record["curve"]  # well-separated blobs: chance is 1/3
    assert [e["labels"] for e in records[-1]["curve"]] == [6, 9, 12]


def test_an_observer_plugin_logs_every_round_end(site, monkeypatch, caplog):
    install_fake_distribution(site, "sslzoo-observer", "sslzoo_fake_observer", OBSERVER_PLUGIN)
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "sslzoo-observer")
    caplog.set_level(logging.INFO, logger="sslzoo_observer")
    (record,) = json.loads(invoke("bench", *AL_BENCH).stdout)
    logged = [r.getMessage() for r in caplog.records if r.name == "sslzoo_observer"]
    assert logged == [
        "start margin on moons, seed 0",
        *(f"round {e['round']} of margin: {e['labels']} labels, test accuracy {e['test_accuracy']:.3f}"
          for e in record["curve"]),
        "end margin: budget after 3 rounds",
    ]
    assert [e["labels"] for e in record["curve"]] == [10, 15, 20]


def test_trace_prints_each_hook_call_and_its_plugin_to_stderr(site, monkeypatch):
    install_fake_distribution(site, "sslzoo-observer", "sslzoo_fake_observer", OBSERVER_PLUGIN)
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "sslzoo-observer")
    monkeypatch.setenv("SSLZOO_TRACE_PLUGINS", "1")
    result = invoke("bench", *AL_BENCH)
    json.loads(result.stdout)  # stdout holds only the records
    trace = [line for line in result.stderr.splitlines() if line.startswith("sslzoo: hook ")]
    assert trace[:2] == ["sslzoo: hook register_strategies -> plugin sslzoo._default_plugins.supervised",
                         "sslzoo: hook register_strategies -> plugin sslzoo._default_plugins.uncertainty"]
    assert "sslzoo: hook register_datasets -> plugin sslzoo._default_plugins.datasets" in trace
    assert "sslzoo: hook register_models -> plugin sslzoo._default_plugins.models" in trace
    observed = [line for line in trace if "sslzoo-observer" in line]
    assert observed == ["sslzoo: hook run_started -> plugin sslzoo-observer",
                        *["sslzoo: hook round_ended -> plugin sslzoo-observer"] * 3,
                        "sslzoo: hook run_ended -> plugin sslzoo-observer"]


@pytest.mark.parametrize("value", ["", "0"])
def test_trace_is_off_unless_asked_for(monkeypatch, capsys, value):
    monkeypatch.setenv("SSLZOO_TRACE_PLUGINS", value)
    from sslzoo._contract.registry import Registry

    Registry(make_plugins(load=""))
    assert "sslzoo: hook" not in capsys.readouterr().err


def test_trace_of_the_installed_command_goes_to_stderr_only(site):
    """The real ``sslzoo`` console script, in a fresh process, with an observer plugin installed."""
    install_fake_distribution(site, "sslzoo-observer", "sslzoo_fake_observer", OBSERVER_PLUGIN)
    env = {**os.environ, "SSLZOO_LOAD_PLUGINS": "sslzoo-observer", "SSLZOO_TRACE_PLUGINS": "1",
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([str(Path(sys.executable).with_name("sslzoo")), "bench", *AL_BENCH],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["strategy"] == "margin"
    assert "sslzoo: hook round_ended -> plugin sslzoo-observer" in done.stderr.splitlines()
    assert "sslzoo: hook" not in done.stdout
