"""``sslzoo compare``: verdicts and exit codes on real records, and a clear message for bad input."""

from __future__ import annotations

import json
import statistics

import pytest
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._reports.comparison import MIN_TOLERANCE, budget_auc, compare, curve_points, labels_to_accuracy
from sslzoo.errors import ResultsError
from tests.tiny_records import moons_records, write_jsonl


def invoke(*args: str):
    return CliRunner().invoke(main, ["compare", *args])


@pytest.fixture
def records():
    return moons_records("supervised", "random")


@pytest.fixture
def baseline(tmp_path, records):
    return write_jsonl(tmp_path / "baseline" / "records.jsonl", records).parent


def shifted(records, strategy, by):
    out = json.loads(json.dumps(records))
    for r in out:
        if r["strategy"] == strategy:
            r["test_accuracy"] = min(1.0, max(0.0, r["test_accuracy"] + by))
    return out


def test_identical_records_are_no_regression(baseline):
    result = invoke(str(baseline), str(baseline))
    assert result.exit_code == 0, result.output
    assert "REGRESSION" not in result.output
    assert "2 same" in result.output


def test_a_made_regression_exits_1_and_names_the_strategy(tmp_path, baseline, records):
    new = write_jsonl(tmp_path / "new.jsonl", shifted(records, "supervised", -0.3))
    result = invoke(str(baseline), str(new))
    assert result.exit_code == 1, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("supervised"))
    assert "REGRESSION" in row and "-30.00 pt" in row
    assert "random" in result.output and "1 regression, 1 same" in result.output


def test_an_improvement_is_not_a_failure(tmp_path, baseline, records):
    new = write_jsonl(tmp_path / "new.jsonl", shifted(records, "random", +0.05 + 4 * max_std(records)))
    result = invoke(str(baseline), str(new), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    verdicts = {row["strategy"]: row["verdict"] for row in data["rows"]}
    assert verdicts == {"supervised": "same", "random": "improvement"}
    assert data["exit_code"] == 0 and data["regressions"] == 0


def max_std(records):
    return max(compare(records, records).rows, key=lambda r: r.baseline.accuracy_std).baseline.accuracy_std


def test_tolerance_is_absolute_accuracy(tmp_path, baseline, records):
    new = write_jsonl(tmp_path / "new.jsonl", shifted(records, "supervised", -0.03))
    assert invoke(str(baseline), str(new), "--tolerance", "0.05").exit_code == 0
    assert invoke(str(baseline), str(new), "--tolerance", "0.01").exit_code == 1


def test_default_tolerance_follows_the_spread_of_per_seed_differences(records):
    base = [r for r in records if r["strategy"] == "supervised"]
    for r in base:
        r["test_accuracy"] = 0.9 if r["seed"] == 0 else 0.7  # the seeds themselves spread widely
    every_seed_drops = shifted(base, "supervised", -0.03)
    row = compare(base, every_seed_drops).rows[0]
    assert row.verdict == "regression" and row.tolerance == MIN_TOLERANCE
    reshuffled = json.loads(json.dumps(base))
    for r, d in zip(reshuffled, (0.10, -0.16)):  # mean -0.03, but the seeds disagree
        r["test_accuracy"] += d
    row = compare(base, reshuffled).rows[0]
    assert row.verdict == "same" and row.tolerance == pytest.approx(2 * statistics.stdev([0.10, -0.16]) / 2 ** 0.5)
    assert compare(base[:1], every_seed_drops[:1]).rows[0].tolerance == MIN_TOLERANCE  # one seed: the floor


def test_markdown_fits_a_pull_request_comment(tmp_path, baseline, records):
    new = write_jsonl(tmp_path / "new.jsonl", shifted(records, "supervised", -0.3))
    out = tmp_path / "comment.md"
    result = invoke(str(baseline), str(new), "--format", "md", "--output", str(out))
    assert result.exit_code == 1
    text = out.read_text()
    assert text.startswith("### sslzoo compare: ❌ accuracy regression")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0].startswith("| strategy | dataset | seeds | baseline | new | Δ |")
    assert len(table) == 2 + 2 and all(line.count("|") == table[0].count("|") for line in table)
    assert "budget AUC" in table[0]  # random is an active learner: its area under the budget curve


def _curve(*points: tuple[int, float]) -> list[dict]:
    return [{"round": n, "labels": labels, "test_accuracy": acc, "epoch": 1, "epochs": 1}
            for n, (labels, acc) in enumerate(points)]


def test_active_learning_metrics_come_from_the_curve_never_from_a_stored_copy(records):
    al = next(r for r in records if r["strategy"] == "random")
    assert len(al["curve"]) > 1
    points = [(e["labels"], e["test_accuracy"]) for e in al["curve"]]
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:]))
    assert budget_auc(al) == pytest.approx(area / (points[-1][0] - points[0][0]))
    # a schema-1 record's stored al_metrics is a derived figure: dropped on read, computed from the curve
    old = {**{k: v for k, v in al.items() if k != "schema"}, "al_metrics": {"budget_auc": 0.5}}
    assert budget_auc(old) == budget_auc(al)
    assert budget_auc({**al, "curve": []}) is None and labels_to_accuracy({**al, "curve": []}) == {}
    base = [{**r, "curve": _curve((10, 0.5), (20, 0.91))} for r in records]
    new = [{**r, "curve": _curve((10, 0.5), (20, 0.96)) if r["seed"] else _curve((10, 0.92))} for r in records]
    result = compare(base, new)
    row = result.rows[0]
    assert row.baseline.labels_to_accuracy["0.90"].labels == 20 and row.baseline.labels_to_accuracy["0.95"].reached == 0
    assert row.new.labels_to_accuracy["0.90"].labels == 15 and row.new.labels_to_accuracy["0.95"].reached == 1
    text = result.render("plain")
    assert "labels to 90 %" in text and "labels to 95 %" in text
    assert "20 → 15" in text and "never → 20 (1/2 seeds)" in text


