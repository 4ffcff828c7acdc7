"""Compare two sets of result records: per strategy and dataset, mean ± std over seeds, the delta
and a verdict; a regression is a drop in mean test accuracy beyond the tolerance.

Both sides must hold the same seeds, so runs are compared seed by seed: the default tolerance
takes the seeds' spread into account as twice the standard error of the mean per-seed difference,
``2·stdev(new_s − baseline_s)/sqrt(n)``, and is never less than :data:`MIN_TOLERANCE` (one accuracy
point). A change that moves every seed the same way is therefore caught even when the seeds
themselves spread widely; a change that only reshuffles the randomness is not flagged.
``tolerance=T`` makes it exactly ``T`` (absolute accuracy, 0.02 = 2 points).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sslzoo._contract.record import selected_on_test, selected_on_test_note
from sslzoo._engine.machine import HARDWARE_KEYS
from sslzoo._ops.metrics import budget_points, finite_number
from sslzoo._reports import stopping
from sslzoo._results.formatting import group_by, markdown_table, mean_std, plus_minus, text_table
from sslzoo._results.record import Record
from sslzoo._results.store import SETUP_KEYS, Loaded, as_records, canonical, preset_of
from sslzoo.errors import ResultsError

MIN_TOLERANCE = 0.01
REGRESSION, IMPROVEMENT, SAME, NEW, MISSING = "regression", "improvement", "same", "new", "missing"
FORMATS = ("plain", "md", "json")


# -- per-record metrics -------------------------------------------------------------------------------
def curve_points(record: Mapping[str, Any]) -> list[tuple[float, float]]:
    """The record's budget curve: (oracle labels, test accuracy), one point per label count
    (:func:`sslzoo._ops.metrics.budget_points`)."""
    return budget_points(record.get("curve") or [])


def budget_auc(record: Mapping[str, Any]) -> float | None:
    """Area under test accuracy vs oracle labels, divided by the labels range (a mean accuracy over
    the budget): the record's ``al_metrics`` (:meth:`sslzoo._results.record.Record.al_metrics`, from
    its curve). None for one-round runs and records without a curve."""
    metrics = Record.from_json(record).al_metrics()
    return finite_number(metrics["budget_auc"]) if metrics else None


def labels_to_accuracy(record: Mapping[str, Any]) -> dict[str, float | None]:
    """``{target: labels or None (never reached)}``: the record's ``al_metrics``
    (:meth:`sslzoo._results.record.Record.al_metrics`, from its curve); empty for a record without a
    curve."""
    metrics = Record.from_json(record).al_metrics()
    if metrics is None:
        return {}
    return {target: finite_number(labels) for target, labels in metrics["labels_to_accuracy"].items()}


@dataclass
class Reach:
    """Labels to reach one accuracy target, over seeds: the mean over the seeds that reached it."""

    labels: float | None
    reached: int
    seeds: int

    def __format__(self, spec: str) -> str:
        if self.labels is None:
            return "never"
        text = format(self.labels, spec or ".0f")
        return text if self.reached == self.seeds else f"{text} ({self.reached}/{self.seeds} seeds)"


def _reach(records: Sequence[Mapping[str, Any]]) -> dict[str, Reach]:
    per = [labels_to_accuracy(r) for r in records]
    targets = sorted({t for p in per for t in p}, key=lambda t: (len(t), t))
    out = {}
    for target in targets:
        got = [value for p in per if (value := p.get(target)) is not None]
        out[target] = Reach(statistics.fmean(got) if got else None, len(got), len(records))
    return out


# -- per class ----------------------------------------------------------------------------------------
@dataclass
class ClassStats:
    """Per-class precision and recall at the end of the runs, the mean over seeds (None: undefined
    in every seed, a class never predicted or never in the test split)."""

    classes: list[str]
    precision: list[float | None]
    recall: list[float | None]

    def changes(self, other: ClassStats, metric: str) -> list[float | None]:
        """``metric`` ("precision" or "recall") of each class here minus in ``other``."""
        mine, theirs = getattr(self, metric), getattr(other, metric)
        return [None if a is None or b is None else a - b for a, b in zip(mine, theirs)]


def class_stats(records: Sequence[Mapping[str, Any]]) -> ClassStats | None:
    """The per-class means of records that all carry a ``confusion`` matrix of the same classes (their
    :meth:`~sslzoo._results.record.Record.per_class`); None for records from before sslzoo measured
    them (or of different classes)."""
    per = [p for r in records if (p := Record.from_json(r).per_class()) is not None]
    classes = [r.get("classes") for r in records]
    if not records or len(per) != len(records) or any(c != classes[0] for c in classes):
        return None
    names = [str(c) for c in classes[0] or range(len(per[0].get("recall") or []))]

    def mean(metric: str) -> list[float | None]:
        columns = [p.get(metric) or [] for p in per]
        if any(len(c) != len(names) for c in columns):
            return [None] * len(names)
        got = [[v for v in values if finite_number(v) is not None] for values in zip(*columns)]
        return [statistics.fmean(v) if v else None for v in got]

    return ClassStats(names, mean("precision"), mean("recall"))


# -- groups and stats ---------------------------------------------------------------------------------
@dataclass
class Stats:
    """One strategy on one dataset, over seeds."""

    seeds: list[int]
    accuracy_mean: float
    accuracy_std: float
    labels: float
    wall_seconds: float | None
    budget_auc: float | None = None
    labels_to_accuracy: dict[str, Reach] = field(default_factory=dict)
    per_class: ClassStats | None = None

    @property
    def n(self) -> int:
        return len(self.seeds)


def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.fmean(got) if got and len(got) == len(values) else None


def stats(records: Sequence[Mapping[str, Any]]) -> Stats:
    mean, std = mean_std([float(r["test_accuracy"]) for r in records])
    return Stats(
        seeds=sorted(int(r["seed"]) for r in records),
        accuracy_mean=mean,
        accuracy_std=std,
        labels=statistics.fmean(finite_number(r.get("oracle_labels", r.get("labels"))) or 0.0 for r in records),
        wall_seconds=_mean([finite_number(r.get("wall_seconds")) for r in records]),
        budget_auc=_mean([budget_auc(r) for r in records]),
        labels_to_accuracy=_reach(records),
        per_class=class_stats(records),
    )


GroupKey = tuple[str, str, str]  # strategy, dataset, canonical preset


@dataclass
class _Group:
    records: list[Mapping[str, Any]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)


def _where(origin: str) -> str:
    """The file of an origin such as ``path:12`` or ``path[3]``."""
    for sep in ("[", ":"):
        head, found, tail = origin.rpartition(sep)
        if found and head and tail.rstrip("]").isdigit():
            return head
    return origin


def group(loaded: Loaded, side: str) -> dict[GroupKey, _Group]:
    """Records by (strategy, dataset, preset); a seed twice, or a mixed setup, is an error. A stopped run
    whose unstopped twin is among the records is left to the stopping study (:func:`stopping.with_twin`)."""
    def key(pair: tuple[Mapping[str, Any], str]) -> GroupKey:
        record = pair[0]
        return record["strategy"], record["dataset"], canonical(preset_of(record))

    runs = [pair for pair, twinned in zip(zip(loaded.records, loaded.origins), stopping.with_twin(loaded.records))
            if not twinned]
    groups = {}
    for k, pairs in group_by(runs, key).items():
        for i, (record, origin) in enumerate(pairs):
            for other, other_origin in pairs[:i]:
                if other["seed"] == record["seed"]:
                    raise ResultsError(f"{origin}: {side} has seed {record['seed']} of strategy "
                                       f"{record['strategy']!r} on {record['dataset']!r} twice (also at "
                                       f"{other_origin}); remove the duplicate")
                for setup in SETUP_KEYS:
                    if setup in record and setup in other and canonical(record[setup]) != canonical(other[setup]):
                        raise ResultsError(f"{origin}: {side} mixes runs of strategy {record['strategy']!r} on "
                                           f"{record['dataset']!r} with {setup} {record[setup]!r} and "
                                           f"{other[setup]!r} (at {other_origin})")
        groups[k] = _Group([record for record, _ in pairs], [origin for _, origin in pairs])
    return groups


# -- the comparison -----------------------------------------------------------------------------------
@dataclass
class Row:
    strategy: str
    dataset: str
    preset: Any
    family: str | None
    baseline: Stats | None
    new: Stats | None
    delta: float | None
    tolerance: float | None
    verdict: str
    patience: int = 0  # > 0: selected on the test set (see sslzoo._contract.record.selected_on_test)


@dataclass
class Comparison:
    """The result of :func:`compare`: one :class:`Row` per strategy and dataset."""

    rows: list[Row]
    tolerance: float | None  # as given; None: from the seeds' spread
    baseline: str = "BASELINE"
    new: str = "NEW"
    warnings: list[str] = field(default_factory=list)
    stopping: dict[str, stopping.Study] = field(default_factory=dict)
    """The stopping study (:mod:`sslzoo._reports.stopping`) of each side whose records have one, by side."""

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == REGRESSION]

    @property
    def exit_code(self) -> int:
        """1 when any strategy regressed beyond the tolerance, else 0."""
        return 1 if self.regressions else 0

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for r in self.rows:
            row = asdict(r)
            for side in ("baseline", "new"):
                if row[side] is not None:
                    row[side]["n"] = len(row[side]["seeds"])
            rows.append(row)
        verdicts = dict(Counter(r.verdict for r in self.rows))
        return {"baseline": self.baseline, "new": self.new, "tolerance": self.tolerance,
                "min_tolerance": MIN_TOLERANCE, "verdicts": verdicts, "regressions": len(self.regressions),
                "exit_code": self.exit_code, "warnings": self.warnings, "rows": rows,
                "stopping": {side: found.as_dict() for side, found in self.stopping.items()}}

    def render(self, fmt: str = "plain") -> str:
        if fmt == "json":
            return json.dumps(self.as_dict(), indent=2)
        if fmt == "md":
            return to_markdown(self)
        if fmt == "plain":
            return to_text(self)
        raise ResultsError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def default_tolerance(base: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> float:
    """Twice the standard error of the mean per-seed accuracy difference, at least :data:`MIN_TOLERANCE`."""
    by_seed = {r["seed"]: float(r["test_accuracy"]) for r in base}
    diffs = [float(r["test_accuracy"]) - by_seed[r["seed"]] for r in new if r["seed"] in by_seed]
    if len(diffs) < 2:
        return MIN_TOLERANCE
    return max(MIN_TOLERANCE, 2 * statistics.stdev(diffs) / math.sqrt(len(diffs)))


def _label(source: Any, loaded: Loaded, fallback: str) -> str:
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        return str(source)
    if isinstance(source, Sequence) and source and all(isinstance(s, str) or hasattr(s, "__fspath__") for s in source):
        return ", ".join(map(str, source))
    return fallback


def compare(baseline: Any, new: Any, *, tolerance: float | None = None) -> Comparison:
    """Compare ``new`` records with ``baseline`` records (records, or paths to files/directories).

    Raises :class:`~sslzoo.errors.ResultsError` for unreadable or foreign files, records on another
    dataset or preset, other settings (labels, model, split, dataset options) for the same
    strategy, or different seeds on the two sides.
    """
    if tolerance is not None and (finite_number(tolerance) is None or tolerance < 0):
        raise ResultsError(f"--tolerance must be a number >= 0 (absolute accuracy, 0.02 = 2 points), got {tolerance!r}")
    base_loaded, new_loaded = as_records(baseline, "BASELINE"), as_records(new, "NEW")
    base_name = _label(baseline, base_loaded, "BASELINE")
    new_name = _label(new, new_loaded, "NEW")
    base_groups, new_groups = group(base_loaded, "BASELINE"), group(new_loaded, "NEW")
    _check_datasets(base_groups, new_groups, base_name, new_name)
    rows = []
    notes: list[str] = []
    for key in list(base_groups) + [k for k in new_groups if k not in base_groups]:
        b, n = base_groups.get(key), new_groups.get(key)
        first = next(g for g in (b, n) if g is not None).records[0]
        bs: Stats | None
        ns: Stats | None
        delta = tol = None
        if b is not None and n is not None:
            _check_same_runs(b, n, [*base_loaded.warnings, *new_loaded.warnings])
            changed = _changed_options(b.records[0].get("options") or {}, n.records[0].get("options") or {})
            if changed:
                notes.append(f"strategy {key[0]!r} on {key[1]!r} ran with other options: {changed}")
            bs, ns = stats(b.records), stats(n.records)
            delta = ns.accuracy_mean - bs.accuracy_mean
            tol = float(tolerance) if tolerance is not None else default_tolerance(b.records, n.records)
            verdict = REGRESSION if delta < -tol else IMPROVEMENT if delta > tol else SAME
        else:
            bs = stats(b.records) if b is not None else None
            ns = stats(n.records) if n is not None else None
            verdict = NEW if ns else MISSING
        patience = max(selected_on_test(r) for g in (b, n) if g for r in g.records)
        rows.append(Row(strategy=key[0], dataset=key[1], preset=preset_of(first), family=first.get("family"),
                        baseline=bs, new=ns, delta=delta, tolerance=tol, verdict=verdict, patience=patience))
    hardware = _hardware_note(base_loaded.records, new_loaded.records)
    warnings = [*base_loaded.warnings, *new_loaded.warnings, *notes, *hardware]
    studies = {side: stopping.study(mine, theirs) for side, mine, theirs in
               (("BASELINE", base_loaded.records, new_loaded.records),
                ("NEW", new_loaded.records, base_loaded.records))}  # a stopped run's twin may be on the other side
    return Comparison(rows=rows, tolerance=tolerance, baseline=base_name, new=new_name, warnings=warnings,
                      stopping={side: found for side, found in studies.items() if found})


def _hardware(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The hardware the records ran on (their ``machine``'s CPU model, instruction-set level and GPU),
    each distinct one once, in first-seen order; records from before sslzoo named it count for nothing."""
    found: dict[str, None] = {}
    for record in records:
        machine = record.get("machine")
        if isinstance(machine, Mapping):
            found[", ".join(str(machine[key]) for key in HARDWARE_KEYS if machine.get(key) is not None)] = None
    return list(found)


