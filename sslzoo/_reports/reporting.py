"""``sslzoo report``: a markdown summary of result records plus PNG figures.

Figures (one set per dataset and preset), drawn with matplotlib's object API on the Agg canvas
(no pyplot, no global backend switch, no display needed):

* ``learning_curves_<dataset>.png``: test accuracy vs oracle labels, every strategy on one plot,
  the mean over seeds as a line and mean ± std as a band;
* ``<name>_<dataset>_<strategy>.png``: for a strategy whose plugin draws a series of its own (the
  ``report_series`` hook), test accuracy vs epoch with that series on a second axis (pseudo-labeling:
  ``pseudo_schedule_<dataset>_<strategy>.png``, Lee 2013's alpha(t));
* ``pseudo_buckets_<dataset>.png``: pseudo-label accuracy by difficulty bucket, for records that
  carry a ``pseudo`` entry with buckets;
* ``decision_boundary_<dataset>.png``: for 2-D datasets (records with a ``boundary`` entry), the
  final model's decision regions with the labeled, queried and pseudo-labeled points;

* ``confusion_<dataset>.png``: each strategy's confusion matrix at the end of its runs, summed over
  seeds, for records that carry one;

a label-efficiency table (how many labels the ``random`` strategy needs to match each strategy's
final accuracy), each strategy's efficiency boost over its control group (:mod:`sslzoo._planning.control_group`)
when the records hold that group, the stopping study (:mod:`sslzoo._reports.stopping`) when the records
watched or were stopped by a stopping criterion, and precision and recall by class.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslzoo._contract.record import selected_on_test, selected_on_test_note
from sslzoo._contract.registry import default_registry
from sslzoo._files import make_directory, replace_file, unwritable
from sslzoo._ops.metrics import efficiency_boost
from sslzoo._planning.control_group import control_of
from sslzoo._reports import stopping
from sslzoo._reports.classes import better_classes, class_table, draw_confusions
from sslzoo._reports.comparison import class_stats, curve_points, group
from sslzoo._results.formatting import markdown_table, mean_std, percent
from sslzoo._results.store import as_records, canonical, preset_of
from sslzoo.errors import ResultsError

DPI = 110
REFERENCE = "random"


@dataclass
class Report:
    """What :func:`report` wrote: the markdown file, the figures, the label-efficiency rows and the
    efficiency boosts over the control groups."""

    out_dir: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)
    label_efficiency: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    control_group: list[dict[str, Any]] = field(default_factory=list)


# -- helpers ----------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-") or "x"


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise ResultsError("sslzoo report needs matplotlib: pip install matplotlib") from None
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Any, path: Path, into: Report) -> None:
    """The figure as a PNG file, replaced whole (a link written through, a pipe refused: :func:`replace_file`)."""
    png = io.BytesIO()
    fig.savefig(png, format="png")
    replace_file(path, png.getvalue(), ResultsError)
    into.figures.append(path)


def _colors(names: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _fmean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def mean_curve(records: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float], list[float]]:
    """(labels, mean accuracy, std accuracy) over seeds at every label count any seed reached.

    Each seed's curve is interpolated linearly at the other seeds' label counts within its own
    range; outside it a seed does not count (so the band never extrapolates)."""
    curves = [sorted(curve_points(r)) for r in records]
    curves = [c for c in curves if c]
    xs = sorted({x for c in curves for x, _ in c})  # each reached by at least one seed
    stats = [mean_std([v for c in curves if (v := _interp(c, x)) is not None]) for x in xs]
    return xs, [mean for mean, _ in stats], [std for _, std in stats]


def _interp(points: Sequence[tuple[float, float]], x: float) -> float | None:
    if not points or x < points[0][0] or x > points[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1] if x == points[-1][0] else points[0][1]


def labels_needed(xs: Sequence[float], ys: Sequence[float], target: float) -> tuple[float | None, str]:
    """The first label count at which the curve (xs, ys) reaches ``target``: a count the curve has,
    never interpolated (:func:`sslzoo._ops.metrics.labels_to_reach`'s definition).

    Returns (labels, how): how is "" (reached at that count), "<=" (already at the first point) or
    ">" (never reached; labels is the largest count tried)."""
    if not xs:
        return None, ""
    at = next((i for i, y in enumerate(ys) if y >= target), None)
    if at is None:
        return xs[-1], ">"
    return xs[at], "<=" if at == 0 else ""


# -- the figures --------------------------------------------------------------------------------------
def learning_curves(groups: Mapping[str, Sequence[Mapping[str, Any]]], colors: Mapping[str, Any], title: str,
                    path: Path, into: Report) -> None:
    fig = _figure(7.5, 4.8)
    ax = fig.add_subplot()
    for name, records in groups.items():
        xs, means, stds = mean_curve(records)
        if not xs:
            continue
        n = len(records)
        label = f"{name} (n={n})"
        if len(xs) == 1:
            ax.errorbar(xs, means, yerr=stds if n > 1 else None, fmt="o", capsize=4, color=colors[name], label=label)
            continue
        ax.plot(xs, means, marker="o", markersize=3, color=colors[name], label=label)
        if n > 1:
            ax.fill_between(xs, [max(0.0, m - s) for m, s in zip(means, stds)],
                            [min(1.0, m + s) for m, s in zip(means, stds)],
                            color=colors[name], alpha=0.2, linewidth=0)
    ax.set_xlabel("oracle labels")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Learning curves: {title} (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    _save(fig, path, into)


def epoch_points(record: Mapping[str, Any]) -> list[tuple[float, float]]:
    """(epoch, test accuracy) along the run: every curve entry, placed at the epochs trained so far
    (entries with an ``epoch`` before ``epochs`` are mid-round evaluations of that round)."""
    points, done = [], 0.0
    for entry in record.get("curve") or []:
        if not isinstance(entry, Mapping) or entry.get("test_accuracy") is None:
            continue
        epochs = float(entry.get("epochs") or 0)
        at = done + float(entry["epoch"]) if entry.get("epoch") is not None else done + epochs
        points.append((at, float(entry["test_accuracy"])))
        if entry.get("epoch") is None or entry.get("epoch") == entry.get("epochs"):
            done += epochs
    return points


def strategy_series(name: str, records: Sequence[Mapping[str, Any]], series: Mapping[str, Any], color: Any,
                    title: str, path: Path, into: Report) -> None:
    """Test accuracy vs epoch of each seed and their mean, with a strategy's own ``series`` (what a
    plugin's ``report_series`` hook gave for the first record) on a second axis."""
    fig = _figure(7.5, 4.5)
    ax = fig.add_subplot()
    per_seed = [epoch_points(r) for r in records]
    xs = sorted({p[0] for pts in per_seed for p in pts})
    means = [_fmean([p[1] for pts in per_seed for p in pts if p[0] == x]) for x in xs]
    for pts in per_seed:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, alpha=0.25, linewidth=1)
    ax.plot(xs, means, marker="o", markersize=4, color=color, label=f"{name}: test accuracy (mean of {len(records)})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.grid(True, alpha=0.3)
    twin = ax.twinx()
    label = series["label"]
    if series.get("points"):
        twin.plot([p[0] for p in series["points"]], [p[1] for p in series["points"]], color="black",
                  linestyle="--", linewidth=1.2, label=label)
    else:
        into.notes.append(f"{name}: {series.get('note') or f'{label} is not drawn'}")
    twin.set_ylabel(label)
    twin.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(lines, [str(line.get_label()) for line in lines], fontsize="small", loc="lower right")
    ax.set_title(f"{series['title']}: accuracy and {label}, {title}")
    _save(fig, path, into)


def pseudo_buckets_of(record: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(bucket, pseudo-label accuracy) of each difficulty bucket of the record's pseudo-label tally
    (``pseudo.buckets``: name → ``{"count", "accuracy"}``), for the buckets that got any."""
    buckets = (record.get("pseudo") or {}).get("buckets") or {}
    return [(str(name), float(b["accuracy"])) for name, b in buckets.items() if b.get("accuracy") is not None]


def pseudo_buckets(groups: Mapping[str, Sequence[Mapping[str, Any]]], colors: Mapping[str, Any], title: str,
                   path: Path, into: Report) -> bool:
    data: dict[str, dict[str, list[float]]] = {}
    order: list[str] = []
    for name, records in groups.items():
        for record in records:
            for bucket, acc in pseudo_buckets_of(record):
                data.setdefault(name, {}).setdefault(bucket, []).append(acc)
                if bucket not in order:
                    order.append(bucket)
    if not data:
        return False
    fig = _figure(max(6.0, 1.2 * len(order) + 3), 4.5)
    ax = fig.add_subplot()
    width = 0.8 / len(data)
    for i, (name, per_bucket) in enumerate(data.items()):
        xs = [j + (i - (len(data) - 1) / 2) * width for j, b in enumerate(order) if b in per_bucket]
        stats = [mean_std(per_bucket[b]) for b in order if b in per_bucket]
        ax.bar(xs, [mean for mean, _ in stats], width=width, yerr=[std for _, std in stats], capsize=3,
               color=colors[name], label=name)
    ax.set_xticks(range(len(order)), order)
    ax.set_xlabel("difficulty bucket")
    ax.set_ylabel("pseudo-label accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(f"Pseudo-label accuracy by difficulty: {title}")
    _save(fig, path, into)
    return True


def _classes(grid: Mapping[str, Any]) -> list[list[int]]:
    rows = grid["classes"]
    return [[int(c) for c in row] if isinstance(row, str) else [int(c) for c in row] for row in rows]


def boundary_panel(ax: Any, name: str, record: Mapping[str, Any], palette: Sequence[str]) -> None:
    """One strategy's panel: the final model's classes on the grid, with the labeled, queried and
    pseudo-labeled points of the record's ``boundary`` entry."""
    from matplotlib.colors import ListedColormap

    b = record["boundary"]
    try:
        grid = b["grid"]
        classes = _classes(grid)
        (x0, x1), (y0, y1) = grid["x"], grid["y"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"strategy {name!r}: the record's boundary entry is malformed ({exc!r})") from None
    k = max(2, max(max(r) for r in classes) + 1)
    colors = [palette[i % len(palette)] for i in range(k)]
    ax.imshow(classes, origin="lower", extent=(x0, x1, y0, y1), aspect="auto", alpha=0.18,
              cmap=ListedColormap(colors), vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
    ax.contour([x0 + (x1 - x0) * i / (len(classes[0]) - 1) for i in range(len(classes[0]))],
               [y0 + (y1 - y0) * i / (len(classes) - 1) for i in range(len(classes))],
               classes, levels=[c + 0.5 for c in range(k - 1)], colors="k", linewidths=0.8)

    def pts(part: str) -> Mapping[str, Any]:
        value = b.get(part) or {}
        return value if isinstance(value, Mapping) else {}

    def scatter(part: str, color_key: str, **style: Any) -> int:
        p = pts(part)
        xy = p.get("xy") or []
        if not xy:
            return 0
        cs = [colors[int(c) % k] for c in p.get(color_key, [0] * len(xy))]
        ax.scatter([q[0] for q in xy], [q[1] for q in xy], c=cs, **style)
        return len(xy)

    pool = pts("pool")
    step_pseudo = (record.get("family") in ("ssl", "hybrid") and not pts("pseudo").get("xy")
                   and any((e.get("pseudo_labels") or 0) > 0 for e in record.get("curve") or []))
    if step_pseudo:  # pseudo-labels drawn per step: the pool points with the final model's argmax
        scatter("pool", "pred", s=9, marker=".", alpha=0.8, label="pseudo-labels (final model, pool)")
    elif pool.get("xy"):
        ax.scatter([q[0] for q in pool["xy"]], [q[1] for q in pool["xy"]], s=4, c="0.55", alpha=0.6,
                   label="unlabeled pool")
    scatter("pseudo", "label", s=10, marker=".", alpha=0.9, label="pseudo-labeled")
    wrong = [q for part in ("pseudo",) + (("pool",) if step_pseudo else ())
             for q, ok in zip(pts(part).get("xy") or [], pts(part).get("correct") or []) if not ok]
    if wrong:
        ax.scatter([q[0] for q in wrong], [q[1] for q in wrong], s=16, marker="x", c="k", linewidths=0.8,
                   label="wrong pseudo-label")
    scatter("labeled", "label", s=60, marker="o", edgecolors="k", linewidths=1.2, label="labeled (start)")
    scatter("queried", "label", s=90, marker="*", edgecolors="k", linewidths=0.8, label="queried")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(f"{name} (seed {record['seed']}): {100 * record['test_accuracy']:.1f} %", fontsize="medium")
    ax.tick_params(labelsize="small")
    ax.legend(fontsize="x-small", loc="lower left", framealpha=0.7)


def decision_boundaries(groups: Mapping[str, Sequence[Mapping[str, Any]]], title: str, path: Path,
                        into: Report) -> bool:

    panels = []
    for name, records in groups.items():
        record = next((r for r in sorted(records, key=lambda r: r["seed"]) if isinstance(r.get("boundary"), Mapping)),
                      None)
        if record is not None:
            panels.append((name, record))
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(4.2 * cols, 3.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (name, record) in zip(axes.flat, panels):
        boundary_panel(ax, name, record, palette)
    fig.suptitle(f"Decision boundaries: {title}")
    _save(fig, path, into)
    return True


# -- tables -------------------------------------------------------------------------------------------
def summary_rows(groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[list[str]]:
    """Per strategy: family, seeds, accuracy, labels, distinct pseudo-labeled ids ("—" for records
    from before they were counted), pseudo-label draws, pseudo-label accuracy and wall time; a
    strategy selected on the test set (``patience``) is marked ``*``."""
    rows = []
    for name, records in groups.items():
        last = [e for r in records for e in (r.get("curve") or [])[-1:]]
        draws = [e.get("pseudo_labels") or 0 for e in last]
        ids = [e.get("pseudo_ids") for e in last]
        pacc = [e["pseudo_accuracy"] for e in last if isinstance(e.get("pseudo_accuracy"), (int, float))]
        walls = [r["wall_seconds"] for r in records if isinstance(r.get("wall_seconds"), (int, float))]
        labels = [r.get("oracle_labels", r.get("labels")) or 0 for r in records]
        marked = "*" if any(selected_on_test(r) for r in records) else ""
        rows.append([name + marked, str(records[0].get("family") or "—"), str(len(records)),
                     percent([r["test_accuracy"] for r in records]), f"{_fmean(labels):.0f}",
                     f"{_fmean(ids):.0f}" if ids and all(isinstance(i, int) for i in ids) else "—",
                     f"{_fmean(draws):.0f}" if draws else "0",
                     f"{100 * _fmean(pacc):.1f} %" if pacc else "—",
                     f"{_fmean(walls):.1f}" if walls else "—"])
    return rows


def label_efficiency(groups: Mapping[str, Sequence[Mapping[str, Any]]],
                     reference: str = REFERENCE) -> list[dict[str, Any]]:
    """For each strategy: its mean final accuracy and labels, and the labels ``reference`` needs
    (on its mean curve) to reach that accuracy; ``saving`` is that number divided by the strategy's."""
    if reference not in groups:
        return []
    xs, ys, _ = mean_curve(groups[reference])
    rows = []
    for name, records in groups.items():
        acc = _fmean([float(r["test_accuracy"]) for r in records])
        labels = _fmean([float(r.get("oracle_labels", r.get("labels")) or 0) for r in records])
        needed, how = labels_needed(xs, ys, acc)
        rows.append({"strategy": name, "accuracy": acc, "labels": labels, "reference": reference,
                     "reference_labels": needed, "reached": how != ">", "bound": how,
                     "saving": needed / labels if needed is not None and labels > 0 and how != ">" else None})
    return rows


def control_group(groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """For each strategy whose control group (:func:`sslzoo._planning.control_group.control_of`) is among the records:
    the control's final accuracy and labels (means over its seeds), the labels the strategy needs to
    reach that accuracy on its mean curve over seeds and the efficiency boost
    (:func:`sslzoo._ops.metrics.efficiency_boost`), and in how many classes the strategy's precision and
    recall are higher than the control's."""
    rows = []
    for name, records in groups.items():
        control = control_of(name, records[0].get("family"))
        if control is None or control not in groups:
            continue
        xs, ys, _ = mean_curve(records)
        end = [(_fmean([float(r.get("oracle_labels", r.get("labels")) or 0) for r in groups[control]]),
                _fmean([float(r["test_accuracy"]) for r in groups[control]]))]
        boost = efficiency_boost(list(zip(xs, ys)), end)
        mine, theirs = class_stats(records), class_stats(groups[control])
        better = better_classes(mine, theirs) if mine and theirs and mine.classes == theirs.classes else None
        rows.append({"strategy": name, "control": control, **boost, "better": better,
                     "most_labels": xs[-1] if xs else None})
    return rows


def boost_text(row: Mapping[str, Any]) -> str:
    """``2.00×``, ``≥ 2.00×`` (there with the starting labels) or ``< 1.00×`` (not there with the most
    labels the strategy ran)."""
    if row["boost"] is not None:
        return ("≥ " if row["at_least"] else "") + f"{row['boost']:.2f}×"
    return f"< {row['control_labels'] / row['most_labels']:.2f}×" if row["most_labels"] else "—"


def _control_markdown(groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    rows = control_group(groups)
    missing = [name for name, records in groups.items()
               if (c := control_of(name, records[0].get("family"))) is not None and c not in groups]
    md = ["### Against the control group", ""]
    if rows:
        md += ["The control group replays a strategy's protocol with random queries (`sslzoo bench --control`, "
               "or a labeling session's `--control`). "
               "The efficiency boost is the labels the control group ends with divided by the labels the "
               "strategy needs to reach the control group's final accuracy (the first label count at which "
               "its mean curve over seeds reaches it): 2× reaches it with half the labels; ≥ marks a strategy "
               "that was there with its starting labels, < one that was not there with the most labels it ran.",
               ""]
        table = []
        for r in rows:
            better = r["better"] or {}
            table.append([r["strategy"], r["control"], f"{100 * r['control_accuracy']:.2f} %",
                          f"{r['control_labels']:.0f}",
                          f"{r['labels']:.0f}" if r["labels"] is not None else "not reached",
                          boost_text(r),
                          *(f"{better[m][0]} of {better[m][1]}" if m in better else "—"
                            for m in ("precision", "recall"))])
        md += markdown_table(["strategy", "control group", "its accuracy", "its labels", "labels to reach it",
                              "efficiency boost", "precision higher in", "recall higher in"], table, left=2)
        md.append("")
    if missing:
        md += [f"No control group in these records for {', '.join(missing)}: run the same bench with "
               f"`--control` (or start a labeling session with `--control F`) to measure the efficiency boost.", ""]
    return md if rows or missing else []


# -- the report ---------------------------------------------------------------------------------------
def report(results: Any, out_dir: str | os.PathLike, *, reference: str = REFERENCE,
           notes: Sequence[str] = ()) -> Report:
    """Write ``report.md`` and PNG figures for ``results`` (records, or paths to record files or
    directories) into ``out_dir``, with ``notes`` (lines about where the records came from) among its
    notes; returns what was written."""
    loaded = as_records(results, "RESULTS")
    groups = group(loaded, "RESULTS")
    out = make_directory(out_dir, ResultsError, "--out takes the directory for report.md and the figures")
    refused = unwritable(out / "report.md")
    if refused:  # before any figure is drawn
        raise ResultsError(f"{out / 'report.md'}: {refused}")
    into = Report(out_dir=out, markdown=out / "report.md", notes=[*notes, *loaded.warnings])
    registry = default_registry()
    by_dataset: dict[tuple[str, str], dict[str, list[Mapping[str, Any]]]] = {}
    for (strategy, dataset, preset), g in groups.items():
        by_dataset.setdefault((dataset, preset), {})[strategy] = sorted(g.records, key=lambda r: r["seed"])
    source = results if isinstance(results, (str, os.PathLike)) else (
        ", ".join(map(str, results)) if isinstance(results, Sequence) and results
        and all(isinstance(r, (str, os.PathLike)) for r in results) else f"{len(loaded.records)} records")
    md = ["# sslzoo report", "", f"{len(loaded.records)} records from `{source}`.", ""]
    for (dataset, preset_json), per in by_dataset.items():
        preset = json.loads(preset_json)
        title = dataset if preset is None else f"{dataset} ({preset})"
        slug = _slug(dataset if preset is None else f"{dataset}-{preset}")
        colors = _colors(list(per))
        first = next(iter(per.values()))[0]
        md += [f"## {title}", "",
               f"Initial labels: {first.get('labels', '—')}, model: {first.get('model', '—')}, "
               f"dataset options: `{json.dumps(first.get('dataset_options', {}))}`.", ""]
        md += markdown_table(["strategy", "family", "seeds", "test accuracy", "oracle labels", "pseudo-labeled ids",
                              "pseudo-label draws", "pseudo-label acc.", "wall s"], summary_rows(per), left=2)
        md.append("")
        selected = [selected_on_test(r) for records in per.values() for r in records if selected_on_test(r)]
        if selected:
            md += [f"\\* {selected_on_test_note(selected)}.", ""]

        path = out / f"learning_curves_{slug}.png"
        learning_curves(per, colors, title, path, into)
        md += ["### Learning curves", "", f"![Learning curves on {title}]({path.name})", ""]

        eff = label_efficiency(per, reference)
        md += ["### Label efficiency", ""]
        if eff:
            md.append(f"Labels `{reference}` needs to match each strategy's final accuracy: the first label count at "
                      f"which its mean curve over seeds reaches it (a count it ran, not interpolated).")
            md.append("")
            rows = [[e["strategy"], f"{100 * e['accuracy']:.2f} %", f"{e['labels']:.0f}",
                     f"{e['bound']} {e['reference_labels']:.0f}".strip() if e["reference_labels"] is not None else "—",
                     f"{e['saving']:.2f}×" if e["saving"] is not None else "not reached"] for e in eff]
            md += markdown_table(["strategy", "test accuracy", "labels", f"labels {reference} needs", "labels saved"],
                                 rows, left=2)
        else:
            md.append(f"No `{reference}` records on this dataset: run `-s {reference}` with the same budget to "
                      f"see how many labels each strategy saves.")
        md.append("")
        md += _control_markdown(per)
        found = stopping.study([r for r in loaded.records if (r["dataset"], canonical(preset_of(r))) ==
                                (dataset, preset_json)])  # with the stopped runs whose twins the tables show
        if found:
            md += ["### Stopping", "", *stopping.to_markdown(found), ""]

        table = class_table(per)
        if table is not None:
            md += ["### Precision and recall by class", "",
                   "At the end of the runs, the mean over seeds: precision is the share of the samples predicted "
                   "as a class that belong to it, recall the share of a class's samples predicted as it.", ""]
            md += markdown_table(*table)
            md.append("")
            fig = draw_confusions(_figure, per, [row[0] for row in table[1]])
            if fig is not None:
                path = out / f"confusion_{slug}.png"
                fig.suptitle(f"Confusion matrices: {title} (test samples, summed over seeds)")
                _save(fig, path, into)
                md += [f"![Confusion matrices on {title}]({path.name})", ""]

        for name, records in per.items():
            for series in registry.ask("report_series", record=records[0]):
                path = out / f"{series['name']}_{slug}_{_slug(name)}.png"
                strategy_series(name, records, series, colors[name], title, path, into)
                md += [f"### {name}: accuracy vs epoch and {series['label']}", "",
                       f"![{name} on {title}]({path.name})", ""]
                options = records[0].get("options") or {}
                if "eval_every" in options and not options["eval_every"]:
                    md += [f"The test accuracy of {name} was measured once per round; run with "
                           f"`-o eval_every=N` to record it every N epochs.", ""]

        path = out / f"pseudo_buckets_{slug}.png"
        if pseudo_buckets(per, colors, title, path, into):
            md += ["### Pseudo-label accuracy by difficulty", "", f"![Pseudo-label accuracy on {title}]({path.name})",
                   ""]

        path = out / f"decision_boundary_{slug}.png"
        if decision_boundaries(per, title, path, into):
            md += ["### Decision boundaries", "",
                   "The final model's classes (first seed of each strategy): circles are the initial labels, "
                   "stars the queried points, dots pseudo-labels, crosses wrong pseudo-labels.", "",
                   f"![Decision boundaries on {title}]({path.name})", ""]
    if into.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in into.notes] + [""]
    replace_file(into.markdown, "\n".join(md).encode("utf-8"), ResultsError)
    into.label_efficiency = [row for per in by_dataset.values() for row in label_efficiency(per, reference)]
    into.control_group = [row for per in by_dataset.values() for row in control_group(per)]
    return into