def test_rounds_ending_at_the_same_oracle_labels_are_one_point_with_the_last_accuracy():
    # A>B: after the budget, the pseudo-labeling rounds all end at the same oracle labels
    curve = [{"labels": n, "test_accuracy": acc, "epoch": 5, "epochs": 5}
             for n, acc in [(10, 0.5), (20, 0.6), (20, 0.7), (20, 0.65)]]
    curve.insert(2, {"labels": 20, "test_accuracy": 0.1, "epoch": 2, "epochs": 5})  # mid-round: not a point
    assert curve_points({"curve": curve}) == [(10, 0.5), (20, 0.65)]


def test_python_api_takes_records_or_paths(baseline, records):
    result = sslzoo.compare(baseline, records)
    assert [r.strategy for r in result.rows] == ["supervised", "random"] and result.exit_code == 0
    assert result.as_dict()["rows"][0]["baseline"]["n"] == 2


def test_strategies_only_on_one_side_are_new_or_missing(records):
    result = compare(records, [r for r in records if r["strategy"] == "supervised"])
    assert {r.strategy: r.verdict for r in result.rows} == {"supervised": "same", "random": "missing"}
    assert result.exit_code == 0


# -- bad input: one line naming the file and the problem, exit 1, never a traceback -------------------
def bad(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_unreadable_file(tmp_path, baseline):
    path = tmp_path / "new.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage")
    bad(invoke(str(baseline), str(path)), str(path), "not a text file")


def test_not_json(tmp_path, baseline):
    path = tmp_path / "new.json"
    path.write_text("strategy,accuracy\nsupervised,0.9\n")
    bad(invoke(str(baseline), str(path)), str(path), "not valid JSON")


def test_foreign_json(tmp_path, baseline):
    path = tmp_path / "new.json"
    path.write_text(json.dumps({"benchmarks": [{"name": "test_x", "stats": {}}]}))
    bad(invoke(str(baseline), str(path)), str(path), "not an sslzoo record: missing strategy")


def test_records_from_another_dataset(tmp_path, baseline, records):
    path = write_jsonl(tmp_path / "new.jsonl", [{**r, "dataset": "mnist"} for r in records])
    bad(invoke(str(baseline), str(path)), str(path), "dataset 'mnist'", "is on moons")


def test_records_from_another_preset(tmp_path, baseline, records):
    path = write_jsonl(tmp_path / "new.jsonl", [{**r, "preset": "ci"} for r in records])
    bad(invoke(str(baseline), str(path)), str(path), "preset ci")


def test_records_with_other_settings(tmp_path, baseline, records):
    path = write_jsonl(tmp_path / "new.jsonl", [{**r, "labels": 20} for r in records])
    bad(invoke(str(baseline), str(path)), str(path), "labels 20 in NEW but 10 in BASELINE")


def test_empty_directory(tmp_path, baseline):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad(invoke(str(empty), str(baseline)), str(empty), "empty results directory")


def test_missing_path(tmp_path, baseline):
    bad(invoke(str(baseline), str(tmp_path / "nope")), "nope: no such file or directory")


def test_mismatched_seeds(tmp_path, baseline, records):
    path = write_jsonl(tmp_path / "new.jsonl", [r for r in records if r["seed"] == 0])
    bad(invoke(str(baseline), str(path)), str(path), "mismatched seeds", "NEW has seeds 0", "has 0, 1")


def test_the_same_seed_twice(tmp_path, baseline, records):
    path = write_jsonl(tmp_path / "new.jsonl", records + records[:1])
    bad(invoke(str(baseline), str(path)), f"{path}:{len(records) + 1}", "seed 0", "twice")


def test_negative_tolerance(baseline):
    with pytest.raises(ResultsError, match="--tolerance must be a number >= 0"):
        compare(baseline, baseline, tolerance=-0.1)


def test_test_set_selection_is_flagged_in_every_format(records):
    selected = json.loads(json.dumps(records))
    for r in selected:
        if r["strategy"] == "supervised":
            r["options"]["patience"] = 3
    result = compare(selected, selected)
    plain, md = result.render("plain"), result.render("md")
    assert "supervised*" in plain and "random*" not in plain
    assert plain.splitlines()[-1].startswith("* selected on the test set (patience=3)")
    assert "| supervised* |" in md and md.splitlines()[-1].startswith("\\* selected on the test set (patience=3)")
    assert [row["patience"] for row in json.loads(result.render("json"))["rows"]] == [3, 0]
    assert "selected on the test set" not in compare(records, records).render("plain")