def _hardware_note(base: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[str]:
    """One warning when the two sides ran on different hardware: a run is deterministic on one CPU model
    and thread count, and another CPU moves the accuracies by a few tenths of a point."""
    b, n = _hardware(base), _hardware(new)
    if not b or not n or set(b) == set(n):
        return []
    return [f"the two sides ran on different hardware (BASELINE: {'; '.join(b)}; NEW: {'; '.join(n)}): "
            f"the same runs on another CPU give accuracies a few tenths of a point apart"]


def _check_datasets(base: dict[GroupKey, _Group], new: dict[GroupKey, _Group], base_name: str, new_name: str) -> None:
    def where(groups: dict[GroupKey, _Group]) -> dict[tuple[str, str], str]:
        return {(k[1], k[2]): _where(g.origins[0]) for k, g in groups.items()}

    bw, nw = where(base), where(new)
    sides = (("NEW", nw, "BASELINE", bw, base_name), ("BASELINE", bw, "NEW", nw, new_name))
    for side, mine, other, theirs, name in sides:
        for (dataset, preset), origin in mine.items():
            if (dataset, preset) not in theirs:
                have = ", ".join(f"{d} (preset {json.loads(p)})" for d, p in theirs)
                raise ResultsError(f"{origin}: {side} has records on dataset {dataset!r} (preset "
                                   f"{json.loads(preset)}), but {other} ({name}) is on {have}; compare records of "
                                   f"the same dataset and preset")


def _changed_options(base: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(base) | set(new))
    return ", ".join(f"{k} {base.get(k, '(unset)')!r} → {new.get(k, '(unset)')!r}"
                     for k in keys if canonical(base.get(k)) != canonical(new.get(k)))


def _check_same_runs(base: _Group, new: _Group, skipped: Sequence[str]) -> None:
    """The two sides ran the same settings and seeds; a mismatch of seeds names the lines the files
    skipped (``skipped``: a torn last line left by a killed run is the usual reason)."""
    b, n = base.records[0], new.records[0]
    name = f"strategy {b['strategy']!r} on {b['dataset']!r}"
    for k in SETUP_KEYS:
        if k in b and k in n and canonical(b[k]) != canonical(n[k]):
            raise ResultsError(f"{new.origins[0]}: {name} was run with {k} {n[k]!r} in NEW but {b[k]!r} in "
                               f"BASELINE ({base.origins[0]}); compare runs with the same settings")
    bs, ns = sorted(r["seed"] for r in base.records), sorted(r["seed"] for r in new.records)
    if bs != ns:
        raise ResultsError(f"{_where(new.origins[0])}: mismatched seeds for {name}: NEW has seeds "
                           f"{', '.join(map(str, ns))}, BASELINE ({_where(base.origins[0])}) has "
                           f"{', '.join(map(str, bs))}; run the same seeds on both sides"
                           + "".join(f" (note: {line})" for line in skipped))


# -- rendering ----------------------------------------------------------------------------------------
def _pct(stats_: Stats | None) -> str:
    if stats_ is None:
        return "—"
    return plus_minus(100 * stats_.accuracy_mean, 100 * stats_.accuracy_std) + " %"


def _pt(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "—"
    return f"{100 * value:+.2f} pt" if signed else f"{100 * value:.2f} pt"


def _pair(b: Stats | None, n: Stats | None, attr: str, fmt: str) -> str:
    bv = getattr(b, attr) if b else None
    nv = getattr(n, attr) if n else None
    if bv is None and nv is None:
        return "—"
    show = lambda v: "—" if v is None else format(v, fmt)  # noqa: E731
    return f"{show(bv)} → {show(nv)}"


def _columns(cmp: Comparison, marks: Mapping[str, str]) -> tuple[list[str], list[list[str]]]:
    al = any((r.baseline and r.baseline.budget_auc is not None) or (r.new and r.new.budget_auc is not None)
             for r in cmp.rows)
    targets = sorted({t for r in cmp.rows for side in (r.baseline, r.new) if side for t in side.labels_to_accuracy},
                     key=lambda t: (len(t), t))
    header = ["strategy", "dataset", "seeds", "baseline", "new", "Δ", "tolerance", "verdict"]
    if al:
        header.append("budget AUC")
    for t in targets:
        header.append(f"labels to {_target(t)}")
    header += ["labels", "wall s"]
    body = []
    for r in cmp.rows:
        seeds = next(side for side in (r.new, r.baseline) if side is not None).n
        dataset = r.dataset if r.preset is None else f"{r.dataset} ({r.preset})"
        row = [r.strategy + ("*" if r.patience else ""), dataset, str(seeds), _pct(r.baseline), _pct(r.new),
               _pt(r.delta),
               _pt(r.tolerance, signed=False), marks[r.verdict]]
        if al:
            row.append(_pair(r.baseline, r.new, "budget_auc", ".4f"))
        for t in targets:
            b = r.baseline.labels_to_accuracy.get(t) if r.baseline else None
            n = r.new.labels_to_accuracy.get(t) if r.new else None
            row.append("—" if b is None and n is None else
                       f"{'—' if b is None else format(b)} → {'—' if n is None else format(n)}")
        row += [_pair(r.baseline, r.new, "labels", ".0f"), _pair(r.baseline, r.new, "wall_seconds", ".1f")]
        body.append(row)
    return header, body


def _target(target: str) -> str:
    try:
        return f"{100 * float(target):g} %"
    except ValueError:
        return "acc." if not target else target


def _summary(cmp: Comparison) -> str:
    counts = Counter(r.verdict for r in cmp.rows)
    order = (REGRESSION, IMPROVEMENT, SAME, NEW, MISSING)
    parts = [f"{counts[v]} {v}{'s' if counts[v] > 1 and v in (REGRESSION, IMPROVEMENT) else ''}"
             for v in order if counts.get(v)]
    tol = (f"tolerance {100 * cmp.tolerance:.2f} pt" if cmp.tolerance is not None
           else f"tolerance: 2 standard errors of the per-seed differences, at least {100 * MIN_TOLERANCE:.2f} pt")
    return f"{', '.join(parts) or 'nothing to compare'} ({tol})"


TEXT_MARKS = {REGRESSION: "REGRESSION", IMPROVEMENT: "improvement", SAME: "same", NEW: "new", MISSING: "missing"}
MD_MARKS = {REGRESSION: "❌ regression", IMPROVEMENT: "⬆️ improvement", SAME: "✅ same", NEW: "🆕 new",
            MISSING: "⚠️ missing"}


def to_text(cmp: Comparison) -> str:
    lines = text_table(*_columns(cmp, TEXT_MARKS))
    lines.append("")
    lines.append(f"{cmp.new} vs {cmp.baseline}: {_summary(cmp)}")
    lines += [f"* {note}" for note in _selection_note(cmp)]
    for metric, (header, body) in _class_tables(cmp).items():
        lines += ["", f"{metric} by class, new − baseline:", *text_table(header, body)]
    for side, found in cmp.stopping.items():
        lines += ["", f"Stopping ({side}: {_side_name(cmp, side)}): the round each criterion fired, the labels it "
                      f"saves against the budget and the accuracy it gives up:", *stopping.to_text(found)]
    return "\n".join(lines)


def _side_name(cmp: Comparison, side: str) -> str:
    return cmp.baseline if side == "BASELINE" else cmp.new


MAX_CLASS_COLUMNS = 20
"""Per-class tables show each class up to this many classes, and only the counts beyond."""


def _class_tables(cmp: Comparison) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Per metric (recall, precision), a table of the strategies compared on both sides whose classes
    changed: each class's change in points and how many classes went up and down."""
    pairs = [(r, r.baseline.per_class, r.new.per_class) for r in cmp.rows if r.baseline and r.new]
    both = [(r, base, new) for r, base, new in pairs if base and new and base.classes == new.classes]
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    for metric in ("recall", "precision"):
        header: list[str] = ["strategy", "dataset"]
        body = []
        for r, base, new in both:
            changes = new.changes(base, metric)
            if not any(changes):
                continue
            shown = changes if len(changes) <= MAX_CLASS_COLUMNS else []
            if len(header) == 2:
                header += [*new.classes[:len(shown)], "up / down"]
            up, down = sum(1 for c in changes if c and c > 0), sum(1 for c in changes if c and c < 0)
            body.append([r.strategy, r.dataset, *(_pt(c).removesuffix(" pt") for c in shown),
                         f"{up} / {down} of {len(changes)}"])
        if body and all(len(row) == len(header) for row in body):  # one set of classes
            tables[metric.capitalize()] = (header, body)
    return tables


def _selection_note(cmp: Comparison) -> list[str]:
    patience = [r.patience for r in cmp.rows if r.patience]
    return [selected_on_test_note(patience) + "."] if patience else []


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(cmp: Comparison) -> str:
    title = "❌ accuracy regression" if cmp.regressions else "✅ no accuracy regression"
    lines = [f"### sslzoo compare: {title}", "",
             f"`{_md_cell(cmp.new)}` vs baseline `{_md_cell(cmp.baseline)}`: {_summary(cmp)}.", ""]
    lines += markdown_table(*_columns(cmp, MD_MARKS), left=2)
    lines += ["", "Accuracy is the final test accuracy, mean ± std over seeds; Δ is new − baseline. "
                  "Pairs read baseline → new."]
    lines += [f"\\* {note}" for note in _selection_note(cmp)]
    for metric, (header, body) in _class_tables(cmp).items():
        lines += ["", f"{metric} by class at the end of the runs, new − baseline in points (mean over seeds):", "",
                  *markdown_table(header, body, left=2)]
    for side, found in cmp.stopping.items():
        lines += ["", f"#### Stopping: {side.lower()} `{_md_cell(_side_name(cmp, side))}`", "",
                  *stopping.to_markdown(found)]
    return "\n".join(lines)
