"""The scikit-learn reference pipeline of ``selftrain-logreg-mnist1000`` (benchmarks/selftrain_logreg_sklearn.py)
on sslzoo's own split; skipped where scikit-learn (the ``bench`` extra) is not installed."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sslzoo._datasets.mnist import load_mnist  # noqa: E402
from sslzoo._datasets.split import initial_labels  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "selftrain_logreg_sklearn.py"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("selftrain_logreg_sklearn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_split_is_sslzoos_for_the_same_seed(reference):
    data = reference.sslzoo_split(3, labels=100, n_train=2000, n_test=100)
    y = load_mnist()[1][:2000]
    assert np.array_equal(data.labeled, initial_labels(y, 100, 3, "balanced").numpy())
    assert np.array_equal(np.sort(np.concatenate([data.labeled, data.pool])), np.arange(2000))
    assert data.x.shape == (2000, 784) and data.x_test.shape == (100, 784) and data.x.max() <= 1.0


@pytest.mark.parametrize("name", ["faithful", "clean"])
def test_a_small_run_writes_a_supervised_and_a_self_training_record(reference, name):
    protocol = dataclasses.replace(reference.PROTOCOLS[name], rounds=2)
    data = reference.sslzoo_split(0, labels=100, n_train=2000, n_test=500)
    supervised, self_training = reference.run_seed(protocol, 0, 1, data, "python x.py")
    assert (supervised["strategy"], self_training["strategy"]) == ("supervised", "self_training")
    for rec in (supervised, self_training):
        assert rec["implementation"] == "scikit-learn" and rec["command"] == "python x.py"
        assert rec["preset"] == protocol.preset and rec["labels"] == 100 and rec["seed"] == 0
    assert supervised["test_accuracy"] == self_training["curve"][0]["test_accuracy"] > 0.6
    counts = [entry["pseudo_labels"] for entry in self_training["curve"]]
    assert len(counts) == 3 and counts[0] == 0
    step = int(0.04 * 1900) if name == "faithful" else None
    for before, after in zip(counts, counts[1:]):
        if name == "faithful":  # a random draw of 4 % of the pool, less the band 0.4-0.6
            assert 0 < after - before <= step
        else:  # the most confident 4 % of what is left
            assert after - before == int(np.ceil(0.04 * (1900 - before)))
    assert self_training["pseudo"]["accuracy"] > 0.6
