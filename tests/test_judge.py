"""The judge holds the truth: hostile strategies run through ``sslzoo bench`` find no hidden label,
and the leak check flags those whose behaviour depends on labels they read another way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import sslzoo
from sslzoo import ORACLE
from sslzoo._cli.main import main
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry, reset_default_registry
from sslzoo._default_plugins.datasets import TwoMoons
from sslzoo.testing import (
    TINY_DATA,
    LeakProbe,
    check_leak,
    check_strategy,
    judged_tiny_run,
    labels_permuted,
    leak_difference,
    permute_labels,
    tiny_run,
)
from tests import hostile_strategies
from tests.hostile_strategies import HOSTILE, READS_THE_DATA, ClassPrior, DetectsTests, Fragile, GcScan

IN_REACH = [strategy for strategy in HOSTILE if strategy not in READS_THE_DATA]
BENCH = ["--dataset", "moons", "--labels", "10", "--split", "random", "-o", "epochs=1", "-q",
         *(arg for key, value in TINY_DATA.items() for arg in ("-d", f"{key}={value}"))]


@pytest.fixture
def registry():
    """The default registry with the hostile strategies, as an installed plugin would be."""
    registry = Registry(make_plugins(load="", extra=(hostile_strategies,)))
    reset_default_registry(registry)
    yield registry
    reset_default_registry()


def truth() -> torch.Tensor:
    return sslzoo.create_dataset("moons", **TINY_DATA).load(0).y_train


def bench(name: str, tmp_path: Path, *extra: str) -> tuple[dict, dict[int, int]]:
    """``sslzoo bench -s name`` on the tiny moons: its record and what the strategy found."""
    found, out = tmp_path / "found.json", tmp_path / "record.json"
    result = CliRunner().invoke(main, ["bench", "-s", name, *BENCH, "-o", f"out={found}", "--json-out", str(out),
                                       *extra])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(out.read_text())
    return record, {int(k): v for k, v in json.loads(found.read_text()).items()}


def hidden_found(found: dict[int, int]) -> tuple[int, float]:
    """How many labels were found and the share of them that are right."""
    if not found:
        return 0, 0.0
    ids = torch.tensor(list(found))
    return len(found), float((truth()[ids] == torch.tensor(list(found.values()))).double().mean())


@pytest.mark.parametrize("strategy", IN_REACH, ids=lambda strategy: strategy.name)
def test_a_hostile_strategy_run_through_bench_finds_no_hidden_label(strategy, registry, tmp_path):
    record, found = bench(strategy.name, tmp_path)
    count, right = hidden_found(found)
    assert count == 0 or right <= 0.75, f"{strategy.name} found {count} labels, {right:.0%} of them right"
    assert record["termination"] in ("done", "pool_empty") and "judge" not in record
    assert record["oracle_labels"] <= 25  # 10 + 3 rounds of 5: the judge's count of its own answers


def test_in_process_the_gc_scan_finds_every_label_which_is_why_runs_have_a_judge(registry, tmp_path):
    record, found = bench(GcScan.name, tmp_path, "--in-process")
    count, right = hidden_found(found)
    assert record["judge"] == "in-process"
    assert count >= 150 and right == 1.0


def test_a_strategy_that_selects_the_whole_pool_pays_for_what_it_asks_and_learns_nothing_more(registry, tmp_path):
    record, found = bench("hostile_whole_pool", tmp_path)
    assert found == {}
    assert [entry["labels"] for entry in record["curve"]] == [10, 15]  # the rest of the pool: pseudo-labels
    assert record["termination"] == "pool_empty"


@pytest.mark.parametrize("strategy", READS_THE_DATA, ids=lambda strategy: strategy.name)
def test_the_leak_check_flags_a_strategy_that_reads_the_labels_by_loading_the_data_again(strategy, registry):
    run = tiny_run(strategy.name, registry=registry)
    with pytest.raises(AssertionError, match=f"hidden labels leak into strategy '{strategy.name}'"):
        check_leak(run)


def test_the_class_prior_is_invisible_to_a_permutation_and_caught_by_one_class_labels(registry):
    first = judged_tiny_run(ClassPrior.name, registry=registry)
    hidden = torch.nonzero(first.ledger["source"] != ORACLE).flatten()
    with labels_permuted(TwoMoons, hidden):  # a permutation keeps the class counts
        again = judged_tiny_run(ClassPrior.name, registry=registry, probe=LeakProbe(permute_labels, hidden))
    assert leak_difference(first, again) is None
    with pytest.raises(AssertionError, match="hidden labels leak into strategy 'hostile_class_prior': with the true "
                                             "labels of the \\d+ never-queried training ids all set to one class, "
                                             "the select of round 1 returned something else"):
        check_leak(tiny_run(ClassPrior.name, registry=registry))


def test_the_whole_contract_includes_the_leak_check(registry):
    with pytest.raises(AssertionError, match="hidden labels leak into strategy 'hostile_test_detecting'"):
        check_strategy(DetectsTests.name, registry)


def test_the_leak_check_passes_a_hostile_strategy_that_found_nothing(registry):
    check_leak(tiny_run(GcScan.name, registry=registry))


def test_the_leak_check_fails_a_strategy_that_errors_once_hidden_labels_change(registry):
    run = tiny_run(Fragile.name, registry=registry)
    with pytest.raises(AssertionError, match="'hostile_fragile' failed once the hidden labels of the \\d+ "
                                             "never-queried training ids were all set to one class: RuntimeError: "
                                             "the labels changed"):
        check_leak(run)


def test_a_judged_run_gives_the_record_of_the_same_run_in_process(registry):
    judged = judged_tiny_run("margin", registry=registry)
    local = tiny_run("margin", registry=registry)
    where = {"wall_seconds", "machine"}  # when and on what (the learner chooses its own threads), not what
    assert {k: v for k, v in judged.record.items() if k not in where} == \
        {k: v for k, v in local.record.items() if k not in where}
    assert [(c.hook, c.round, c.step) for c in judged.calls] == [(c.hook, c.round, c.step) for c in local.calls]


def test_a_script_without_a_main_guard_runs_its_learners_without_running_itself_again(tmp_path):
    script = tmp_path / "script.py"
    script.write_text('import sslzoo\nprint(sslzoo.run("supervised", "moons", labels=6, options={"epochs": 1})[0]'
                      '["oracle_labels"])\n')
    done = subprocess.run([sys.executable, str(script)], env={**os.environ, "SSLZOO_LOAD_PLUGINS": ""}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["6"]
