"""The committed CI baseline (benchmarks/baselines/moons-ci.jsonl) still matches what the example
workflow's bench produces: the same strategies and options, so ``sslzoo compare`` compares like
with like (a new option or default makes this fail until the baseline is refreshed, docs/ci.md)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from sslzoo._cli.main import main

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "benchmarks" / "baselines" / "moons-ci.jsonl"


def workflow_bench_arguments() -> list[str]:
    text = (ROOT / "docs" / "examples" / "sslzoo-ci.yml").read_text(encoding="utf-8")
    block = re.search(r"SSLZOO_BENCH: >-\n((?:    .*\n)+)", text)
    assert block, "SSLZOO_BENCH not found in the example workflow"
    return shlex.split(" ".join(line.strip() for line in block.group(1).splitlines()))


def test_the_committed_baseline_was_made_with_the_workflow_bench_and_current_options(tmp_path):
    bench = CliRunner().invoke(main, ["bench", *workflow_bench_arguments(), "--out", str(tmp_path / "new"), "-q"])
    assert bench.exit_code == 0, bench.output
    result = CliRunner().invoke(main, ["compare", str(BASELINE), str(tmp_path / "new"), "--format", "json"])
    assert result.exit_code in (0, 1), result.output  # 1 would be a regression verdict, not a mismatch
    comparison = json.loads(result.stdout)
    assert comparison["warnings"] == [], ("refresh benchmarks/baselines/moons-ci.jsonl as docs/ci.md says",
                                          comparison["warnings"])
    assert {row["strategy"] for row in comparison["rows"]} == {"supervised", "random", "least_confidence",
                                                               "pseudo_label"}
    assert all(row["verdict"] not in ("new", "missing") for row in comparison["rows"])
