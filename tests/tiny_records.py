"""Real result records from tiny two-moons runs, made once per test process and copied per use."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

#: (strategy, options) of the tiny runs: a baseline, an active learner (several rounds) and Lee 2013.
TINY = {
    "supervised": {"epochs": 20},
    "random": {"epochs": 20, "budget": 30, "query_size": 10},
    "least_confidence": {"epochs": 20, "budget": 30, "query_size": 10},
    "pseudo_label": {"epochs": 20, "t1": 5, "t2": 15, "unlabeled_batch_size": 64},
}
SEEDS = 2


@functools.cache
def _records(strategies: tuple[str, ...], seeds: int) -> str:
    import sslzoo

    records = []
    for name in strategies:
        records += sslzoo.run(name, "moons", labels=10, seeds=seeds, device="cpu", options=TINY[name])
    return json.dumps(records)


def moons_records(*strategies: str, seeds: int = SEEDS) -> list[dict[str, Any]]:
    """Fresh copies of real records of ``strategies`` (default: all of :data:`TINY`) on two-moons."""
    return copy.deepcopy(json.loads(_records(tuple(strategies or TINY), seeds)))


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
