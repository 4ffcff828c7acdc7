"""The stopping study: for each stopping criterion, the round it fires on each seed, the labels it saves
against the full budget and the accuracy it gives up.

A criterion is judged by the trade-off it strikes, as Bloodgood & Vijay-Shanker 2009 (A Method for
Stopping Active Learning Based on Stabilizing Predictions and the Need for User-Adjustable Stopping,
CoNLL) compare stopping methods: the annotations requested when it stops against those of the whole
run, and the performance there against the performance at the end. sslzoo measures both from the
records, on the test set, never from what a criterion saw.

Two kinds of record hold a criterion's firing. A run that watched criteria (the training option
``watch``) went to its end and says the round each first fired on (``watched``); its own curve gives
the accuracy at that round and its own end the full budget. A run that a criterion ended (``stop``)
says the round in ``stopped``; its full budget is the run's *unstopped twin*, the record of the same
run (strategy, dataset, preset, seed, setup and options) without ``stop``, looked for among the same
records, then among ``twins`` (``sslzoo compare`` looks on the other side too); without a twin its
budget is its ``budget`` option and the accuracy it gives up is unknown.

For each (strategy, seed, criterion) a :class:`Firing`: the round, the oracle labels then, the
budget (the labels the full run ends with), the labels saved (budget − labels at the firing), the
test accuracy at that round (its curve's entry of that round at its final epoch), the accuracy at
the full budget and the accuracy given up (full − at the firing). A criterion that never fired on a
seed lets that run go to its end: it saves no labels and gives up no accuracy there (in a run another
criterion stopped, where it would have fired is unknown). Per
(strategy, criterion) a :class:`Summary` over the seeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sslzoo._results.formatting import group_by, markdown_table, mean_std, plus_minus, text_table
from sslzoo._results.store import SETUP_KEYS, canonical, preset_of

WATCHED, STOPPED = "watched", "stopped"
#: Options that say when a run is asked to stop, not what it does: twins may differ in them.
STOPPING_OPTIONS = ("stop", "watch")


@dataclass(frozen=True)
class Firing:
    """One criterion on one run: ``how`` it was asked (``watched`` or ``stopped``), the round it first
    fired on and the oracle labels then (None: it never fired), the ``budget``, the labels ``saved``,
    the test ``accuracy`` at that round, the accuracy at the ``full`` budget and the accuracy
    ``given_up`` (fractions; None where the records cannot tell)."""

    strategy: str
    dataset: str
    preset: Any
    seed: int
    criterion: str
    how: str
    round: int | None
    labels: int | None
    budget: int | None
    saved: int | None
    accuracy: float | None
    full: float | None
    given_up: float | None
    why: str | None


@dataclass(frozen=True)
class Summary:
    """One criterion of one strategy over its seeds: on how many it fired, the round on each (in seed
    order, None where it never fired), and the mean ± std over seeds of the labels saved and the
    accuracy given up (None where a seed cannot tell)."""

    strategy: str
    dataset: str
    preset: Any
    criterion: str
    how: str
    seeds: list[int]
    fired: int
    rounds: list[int | None]
    saved_mean: float | None
    saved_std: float | None
    given_up_mean: float | None
    given_up_std: float | None


@dataclass
class Study:
    """The stopping study of a set of records: a :class:`Firing` per (strategy, seed, criterion) and a
    :class:`Summary` per (strategy, criterion)."""

    firings: list[Firing] = field(default_factory=list)
    summaries: list[Summary] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.firings)

    def as_dict(self) -> dict[str, Any]:
        return {"summaries": [asdict(s) for s in self.summaries], "firings": [asdict(f) for f in self.firings]}


def study(records: Sequence[Mapping[str, Any]], twins: Sequence[Mapping[str, Any]] = ()) -> Study:
    """The stopping study of ``records``: every record with ``watched`` or ``stopped``; a stopped run's
    full budget is its unstopped twin in ``records``, else in ``twins``."""
    unstopped = {}
    for record in [*twins, *records]:  # the same records' twin over one in twins
        if not _stopped(record):
            unstopped[_twin_key(record)] = record
    asked = [(record, how, entry) for record in records for how, entry in _entries(record)]
    labels = _labels([entry for _, _, entry in asked])
    firings = [_firing(record, how, entry, labels, unstopped.get(_twin_key(record)) if _stopped(record) else record)
               for record, how, entry in asked]
    firings.sort(key=lambda f: (f.dataset, canonical(f.preset), f.strategy, f.criterion, f.how, f.seed))
    groups = group_by(firings, lambda f: (f.dataset, canonical(f.preset), f.strategy, f.criterion, f.how))
    return Study(firings, [_summary(group) for group in groups.values()])


def with_twin(records: Sequence[Mapping[str, Any]]) -> list[bool]:
    """For each record, whether it is a stopped run whose unstopped twin is among ``records``: the tables
    of ``compare`` and ``report`` show the twin for the run, the study shows both."""
    unstopped = {_twin_key(record) for record in records if not _stopped(record)}
    return [_stopped(record) and _twin_key(record) in unstopped for record in records]


def _stopped(record: Mapping[str, Any]) -> bool:
    return isinstance(record.get("stopped"), Mapping)


def _entries(record: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The criteria a record was asked by: the one that stopped it, then those it watched, in order."""
    return [*([(STOPPED, record["stopped"])] if _stopped(record) else []),
            *((WATCHED, entry) for entry in record.get("watched") or [])]


