"""How golden records are held against new ones: exactly on a machine that computes bit for bit as
the one that recorded them (the probe agrees), and on one that does not, in what does not depend on
the last bits of a float (:func:`loose_differences`).

Both sides are read as sslzoo reads records (:meth:`sslzoo._results.record.Record.from_json`: golden
records of schema 1 migrate) and their derived figures (``per_class``, ``al_metrics``) are the
record's methods, so the figures are compared whichever schema recorded them."""

from __future__ import annotations

from typing import Any

from sslzoo._results.record import Record

#: on another machine, test accuracies may differ by this much (a fraction of the test set)
ACCURACY_TOLERANCE = 0.05
#: ... and the pseudo-label count of a run by this fraction of it
PSEUDO_TOLERANCE = 0.25
#: fields that depend on no computed float
STRUCTURE = ("strategy", "family", "options", "dataset", "preset", "dataset_options", "model", "seed", "split",
             "labels", "classes", "device")


def measured(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as sslzoo reads it, with its derived figures computed by the record class."""
    typed = Record.from_json(record)
    return {**typed.to_json(), "per_class": typed.per_class(), "al_metrics": typed.al_metrics()}


def exact_differences(golden: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each run whose record is not identical, naming its first differing fields."""
    golden, new = _read(golden), _read(new)
    problems = _missing(golden, new)
    for name in sorted(golden.keys() & new.keys()):
        fields = sorted(key for key in golden[name].keys() | new[name].keys()
                        if golden[name].get(key) != new[name].get(key))
        if fields:
            problems.append(f"{name}: {', '.join(fields)} changed")
    return problems


def loose_differences(golden: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs beyond another CPU's rounding: the run's settings, its rounds and their oracle
    labels, how it ended, its test accuracies (by more than :data:`ACCURACY_TOLERANCE`) and its
    pseudo-label count (by more than :data:`PSEUDO_TOLERANCE` of it)."""
    golden, new = _read(golden), _read(new)
    problems = _missing(golden, new)
    for name in sorted(golden.keys() & new.keys()):
        old, now = golden[name], new[name]
        for key in STRUCTURE + ("oracle_labels", "termination"):
            if old.get(key) != now.get(key):
                problems.append(f"{name}: {key} {old.get(key)!r} → {now.get(key)!r}")
        steps = [(e["round"], e["epoch"], e["labels"]) for e in old["curve"]]
        if steps != [(e["round"], e["epoch"], e["labels"]) for e in now["curve"]]:
            problems.append(f"{name}: the curve's rounds, epochs or labels changed")
            continue
        for before, after in zip(old["curve"], now["curve"]):
            if abs(before["test_accuracy"] - after["test_accuracy"]) > ACCURACY_TOLERANCE:
                problems.append(f"{name}: round {before['round']} test accuracy {before['test_accuracy']} → "
                                f"{after['test_accuracy']}")
        count, count_now = old["pseudo"]["count"], now["pseudo"]["count"]
        if abs(count - count_now) > PSEUDO_TOLERANCE * max(count, 4):
            problems.append(f"{name}: pseudo-labels {count} → {count_now}")
    return problems


def _read(records: dict[str, Any]) -> dict[str, Any]:
    return {name: measured(record) for name, record in records.items()}


def _missing(golden: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return ([f"{name}: no longer run" for name in sorted(golden.keys() - new.keys())]
            + [f"{name}: not in the golden records" for name in sorted(new.keys() - golden.keys())])
