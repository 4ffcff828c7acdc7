"""Protocol presets: the shipped TOML files, ``sslzoo presets``, ``bench --preset/--config`` and the results page."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslzoo.cli import main
from sslzoo.errors import PresetError, UnknownNameError
from sslzoo.preset import get_preset, list_presets, merge_options, validate

ROOT = Path(__file__).resolve().parents[1]
PRESETS = list_presets()
EXPECTED = {"pl-cnn-mnist1000", "lee2013-mnist", "selftrain-mlp-mnist1000", "selftrain-logreg-mnist1000",
            "selftrain-logreg-mnist1000-faithful",
            "al-linear-mnist4000", "gal2017-mnist", "moons-6", "mnist-missing-class", "mnist-tiny"}
USER_FILE = """
title = "my moons"
strategies = ["supervised", "pseudo_label"]
dataset = "moons"
labels = 6
seeds = 2
[options]
epochs = 3
"pseudo_label.t1" = 1
"pseudo_label.t2" = 2
[dataset_options]
n_train = 200
n_test = 100
"""


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def records_of(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_issue_presets_are_shipped():
    assert set(PRESETS) == EXPECTED


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_validates_at_every_size(name):
    preset = get_preset(name)
    validate(preset)
    assert preset.reference.get("citation") and preset.reference.get("metric")
    assert preset.variant("ci").size == "ci" and preset.variant("ci").note  # the CI size is labeled as such


def test_presets_json_lists_every_preset_with_its_reference():
    rows = records_of(CliRunner().invoke(main, ["presets", "--json"]))
    assert [r["name"] for r in rows] == PRESETS
    by_name = {r["name"]: r for r in rows}
    assert by_name["pl-cnn-mnist1000"]["reference"]["values"] == {"supervised": 95.57, "pseudo_label": 98.46}
    assert by_name["lee2013-mnist"]["labels"] == [100, 600, 1000, 3000]
    assert by_name["al-linear-mnist4000"]["labels_for"] == {"supervised": [400, 4000]}
    table = invoke("presets")
    assert table.exit_code == 0 and all(name in table.output for name in PRESETS)
    assert "10 (supervised: 400,4000)" in table.output


@pytest.mark.parametrize(("args", "fragment"), [
    (["bench", "--preset", "moons6"], "unknown preset 'moons6'; did you mean moons-6?"),
    (["bench", "--preset", "moons-6", "--config", "x.toml"], "not both"),
    (["bench", "--scaled"], "--scaled and --ci need --preset NAME or --config FILE"),
    (["bench", "--config", "/no/such/file.toml"], "/no/such/file.toml: cannot read the preset file"),
])
def test_bad_preset_requests_are_one_line_errors(args, fragment):
    result = invoke(*args)
    assert result.exit_code != 0
    assert fragment in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 or result.exit_code == 2  # usage errors add a usage line


@pytest.mark.parametrize(("text", "fragment"), [
    ("strategies = [\n", "not valid TOML"),
    ('strategies = ["supervised"]\ndataset = "moons"\n', "missing the required key 'labels'"),
    ('colour = "red"\n' + USER_FILE, "unknown key 'colour'"),
    (USER_FILE.replace("labels = 6", "labels = -6"), "labels must be a positive integer or a non-empty list"),
    (USER_FILE.replace("labels = 6", "labels = [6, 0]"), "labels must be a positive integer or a non-empty list"),
    (USER_FILE.replace('"pseudo_label.t1" = 1', '"pseudo_label.t1" = "soon"'), "t1"),
    (USER_FILE.replace("seeds = 2", "seeds = 2\nlabels_for = { entropy = [40] }"),
     "labels_for names entropy, not in strategies"),
    (USER_FILE.replace("seeds = 2", "seeds = 2\nlabels_for = { supervised = [0] }"),
     "labels_for.supervised must be"),
])
def test_a_bad_toml_file_names_the_file_and_the_problem(tmp_path, text, fragment):
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    result = invoke("bench", "--config", str(path), "-q")
    assert result.exit_code == 1, result.output
    assert str(path) in result.output and fragment in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_unknown_preset_is_an_unknown_name_error():
    with pytest.raises(UnknownNameError, match="did you mean"):
        get_preset("pl-cnn-mnist100")
    with pytest.raises(PresetError):
        get_preset("moons-6").variant("huge")


def test_config_runs_a_user_file_and_records_carry_its_name(tmp_path):
    path = tmp_path / "my-moons.toml"
    path.write_text(USER_FILE, encoding="utf-8")
    recs = records_of(CliRunner().invoke(main, ["bench", "--config", str(path), "--json", "-", "-q"]))
    assert [(r["strategy"], r["seed"], r["preset"]) for r in recs] == [
        ("supervised", 0, "my-moons"), ("supervised", 1, "my-moons"),
        ("pseudo_label", 0, "my-moons"), ("pseudo_label", 1, "my-moons")]
    assert all(r["dataset_options"]["n_train"] == 200 and r["options"]["epochs"] == 3 for r in recs)


def test_explicit_flags_override_the_preset(tmp_path):
    path = tmp_path / "my-moons.toml"
    path.write_text(USER_FILE.replace('epochs = 3', 'epochs = 3\n"pseudo_label.epochs" = 4'), encoding="utf-8")
    recs = records_of(CliRunner().invoke(main, [
        "bench", "--config", str(path), "-s", "pseudo_label", "--seeds", "1", "--seed", "5", "--labels", "8",
        "--epochs", "2", "-o", "pseudo_label.t2=1.5", "-d", "noise=0.2", "--json", "-", "-q"]))
    (r,) = recs
    assert (r["strategy"], r["seed"], r["labels"]) == ("pseudo_label", 5, 8)
    assert r["options"]["epochs"] == 2  # --epochs beats the file's NAME.epochs too
    assert r["options"]["t1"] == 1 and r["options"]["t2"] == 1.5
    assert r["dataset_options"] == {"n_train": 200, "n_test": 100, "noise": 0.2}


def test_labels_for_runs_those_strategies_at_their_own_label_counts(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(USER_FILE.replace("seeds = 2", "seeds = 1\nlabels_for = { supervised = [6, 30] }"),
                    encoding="utf-8")
    recs = records_of(CliRunner().invoke(main, ["bench", "--config", str(path), "--out", str(tmp_path / "out"),
                                                "--json", "-", "-q"]))
    assert [(r["strategy"], r["labels"], r["preset"]) for r in recs] == [
        ("supervised", 6, "mixed@6"), ("pseudo_label", 6, "mixed@6"), ("supervised", 30, "mixed@30")]
    assert (tmp_path / "out" / "labels-30" / "records.jsonl").read_text().count("\n") == 1
    # pseudo_label's options are kept for its own group only (supervised has no t1: no error)
    assert recs[1]["options"]["t1"] == 1


def test_merge_options_plain_keys_replace_scoped_ones():
    base = {"epochs": 5, "a.epochs": 6, "b.lr": 0.1, "lr": 1}
    assert merge_options(base, {"epochs": 2, "b.lr": 0.2}) == {"b.lr": 0.2, "lr": 1, "epochs": 2}


def test_plain_bench_records_have_no_preset():
    recs = records_of(CliRunner().invoke(main, [
        "bench", "-s", "supervised", "--dataset", "moons", "--labels", "6", "--epochs", "1", "--json", "-", "-q"]))
    assert recs[0]["preset"] is None


def test_several_label_counts_run_one_bench_each_and_say_so_in_the_preset():
    recs = records_of(CliRunner().invoke(main, ["bench", "--preset", "mnist-tiny", "--ci", "-s", "supervised",
                                                                "--json", "-", "-q"]))
    assert [(r["labels"], r["preset"]) for r in recs] == [(10, "mnist-tiny:ci@10"), (20, "mnist-tiny:ci@20")]


@pytest.mark.parametrize("name", PRESETS)
def test_the_ci_sized_version_of_each_preset_runs(name, tmp_path):
    preset = get_preset(name).variant("ci")
    result = CliRunner().invoke(main, ["bench", "--preset", name, "--ci", "--out", str(tmp_path),
                                                       "--json", "-", "-q"])
    recs = records_of(result)
    groups = preset.label_groups()
    assert len(recs) == sum(len(names) for _, names in groups) * preset.seeds
    assert {r["strategy"] for r in recs} == set(preset.strategies)
    assert sorted((r["labels"], r["strategy"]) for r in recs) == sorted(
        (n, s) for n, names in groups for s in names for _ in range(preset.seeds))
    assert all(r["preset"].startswith(f"{name}:ci") for r in recs)
    assert all(math.isfinite(r["test_accuracy"]) and 0 <= r["test_accuracy"] <= 1 for r in recs)
    stores = [tmp_path / f"labels-{n}" for n, _ in groups] if len(groups) > 1 else [tmp_path]
    assert sum((d / "records.jsonl").read_text().count("\n") for d in stores) == len(recs)


def test_the_results_page_is_up_to_date_with_the_committed_results(tmp_path, monkeypatch):
    from sslzoo.results import write_results

    monkeypatch.chdir(ROOT)
    written = write_results("benchmarks/results", tmp_path / "results.md")
    committed = ROOT / "docs" / "results.md"
    assert committed.read_text(encoding="utf-8") == (tmp_path / "results.md").read_text(encoding="utf-8"), (
        "docs/results.md is stale: run `sslzoo results` and commit it")
    for figure in written[1:]:
        assert (committed.parent / "results" / figure.name).is_file(), f"missing figure {figure.name}"


def test_records_of_another_implementation_are_rows_beside_ours_with_their_command(tmp_path):
    from sslzoo.results import section
    from tests.tiny_records import moons_records, write_jsonl

    name = "selftrain-logreg-mnist1000"
    ours = moons_records("supervised")
    for r in ours:
        r["preset"] = name
    theirs = moons_records("supervised")
    for r, accuracy in zip(theirs, (0.9, 0.92)):
        r.update(preset=name, implementation="scikit-learn", command="python benchmarks/ref.py --seeds 2",
                 test_accuracy=accuracy, wall_seconds=10.0, versions={"scikit-learn": "9.9"})
    write_jsonl(tmp_path / name / "records.jsonl", ours)
    write_jsonl(tmp_path / name / "scikit-learn" / "records.jsonl", theirs)
    md = section(get_preset(name), tmp_path, tmp_path, [])
    rows = [line for line in md if line.startswith("| supervised")]
    assert [row.split(" | ")[0] for row in rows] == ["| supervised", "| supervised (scikit-learn)"]
    assert rows[1].split(" | ")[2:4] == ["90.86 %", "91.00 ± 1.41 %"]  # the reference beside theirs too
    assert "- runs: 2 (2 seeds: 0, 1)" in "\n".join(md)  # ours only
    assert any(line.startswith("- scikit-learn 9.9, on the same split: `python benchmarks/ref.py --seeds 2` "
                               "(2 records, total wall time 20 s)") for line in md)
