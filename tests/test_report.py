"""``sslzoo report``: PNG figures that decode as sensible images, and markdown that links them."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from PIL import Image

import sslzoo
from sslzoo._cli.main import main
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo._default_plugins.pseudo_label import alpha_schedule, report_series
from sslzoo._reports import reporting
from sslzoo._reports.reporting import label_efficiency, labels_needed, mean_curve, pseudo_buckets_of
from sslzoo.errors import ResultsError
from tests.tiny_records import moons_records, write_jsonl


@pytest.fixture
def records():
    return moons_records()


@pytest.fixture
def results(tmp_path, records):
    return write_jsonl(tmp_path / "results" / "records.jsonl", records).parent


def check_png(path, min_size=(500, 300), max_size=(4000, 4000)):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.load()  # decodes the whole image, not just the header
        width, height = image.size
    assert min_size[0] <= width <= max_size[0] and min_size[1] <= height <= max_size[1], (path, image.size)
    colors = Image.open(path).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is None or len(colors) > 20, f"{path} looks blank"


def test_report_on_real_records_writes_pngs_and_markdown_that_links_them(tmp_path, results):
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["report", str(results), "--out", str(out)])
    assert result.exit_code == 0, result.output
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["confusion_moons.png", "decision_boundary_moons.png", "learning_curves_moons.png",
                    "pseudo_buckets_moons.png", "pseudo_schedule_moons_pseudo_label.png"]
    for name in pngs:
        check_png(out / name)
    markdown = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(links) == pngs and all((out / link).is_file() for link in links)
    assert sorted(result.output.split()) == sorted([str(out / "report.md"), *(str(out / name) for name in pngs)])
    for strategy in ("supervised", "random", "least_confidence", "pseudo_label"):
        assert f"| {strategy} |" in markdown
    assert "labels random needs" in markdown  # the label-efficiency table


def test_pseudo_label_buckets_are_drawn_from_the_records_pseudo_label_tally(tmp_path, records):
    for r in records:
        if r["strategy"] == "pseudo_label":
            r["pseudo"]["buckets"] = {"easy": {"count": 100, "accuracy": 0.95},
                                      "medium": {"count": 50, "accuracy": 0.8},
                                      "hard": {"count": 20, "accuracy": 0.55 + 0.1 * r["seed"]}}
    last = records[-1]
    assert pseudo_buckets_of(last) == [("easy", 0.95), ("medium", 0.8), ("hard", 0.55 + 0.1 * last["seed"])]
    assert pseudo_buckets_of({**last, "pseudo": {"buckets": {"easy": {"count": 0, "accuracy": None}}}}) == []
    written = sslzoo.report(records, tmp_path)
    path = tmp_path / "pseudo_buckets_moons.png"
    assert path in written.figures
    check_png(path)
    assert "(pseudo_buckets_moons.png)" in written.markdown.read_text()


def test_label_efficiency_reads_the_first_label_count_of_randoms_mean_curve(records):
    rows = {row["strategy"]: row for row in label_efficiency(
        {name: [r for r in records if r["strategy"] == name] for name in ("random", "least_confidence")})}
    xs, ys, _ = mean_curve([r for r in records if r["strategy"] == "random"])
    assert xs == [10, 20, 30]
    lc = rows["least_confidence"]
    needed, how = labels_needed(xs, ys, lc["accuracy"])
    assert lc["reference_labels"] == needed and lc["bound"] == how
    assert labels_needed([10, 20, 30], [0.6, 0.7, 0.9], 0.8) == (30, "")  # a count the curve has: never 25
    assert labels_needed([10, 20, 30], [0.6, 0.7, 0.9], 0.95) == (30, ">")
    assert labels_needed([10, 20, 30], [0.6, 0.7, 0.9], 0.5) == (10, "<=")


def test_alpha_schedule_follows_lee_2013():
    xs, alphas = alpha_schedule({"t1": 5, "t2": 15, "alpha_f": 3.0, "schedule": "epoch"}, 20)
    assert xs == [0, 5, 15, 20] and alphas == [0, 0, 3.0, 3.0]
    assert alpha_schedule({"t1": 5, "t2": 15, "alpha_f": 3.0, "schedule": "step"}, 20) is None


def test_pseudo_label_draws_alpha_through_the_report_series_hook_over_the_epochs_a_record_trained():
    curve = [{"round": 0, "epoch": e, "epochs": 10} for e in (5, 10)] + [{"round": 1, "epoch": 10, "epochs": 10}]
    series = report_series({"strategy": "pseudo_label", "options": {"t1": 5, "t2": 15, "alpha_f": 3.0}, "curve": curve})
    assert series == {"name": "pseudo_schedule", "title": "Pseudo-labeling", "label": "alpha(t)",
                      "points": [[0.0, 0.0], [5.0, 0.0], [15.0, 3.0], [20.0, 3.0]]}
    step = report_series({"options": {"pseudo_label.t1": 5, "pseudo_label.t2": 15, "pseudo_label.alpha_f": 3.0,
                                      "pseudo_label.schedule": "step"}, "curve": curve})
    assert step is not None and "points" not in step and "schedule='step'" in step["note"]
    assert report_series({"strategy": "entropy", "options": {"query_size": 4}, "curve": curve}) is None


def test_the_report_asks_every_plugin_for_its_series(tmp_path, records, monkeypatch):
    asked = []

    class Plugin:
        @hookimpl
        def report_series(self, record):
            asked.append(record["strategy"])
            if record["strategy"] == "random":
                return {"name": "mine", "title": "Mine", "label": "m(t)", "points": [[0, 1], [4, 2]]}
            return None

    registry = Registry(make_plugins(load="", extra=(Plugin(),)))
    monkeypatch.setattr(reporting, "default_registry", lambda: registry)
    written = reporting.report(records, tmp_path)
    assert set(asked) == {r["strategy"] for r in records}
    assert (tmp_path / "mine_moons_random.png").is_file()
    assert "### random: accuracy vs epoch and m(t)" in written.markdown.read_text(encoding="utf-8")


def test_a_record_on_another_setup_in_the_same_results_is_an_error(tmp_path, records):
    path = write_jsonl(tmp_path / "mixed.jsonl", records + [{**records[0], "seed": 7, "labels": 50}])
    with pytest.raises(ResultsError, match=r"mixed.jsonl:\d+: RESULTS mixes runs of strategy 'supervised'"):
        sslzoo.report(path, tmp_path / "out")


def test_report_bad_input_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["report", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "empty results directory" in result.output
    assert len(result.output.strip().splitlines()) == 1
    (tmp_path / "x.json").write_text(json.dumps([{"name": "not a record"}]))
    result = CliRunner().invoke(main, ["report", str(tmp_path / "x.json"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "x.json[0]: not an sslzoo record" in result.output


def test_test_set_selection_is_flagged_in_the_report(tmp_path, records):
    for r in records:
        if r["strategy"] == "supervised":
            r["options"]["patience"] = 4
    markdown = sslzoo.report(records, tmp_path).markdown.read_text()
    assert "| supervised* | baseline |" in markdown and "| random | al |" in markdown
    assert "\\* selected on the test set (patience=4): training stopped" in markdown
