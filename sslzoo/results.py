"""``sslzoo results``: the results page (``docs/results.md``) from committed result records.

For every shipped preset (:mod:`sslzoo.preset`) it reads ``RESULTS/<preset>/records.jsonl`` (as
written by ``sslzoo bench --preset NAME [--scaled] --out RESULTS/NAME``) and writes one section:
the protocol, which variant was run (full, or scaled down and labeled as such) with the exact
command, device, seeds and wall time, a table of the published reference beside our mean ± std
over seeds, learning-curve figures for the active-learning presets, and the analysis written in
``RESULTS/<preset>/analysis.md`` (committed beside the records). Records that carry an
``implementation`` (the reference's own code run on sslzoo's split by a script under
``benchmarks/``, e.g. ``scikit-learn``) may sit in any sub-directory ``RESULTS/<preset>/*/``: they
are rows ``strategy (implementation)`` beside ours in the same table, with the ``command`` they
carry. Nothing on the page is typed by hand: regenerate it with ``sslzoo results`` after new
results are committed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sslzoo.preset import Preset, get_preset, list_presets
from sslzoo.store import load

Record = Mapping[str, Any]
FIGURES = "results"  # figures go to <page dir>/results/


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _pm(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    mean, std = _mean_std([scale * v for v in values])
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _command(preset_name: str, out: str) -> str:
    size = preset_name.partition("@")[0].partition(":")[2]
    flag = f" --{size}" if size else ""
    return f"sslzoo bench --preset {preset_name.partition(':')[0].partition('@')[0]}{flag} --out {out}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return out + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def _by(records: Sequence[Record], *keys: str) -> dict[tuple, list[Record]]:
    groups: dict[tuple, list[Record]] = {}
    for r in records:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    return groups


def _labels_of(record: Record) -> int:
    name = str(record.get("preset") or "")
    return int(name.rpartition("@")[2]) if "@" in name else int(record.get("labels") or 0)


def _delta(ours: float, ref: float, n: int, higher_is_better: bool = True, unit: str = " pt") -> str:
    diff = ours - ref
    if round(abs(diff), 2) == 0:
        return f"equal, {n} seed{'s' if n != 1 else ''}"
    better = diff > 0 if higher_is_better else diff < 0
    word = "above" if diff > 0 else "below"
    verdict = " (better)" if better and abs(diff) > 0 else ""
    return f"{abs(diff):.2f}{unit} {word}{verdict}, {n} seed{'s' if n != 1 else ''}"


def _by_strategy(records: Sequence[Record]) -> list[tuple[str, str, list[Record]]]:
    """(strategy, row name, records) per strategy and implementation: each strategy's own rows first,
    then its rows from other implementations (``strategy (implementation)``), in first-seen order."""
    order = list(dict.fromkeys(str(r["strategy"]) for r in records))
    groups = sorted(_by(records, "strategy", "implementation").items(),
                    key=lambda kv: (order.index(kv[0][0]), kv[0][1] is not None))
    return [(strategy, strategy if impl is None else f"{strategy} ({impl})", recs)
            for (strategy, impl), recs in groups]


def accuracy_rows(preset: Preset, records: Sequence[Record]) -> list[list[str]]:
    """One row per (label count, strategy, implementation): reference (a number, or one per label
    count), ours (mean ± std over seeds), difference."""
    ref = preset.reference.get("values", {})
    metric = preset.reference.get("metric", "test_accuracy")
    rows = []
    for strategy, name, recs in _by_strategy(records):
        for labels, group in sorted(_by(recs, "preset").items(), key=lambda kv: _labels_of(kv[1][0])):
            n_labels = _labels_of(group[0])
            accs = [float(r["test_accuracy"]) for r in group]
            walls = [float(r.get("wall_seconds") or 0) for r in group]
            value = ref.get(strategy)
            if isinstance(value, Mapping):  # per label count
                value = value.get(str(n_labels))
            if metric == "test_error":
                ours = [100 * (1 - a) for a in accs]
                text = _pm(ours, 1.0)
                ref_text = f"{value:.2f} % error" if value is not None else "—"
                delta = _delta(statistics.fmean(ours), value, len(group), higher_is_better=False) if value is not None else "—"
                text += " % error"
            else:
                text = _pm(accs) + " %"
                ref_text = f"{value:.2f} %" if value is not None else "—"
                delta = _delta(100 * statistics.fmean(accs), value, len(group)) if value is not None else "—"
            final = int(statistics.fmean(r.get("oracle_labels", n_labels) for r in group))
            rows.append([name, f"{n_labels}" + (f" → {final}" if final != n_labels else ""), ref_text, text,
                         delta, str(len(group)), f"{statistics.fmean(walls):.1f}"])
    return rows


def start_rows(preset: Preset, records: Sequence[Record]) -> list[list[str]]:
    """Active learning: accuracy at the first round (the starting labels) beside ``reference.start``."""
    start = preset.reference.get("start", {})
    rows = []
    for (strategy,), recs in _by(records, "strategy").items():
        if strategy not in start:
            continue
        accs = [float(r["curve"][0]["test_accuracy"]) for r in recs]
        rows.append([strategy, str(recs[0].get("labels")), f"{start[strategy]:.2f} %", _pm(accs) + " %",
                     _delta(100 * statistics.fmean(accs), start[strategy], len(recs)), str(len(recs))])
    return rows


def labels_to_error_rows(preset: Preset, records: Sequence[Record]) -> list[list[str]]:
    """Gal et al.: labels needed to reach each test error, on the mean curve over seeds."""
    from sslzoo.reporting import labels_needed, mean_curve

    ref = preset.reference.get("values", {})
    rows = []
    for (strategy,), recs in _by(records, "strategy").items():
        xs, ys, _ = mean_curve(recs)
        cells = []
        for error in ("10", "5"):
            needed, how = labels_needed(xs, ys, 1 - int(error) / 100)
            ours = "—" if needed is None else (f"not reached by {needed:.0f}" if how == ">" else
                                               f"{how} {needed:.0f}".strip())
            value = ref.get(strategy, {}).get(error)
            cells += [str(value) if value is not None else "—", ours]
        final = [float(r["test_accuracy"]) for r in recs]
        rows.append([strategy, *cells, f"{int(statistics.fmean(r['oracle_labels'] for r in recs))}",
                     _pm(final) + " %", str(len(recs))])
    return rows


def _is_al(records: Sequence[Record]) -> bool:
    return any(r.get("family") in ("al", "hybrid") for r in records)


def section(preset: Preset, results: Path, page_dir: Path, figures: list[Path]) -> list[str]:
    md = [f"## `{preset.name}`: {preset.title}", "", preset.description.strip(), ""]
    ref = preset.reference
    if ref.get("citation"):
        md += [f"Reference: {ref['citation']}", ""]
    if ref.get("notes"):
        md += [f"Reference notes: {' '.join(str(ref['notes']).split())}", ""]
    store = results / preset.name
    files = sorted(store.glob("records.jsonl")) + sorted(store.glob("labels-*/records.jsonl"))
    if not files:
        md += [f"**Not run yet**: no records in `{store.as_posix()}/`. Run "
               f"`sslzoo bench --preset {preset.name} --scaled --out {store.as_posix()}`.", ""]
        return md
    others = sorted(p for p in store.glob("*/records.jsonl") if not p.parent.name.startswith("labels-"))
    every = load(files + others).records
    records = [r for r in every if not r.get("implementation")]
    names = sorted({str(r.get("preset")) for r in records})
    sizes = sorted({n.partition("@")[0].partition(":")[2] or "full" for n in names})
    variant = preset.variant(sizes[0]) if len(sizes) == 1 and sizes[0] in ("scaled", "ci") else preset
    devices = sorted({str(r.get("device")) for r in records})
    wall = sum(float(r.get("wall_seconds") or 0) for r in records)
    seeds = sorted({int(r["seed"]) for r in records})
    versions = sorted({str((r.get("versions") or {}).get("sslzoo")) for r in records})
    if sizes != ["full"]:
        md += [f"**Scaled-down variant ({', '.join(sizes)})**, not the published protocol: "
               f"{' '.join(variant.note.split())} The full protocol stays runnable (for a GPU) with "
               f"`sslzoo bench --preset {preset.name}`.", ""]
    patience = variant.options.get("patience")
    if patience:
        md += [f"**Selected on the test set**, as the original protocol: each fit stops after {patience} epochs "
               f"without a better test accuracy and keeps its best weights (`patience`), so these numbers "
               f"overstate what a held-out test set would show.", ""]
    md += [f"- command: `{_command(names[0], store.as_posix())}`",
           f"- runs: {len(records)} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''}: "
           f"{', '.join(map(str, seeds))}), device: {', '.join(devices)}, total wall time: {wall:.0f} s, "
           f"sslzoo {', '.join(versions)}"]
    for (impl,), recs in _by([r for r in every if r.get("implementation")], "implementation").items():
        library = sorted({str((r.get("versions") or {}).get(impl)) for r in recs})
        md += [f"- {impl} {', '.join(library)}, on the same split: "
               + ", ".join(f"`{c}`" for c in dict.fromkeys(str(r.get("command")) for r in recs))
               + f" ({len(recs)} records, total wall time {sum(float(r.get('wall_seconds') or 0) for r in recs):.0f} s)"]
    md.append("")
    metric = ref.get("metric", "test_accuracy")
    if metric == "labels_to_error":
        md += _table(["strategy", "reference labels to 10% error", "ours", "reference labels to 5% error", "ours",
                      "final labels", "final test accuracy", "seeds"], labels_to_error_rows(preset, records))
    else:
        what = "test error" if metric == "test_error" else "test accuracy"
        md += _table(["strategy", "labels", f"reference {what}", "ours (mean ± std)", "ours vs reference",
                      "seeds", "wall s / run"], accuracy_rows(preset, every))
        rows = start_rows(preset, records)
        if rows:
            md += ["", "At the start (first round, before any query):", ""]
            md += _table(["strategy", "labels", "reference", "ours", "ours vs reference", "seeds"], rows)
    md.append("")
    if _is_al(records):
        from sslzoo.reporting import Report, _colors, learning_curves

        groups = {s: recs for (s,), recs in _by(records, "strategy").items()
                  if recs[0].get("family") in ("al", "hybrid")}  # the budget curves, not fixed-label baselines
        path = page_dir / FIGURES / f"learning_curves_{preset.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        into = Report(out_dir=path.parent, markdown=path.parent / "unused.md")
        learning_curves(groups, _colors(list(groups)), f"{preset.name} ({', '.join(sizes)})", path, into)
        figures.append(path)
        md += [f"![Learning curves of {preset.name}]({FIGURES}/{path.name})", ""]
    analysis = store / "analysis.md"
    if analysis.is_file():
        md += ["### Analysis", "", analysis.read_text(encoding="utf-8").strip(), ""]
    return md


def write_results(results: str | Path = "benchmarks/results", page: str | Path = "docs/results.md") -> list[Path]:
    """Write the results page (and its figures); returns the files written."""
    results, page = Path(results), Path(page)
    page.parent.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    md = ["# Reproducing published results", "",
          "<!-- generated by `sslzoo results` from benchmarks/results/ and sslzoo/presets/: do not edit -->", "",
          "Each section is one protocol preset (`sslzoo presets`), run with `sslzoo bench --preset NAME`. On the "
          "2-core CPU these results were produced on, the long protocols ran in a scaled-down variant "
          "(`--scaled`, labeled as such below); the full presets are unchanged and meant for a GPU. "
          "Ours: mean ± std over seeds of the final test accuracy (the last round or epoch; a best epoch chosen "
          "on the test set only where the published protocol itself did so, and that section says so).", ""]
    md += ["Presets: " + ", ".join(f"[`{n}`](#{n})" for n in list_presets()) + ".", ""]
    for name in list_presets():
        md += [f'<a id="{name}"></a>', ""] + section(get_preset(name), results, page.parent, figures)
    page.write_text("\n".join(md).rstrip() + "\n", encoding="utf-8")
    return [page, *figures]


def main() -> None:  # pragma: no cover - python -m sslzoo.results
    for path in write_results():
        print(path)


if __name__ == "__main__":  # pragma: no cover
    main()