def _twin_key(record: Mapping[str, Any]) -> str:
    """What a run and its unstopped twin share: everything that makes the run, less its stopping options."""
    options = {k: v for k, v in (record.get("options") or {}).items() if k not in STOPPING_OPTIONS}
    return canonical([record["strategy"], record["dataset"], preset_of(record), record["seed"], options,
                      *(record.get(key) for key in SETUP_KEYS)])


def _labels(entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each criterion's name in the study, by its entry's name and options: the name, and where the
    records hold it with several options, ``NAME:KEY=VALUE,...`` of the options that differ."""
    options: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        seen = options.setdefault(str(entry.get("criterion")), [])
        given = dict(entry.get("options") or {})
        if given not in seen:
            seen.append(given)
    labels = {}
    for name, variants in options.items():
        varying = [k for k in dict.fromkeys(k for v in variants for k in v)
                   if len({canonical(v.get(k)) for v in variants}) > 1]
        for given in variants:
            shown = ",".join(f"{k}={given.get(k)}" for k in varying)
            labels[_entry_key(name, given)] = f"{name}:{shown}" if shown else name
    return labels


def _entry_key(name: str, options: Mapping[str, Any]) -> str:
    return canonical([name, dict(options)])


def accuracy_at(record: Mapping[str, Any], rnd: int) -> float | None:
    """The test accuracy of round ``rnd`` at its final epoch: the last curve entry of that round."""
    entries = [e for e in record.get("curve") or [] if isinstance(e, Mapping) and e.get("round") == rnd]
    value = entries[-1].get("test_accuracy") if entries else None
    return float(value) if isinstance(value, (int, float)) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _firing(record: Mapping[str, Any], how: str, entry: Mapping[str, Any], names: Mapping[str, str],
            full_run: Mapping[str, Any] | None) -> Firing:
    """The row of one criterion's ``entry`` in ``record``; ``full_run``: the record that went to its end."""
    rnd = _int(entry.get("round"))
    labels = _int(entry.get("labels"))
    budget = _int(full_run.get("oracle_labels")) if full_run is not None else \
        _int((record.get("options") or {}).get("budget"))
    full = float(full_run["test_accuracy"]) if full_run is not None else None
    if rnd is None:  # never fired: the run goes to its end (unknown for one that another criterion ended)
        accuracy, saved = (full, 0 if budget is not None else None) if full_run is record else (None, None)
    else:
        accuracy = accuracy_at(record, rnd)
        saved = budget - labels if budget is not None and labels is not None else None
    given_up = full - accuracy if full is not None and accuracy is not None else None
    why = entry.get("why")
    return Firing(strategy=str(record["strategy"]), dataset=str(record["dataset"]), preset=preset_of(record),
                  seed=int(record["seed"]), criterion=names[_entry_key(str(entry.get("criterion")),
                                                                       entry.get("options") or {})],
                  how=how, round=rnd, labels=labels, budget=budget, saved=saved, accuracy=accuracy, full=full,
                  given_up=given_up, why=why if isinstance(why, str) else None)


def _spread(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    if not values or any(v is None for v in values):
        return None, None
    return mean_std([float(v) for v in values if v is not None])


def _summary(firings: Sequence[Firing]) -> Summary:
    first = firings[0]
    saved_mean, saved_std = _spread([f.saved for f in firings])
    given_mean, given_std = _spread([f.given_up for f in firings])
    return Summary(strategy=first.strategy, dataset=first.dataset, preset=first.preset, criterion=first.criterion,
                   how=first.how, seeds=[f.seed for f in firings], fired=sum(f.round is not None for f in firings),
                   rounds=[f.round for f in firings], saved_mean=saved_mean, saved_std=saved_std,
                   given_up_mean=given_mean, given_up_std=given_std)


# -- rendering ----------------------------------------------------------------------------------------
SUMMARY_HEADER = ["strategy", "criterion", "run", "fired", "round per seed", "labels saved", "accuracy given up"]
FIRING_HEADER = ["strategy", "seed", "criterion", "run", "round", "labels", "budget", "labels saved",
                 "accuracy then", "at the budget", "given up"]
EXPLANATION = (
    "Each criterion's round is the round whose model fired it (its first firing); labels saved are the budget (the "
    "oracle labels the run without the criterion ends with) minus the labels held then, and the accuracy given up "
    "is the test accuracy at the budget minus the test accuracy of that round, in points. A watched criterion "
    "(`watch`) was asked as `stop` is, without ending the run; a stopped run (`stop`) is measured against its "
    "unstopped twin (— without one), which stands for it in the other tables. A seed where a criterion never "
    "fired goes to its budget: no labels saved, none given up (— in a run another criterion stopped).")


def _dash(value: Any, fmt: str = "") -> str:
    return "—" if value is None else format(value, fmt)


def _points(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} pt"


def _over_seeds(mean: float | None, std: float | None, n: int, scale: float, digits: int, unit: str) -> str:
    if mean is None or std is None:
        return "—"
    return plus_minus(scale * mean, scale * std, digits=digits, count=n) + unit


def summary_rows(found: Study, datasets: bool = False) -> list[list[str]]:
    """One row per (strategy, criterion): :data:`SUMMARY_HEADER` (``datasets``: the strategy cell names
    its dataset and preset too)."""
    rows = []
    for s in found.summaries:
        n = len(s.seeds)
        rows.append([_where(s.strategy, s.dataset, s.preset) if datasets else s.strategy, s.criterion, s.how,
                     f"{s.fired} of {n} seed{'s' if n != 1 else ''}", ", ".join(_dash(r) for r in s.rounds),
                     _over_seeds(s.saved_mean, s.saved_std, n, 1, 1, ""),
                     _over_seeds(s.given_up_mean, s.given_up_std, n, 100, 2, " pt")])
    return rows


def firing_rows(found: Study, datasets: bool = False) -> list[list[str]]:
    """One row per (strategy, seed, criterion): :data:`FIRING_HEADER`."""
    return [[_where(f.strategy, f.dataset, f.preset) if datasets else f.strategy, str(f.seed), f.criterion, f.how,
             _dash(f.round), _dash(f.labels), _dash(f.budget), _dash(f.saved),
             "—" if f.accuracy is None else f"{100 * f.accuracy:.2f} %",
             "—" if f.full is None else f"{100 * f.full:.2f} %", _points(f.given_up)] for f in found.firings]


def _where(strategy: str, dataset: str, preset: Any) -> str:
    return f"{strategy} on {dataset}" + ("" if preset is None else f" ({preset})")


def _many_datasets(found: Study) -> bool:
    return len({(f.dataset, canonical(f.preset)) for f in found.firings}) > 1


def to_markdown(found: Study) -> list[str]:
    """The study as markdown: the explanation, the summary table and the table per seed."""
    many = _many_datasets(found)
    return [EXPLANATION, "", *markdown_table(SUMMARY_HEADER, summary_rows(found, many), left=3), "",
            "Per seed:", "", *markdown_table(FIRING_HEADER, firing_rows(found, many), left=4)]


def to_text(found: Study) -> list[str]:
    """The study as plain-text tables: the summary, then the rows per seed."""
    many = _many_datasets(found)
    return [*text_table(SUMMARY_HEADER, summary_rows(found, many)), "",
            *text_table(FIRING_HEADER, firing_rows(found, many))]

