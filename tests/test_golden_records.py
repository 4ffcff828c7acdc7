"""The golden records (``tests/golden``): the records of a fixed set of fast runs do not change.

The runs go in a child process with the numerics pinned (one thread, MKL's conditional numerical
reproducibility, oneDNN and ATen held to AVX2). Where the child's probe digest equals the recorded
one, this machine computes bit for bit as the recording one did, and every record must be identical
(wall times and versions aside); elsewhere the records are held to what another CPU's rounding
cannot move (:func:`tests.golden.compare.loose_differences`), and the test says which comparison it made.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sslzoo._results.record import DERIVED_KEYS
from tests.golden.compare import ACCURACY_TOLERANCE, exact_differences, loose_differences, measured
from tests.golden.runs import RECORDS, pinned_environment

ROOT = Path(__file__).resolve().parents[1]


def _golden() -> dict:
    return json.loads(RECORDS.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_the_golden_runs_give_the_golden_records():
    golden = _golden()
    child = subprocess.run([sys.executable, "-m", "tests.golden.runs"], cwd=ROOT, env=pinned_environment(),
                           capture_output=True, text=True, timeout=900)
    assert child.returncode == 0, child.stderr[-3000:]
    new = json.loads(child.stdout)
    if new["probe"] == golden["probe"]:
        problems = exact_differences(golden["records"], new["records"])
        how = "exactly (this machine computes as the recording one)"
    else:
        problems = loose_differences(golden["records"], new["records"])
        how = f"loosely (probe {new['probe']} ≠ recorded {golden['probe']}: another CPU's rounding)"
    print(f"golden records compared {how}")
    assert not problems, f"compared {how}:\n" + "\n".join(problems)


def test_a_changed_last_digit_fails_the_exact_comparison():
    golden = _golden()["records"]
    changed = copy.deepcopy(golden)
    changed["moons/entropy"]["curve"][1]["test_accuracy"] += 0.001
    assert exact_differences(golden, changed) == ["moons/entropy: al_metrics, curve changed"]  # derived from it
    assert exact_differences(golden, copy.deepcopy(golden)) == []


def test_a_changed_behaviour_fails_the_loose_comparison():
    golden = _golden()["records"]
    assert loose_differences(golden, copy.deepcopy(golden)) == []
    worse = copy.deepcopy(golden)
    worse["mnist/supervised"]["curve"][-1]["test_accuracy"] -= 2 * ACCURACY_TOLERANCE
    more = copy.deepcopy(golden)
    more["moons/pseudo_label"]["pseudo"]["count"] *= 2
    ended = copy.deepcopy(golden)
    ended["moons/margin>self_training"]["termination"] = "budget"
    for changed in (worse, more, ended):
        assert len(loose_differences(golden, changed)) == 1
    fewer = copy.deepcopy(golden)
    del fewer["moons/vat"]
    assert loose_differences(golden, fewer) == ["moons/vat: no longer run"]


def test_the_golden_records_derived_figures_are_what_the_record_class_computes():
    """The golden records hold the per-class and active-learning figures the judge wrote (schema 1):
    the record class's methods give the same numbers."""
    for name, raw in _golden()["records"].items():
        assert {key: measured(raw)[key] for key in DERIVED_KEYS} == {key: raw[key] for key in DERIVED_KEYS}, name
