"""The results page: computed verdicts, labels-to-error, and commands that reproduce the records."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from click.testing import CliRunner

from sslzoo._cli.main import main
from sslzoo._planning.preset import get_preset
from sslzoo._reports.page import TOLERANCE_PT, accuracy_rows, best_rows, labels_to_error_rows, verdict, write_results


def test_a_verdict_holds_the_reference_to_two_standard_errors_or_the_tolerance():
    # 90, 91, 92: mean 91, std 1, 2 standard errors 2/sqrt(3) = 1.15
    assert verdict([90, 91, 92], 90.0, TOLERANCE_PT) == "reproduced: +1.00 pt (allowed ±1.15 pt)"
    assert verdict([90, 91, 92], 89.5, TOLERANCE_PT) == "above (better): +1.50 pt (allowed ±1.15 pt)"
    assert verdict([90, 91, 92], 92.5, TOLERANCE_PT) == "below (worse): -1.50 pt (allowed ±1.15 pt)"
    # one seed, or seeds that agree exactly: the tolerance alone
    assert verdict([90.0], 90.4, TOLERANCE_PT) == "reproduced: -0.40 pt (allowed ±0.50 pt)"
    assert verdict([90.0, 90.0], 91.0, TOLERANCE_PT) == "below (worse): -1.00 pt (allowed ±0.50 pt)"
    # an error: more is worse
    assert verdict([5.0], 4.0, TOLERANCE_PT, higher_is_better=False) == "above (worse): +1.00 pt (allowed ±0.50 pt)"


def _record(strategy: str, seed: int, accuracy: float, preset: str = "al-linear-mnist4000@400",
            curve: list[tuple[int, float]] | None = None) -> dict:
    points = curve or [(400, accuracy)]
    return {"strategy": strategy, "seed": seed, "test_accuracy": accuracy, "preset": preset, "labels": points[0][0],
            "oracle_labels": points[-1][0], "wall_seconds": 1.0, "family": "al",
            "curve": [{"labels": n, "test_accuracy": a, "epoch": 1, "epochs": 1} for n, a in points]}


def test_accuracy_rows_judge_each_reference_number_with_the_seeds_behind_it():
    preset = get_preset("al-linear-mnist4000")
    records = [_record("least_confidence", s, a, "al-linear-mnist4000@10", [(10, 0.38), (400, a)])
               for s, a in ((0, 0.8950), (1, 0.8975), (2, 0.9000))]
    records += [_record("supervised", s, 0.8375) for s in (0, 1, 2)]
    rows = {row[0]: row for row in accuracy_rows(preset, records)}
    assert rows["least_confidence"][1:] == ["10 → 400", "89.75 %", "89.75 ± 0.25 %",
                                            "reproduced: +0.00 pt (allowed ±0.50 pt)", "0, 1, 2", "1.0"]
    assert rows["supervised"][4] == "reproduced: +0.00 pt (allowed ±0.50 pt)"


def test_a_variants_rows_and_best_epochs_stand_beside_its_base_with_their_own_references():
    base, faithful = get_preset("pl-cnn-mnist1000"), get_preset("pl-cnn-mnist1000-faithful")
    assert faithful.extends == base.name
    curves = {0: [0.97, 0.985, 0.98], 1: [0.975, 0.98, 0.984]}  # one round, evaluated at epochs 101, 102, 103
    records = [{**_record("pseudo_label", s, c[-1], faithful.name), "labels": 1110, "oracle_labels": 1110,
                "curve": [{"round": 0, "epoch": 101 + i, "labels": 1110, "test_accuracy": a} for i, a in enumerate(c)]}
               for s, c in curves.items()]
    records.append({**_record("supervised", 0, 0.95, faithful.name), "labels": 1110, "oracle_labels": 1110})
    rows = {row[0]: row for row in accuracy_rows(faithful, records, base)}
    assert rows["pseudo_label (faithful)"][2:4] == ["98.02 %", "98.20 ± 0.28 %"]  # the final epoch, its reference
    (best,) = best_rows(faithful, records, base)  # supervised was evaluated once: no best-epoch row
    assert best == ["pseudo_label (faithful)", "1110", "98.46 %", "98.45 ± 0.07 %",
                    "reproduced: -0.01 pt (allowed ±0.50 pt)", "102, 103", "0, 1"]
    assert best_rows(faithful, records)[0][0] == "pseudo_label"  # in its own section, untagged


def test_best_epochs_of_each_label_count_are_a_row_of_their_own():
    preset = get_preset("mnist-tiny")
    records = [{**_record("pseudo_label", 0, accs[-1], f"mnist-tiny@{n}"), "labels": n, "oracle_labels": n,
                "curve": [{"round": 0, "epoch": 5 * (i + 1), "labels": n, "test_accuracy": a}
                          for i, a in enumerate(accs)]}
               for n, accs in ((20, [0.70, 0.77, 0.73]), (10, [0.43, 0.30, 0.20]))]
    rows = best_rows(preset, records)
    assert [row[1] for row in rows] == ["10", "20"]
    assert [row[3:6] for row in rows] == [["43.00 %", "—", "5"], ["77.00 %", "—", "10"]]


def test_one_label_count_of_a_preset_runs_as_that_part_of_it_and_the_page_says_so(tmp_path):
    store = tmp_path / "results" / "mnist-tiny"
    ran = CliRunner().invoke(main, ["bench", "--preset", "mnist-tiny", "--ci", "-s", "supervised", "--labels", "10",
                                    "-q", "--out", str(store)])
    assert ran.exit_code == 0, ran.output
    (record,) = map(json.loads, (store / "labels-10" / "records.jsonl").read_text().splitlines())
    assert record["preset"] == "mnist-tiny:ci@10" and record["labels"] == 10
    write_results(tmp_path / "results", tmp_path / "results.md")
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    section = text[text.index("## `mnist-tiny`"):]
    command = re.search(r"- command: `([^`]+)`", section).group(1)
    assert command == f"sslzoo bench --preset mnist-tiny --ci --labels 10 -s supervised --out {store.as_posix()}"


def test_labels_to_error_is_the_mean_over_seeds_of_the_first_label_count_reached():
    preset = get_preset("gal2017-mnist")  # bald: 145 labels to 10 % error, 335 to 5 %
    curves = {0: [(20, 0.5), (130, 0.89), (140, 0.90), (390, 0.93), (400, 0.94)],  # reaches 90 % at 140
              1: [(20, 0.5), (140, 0.89), (150, 0.91), (390, 0.93), (400, 0.94)]}  # at 150, never 145
    records = [_record("bald", s, c[-1][1], "gal2017-mnist", c) for s, c in curves.items()]
    (row,) = labels_to_error_rows(preset, records)
    assert row[:4] == ["bald", "145", "145 ± 7", "reproduced: +0 labels (allowed ±10 labels)"]
    assert row[4:7] == ["335", "not reached by 400", "above (worse): beyond the curve's end"]
    assert row[-1] == "0, 1"


def test_the_page_shows_a_command_that_reproduces_its_records(tmp_path):
    store = tmp_path / "results" / "moons-6"
    ran = CliRunner().invoke(main, ["bench", "--preset", "moons-6", "--ci", "-s", "supervised", "--seeds", "2", "-q",
                                    "--out", str(store)])
    assert ran.exit_code == 0, ran.output
    page = tmp_path / "docs" / "results.md"
    write_results(tmp_path / "results", page)
    text = page.read_text(encoding="utf-8")
    section = text[text.index("## `moons-6`"):]
    command = re.search(r"- command: `([^`]+)`", section).group(1)
    assert command == f"sslzoo bench --preset moons-6 --ci -s supervised --seeds 2 --out {store.as_posix()}"
    again = tmp_path / "again"
    args = shlex.split(command)[1:-1] + [str(again), "-q"]
    assert CliRunner().invoke(main, args).exit_code == 0

    def accuracies(path):
        return sorted((r["seed"], r["test_accuracy"]) for r in map(json.loads, path.read_text().splitlines()))

    assert accuracies(again / "records.jsonl") == accuracies(store / "records.jsonl")
    assert "**Verdicts** are computed from the records" in text
    write_results(tmp_path / "results", page)  # its own page: rewritten
    assert page.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("name", ["moons-6"])
def test_records_that_drift_from_the_preset_are_flagged_on_the_page(name, tmp_path):
    store = tmp_path / "results" / name
    ran = CliRunner().invoke(main, ["bench", "--preset", name, "--ci", "-s", "supervised", "-o", "lr=0.02", "-q",
                                    "--out", str(store)])
    assert ran.exit_code == 0, ran.output
    write_results(tmp_path / "results", tmp_path / "results.md")
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "**These records differ from what the preset runs now**: they ran with lr=0.02 (the preset now runs " \
           "0.01) for supervised." in text
