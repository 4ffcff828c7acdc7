"""Protocol presets: the shipped TOML files, ``sslzoo presets``, ``bench --preset/--config`` and the results page."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslzoo._cli.main import main
from sslzoo._planning.preset import get_preset, list_presets, load_file, validate
from sslzoo._planning.routing import merge_options
from sslzoo._reports.page import reference_curve
from sslzoo.errors import PresetError, UnknownNameError
from tests.tiny_records import moons_records, write_jsonl
from tests.user_data import cifar10_root

ROOT = Path(__file__).resolve().parents[1]
PRESETS = list_presets()
EXPECTED = {"pl-cnn-mnist1000", "lee2013-mnist", "selftrain-mlp-mnist1000", "selftrain-logreg-mnist1000",
            "al-linear-mnist4000", "al-linear-mnist4000-faithful", "gal2017-mnist", "moons-6", "mnist-missing-class",
            "mnist-tiny", "pl-cnn-mnist1000-faithful",
            "selftrain-logreg-mnist1000-faithful"}
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
    assert EXPECTED <= set(PRESETS)


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
    (USER_FILE + '\n[reference.best]\nsupervised = "high"\n', "reference.best.supervised must be a number"),
    (USER_FILE + '\n[reference.values]\nentropy = 90.0\n', "reference.values names 'entropy', not in strategies"),
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
    recs = records_of(CliRunner().invoke(main, ["bench", "--config", str(path), "--json", "-q"]))
    assert [(r["strategy"], r["seed"], r["preset"]) for r in recs] == [
        ("supervised", 0, "my-moons"), ("supervised", 1, "my-moons"),
        ("pseudo_label", 0, "my-moons"), ("pseudo_label", 1, "my-moons")]
    assert all(r["dataset_options"]["n_train"] == 200 and r["options"]["epochs"] == 3 for r in recs)


def test_explicit_flags_override_the_preset(tmp_path):
    path = tmp_path / "my-moons.toml"
    path.write_text(USER_FILE.replace('epochs = 3', 'epochs = 3\n"pseudo_label.epochs" = 4'), encoding="utf-8")
    recs = records_of(CliRunner().invoke(main, [
        "bench", "--config", str(path), "-s", "pseudo_label", "--seeds", "1", "--seed", "5", "--labels", "8",
        "--epochs", "2", "-o", "pseudo_label.t2=1.5", "-d", "noise=0.2", "--json", "-q"]))
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
                                                "--json", "-q"]))
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
        "bench", "-s", "supervised", "--dataset", "moons", "--labels", "6", "--epochs", "1", "--json", "-q"]))
    assert recs[0]["preset"] is None


def test_several_label_counts_run_one_bench_each_and_say_so_in_the_preset():
    recs = records_of(CliRunner().invoke(main, ["bench", "--preset", "mnist-tiny", "--ci", "-s", "supervised",
                                                                "--json", "-q"]))
    assert [(r["labels"], r["preset"]) for r in recs] == [(10, "mnist-tiny:ci@10"), (20, "mnist-tiny:ci@20")]


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if get_preset(name).dataset == "mnist"
                                  else name for name in PRESETS])
def test_the_ci_sized_version_of_each_preset_runs(name, tmp_path):
    preset = get_preset(name).variant("ci")
    on_disk = ["--data-dir", str(cifar10_root(tmp_path / "data", per_batch=40, n_test=50))] \
        if preset.dataset == "cifar10" else []  # a synthetic CIFAR-10 in its on-disk format
    result = CliRunner().invoke(main, ["bench", "--preset", name, "--ci", "--out", str(tmp_path / "out"), *on_disk,
                                       "--json", "-q"])
    recs = records_of(result)
    groups = preset.label_groups()
    assert len(recs) == sum(len(names) for _, names in groups) * preset.seeds
    assert {r["strategy"] for r in recs} == set(preset.strategies)
    assert sorted((r["labels"], r["strategy"]) for r in recs) == sorted(
        (n, s) for n, names in groups for s in names for _ in range(preset.seeds))
    assert all(r["preset"].startswith(f"{name}:ci") for r in recs)
    assert all(math.isfinite(r["test_accuracy"]) and 0 <= r["test_accuracy"] <= 1 for r in recs)
    stores = [tmp_path / "out" / f"labels-{n}" for n, _ in groups] if len(groups) > 1 else [tmp_path / "out"]
    assert sum((d / "records.jsonl").read_text().count("\n") for d in stores) == len(recs)


def test_the_results_page_is_up_to_date_with_the_committed_results(tmp_path, monkeypatch):
    from sslzoo._reports.page import write_results

    monkeypatch.chdir(ROOT)
    written = write_results("benchmarks/results", tmp_path / "results.md")
    committed = ROOT / "docs" / "results.md"
    assert committed.read_text(encoding="utf-8") == (tmp_path / "results.md").read_text(encoding="utf-8"), (
        "docs/results.md is stale: run `sslzoo results` and commit it")
    for figure in written[1:]:
        assert (committed.parent / "results" / figure.name).is_file(), f"missing figure {figure.name}"


def test_a_variant_preset_is_its_base_with_its_own_keys_and_merged_options():
    base, variant = get_preset("al-linear-mnist4000"), get_preset("al-linear-mnist4000-faithful")
    assert variant.extends == base.name and base.extends is None
    assert variant.reference == base.reference and variant.strategies == base.strategies
    assert variant.options == {**base.options, "recipe": "keras_adam"}
    assert variant.title != base.title
    ci = variant.variant("ci")  # the base's [ci] table, over the variant's options
    assert ci.options["recipe"] == "keras_adam" and ci.options["budget"] == base.variant("ci").options["budget"]


@pytest.mark.parametrize("files, fragment", [
    ({"a": 'extends = "missing"'}, "extends 'missing', but there is no missing.toml beside it"),
    ({"a": 'extends = "b"', "b": 'extends = "a"'}, "extends it back"),
    ({"a": 'extends = "a"'}, "extends it back"),
    ({"a": "extends = 3"}, "extends must be a string"),
])
def test_a_bad_extends_is_a_one_line_error_naming_the_file(tmp_path, files, fragment):
    for name, text in files.items():
        (tmp_path / f"{name}.toml").write_text(text + '\nstrategies = ["supervised"]\ndataset = "moons"\nlabels = 6\n')
    with pytest.raises(PresetError) as info:
        load_file(tmp_path / "a.toml")
    message = str(info.value)
    assert message.startswith(str(tmp_path)) and fragment in message and "\n" not in message


def test_the_reference_curve_is_shown_point_by_point_and_marks_where_each_run_parts(tmp_path):
    """Every seed's curve of this preset and of its variants beside the published one; the first
    label count where a run differs from it is marked in its column and named in the summary."""
    preset = get_preset("al-linear-mnist4000")
    published = {10: preset.reference["start"]["least_confidence"],
                 **{int(n): v for n, v in preset.reference["curve"]["least_confidence"].items()}}
    records = moons_records("least_confidence")  # real records (10 → 30 labels), their accuracies replaced
    parts_at = {0: 30, 1: 20}
    for record in records:
        for entry in record["curve"]:
            n = entry["labels"]
            entry["test_accuracy"] = (published[n] - (1.0 if n >= parts_at[record["seed"]] else 0.0)) / 100
    write_jsonl(tmp_path / preset.name / "records.jsonl", records)
    write_jsonl(tmp_path / "al-linear-mnist4000-faithful" / "labels-10" / "records.jsonl", records[:1])
    md = reference_curve(preset, tmp_path)
    text = "\n".join(md)
    assert "clean s0: at 30 labels (2/40 points equal)" in text and "clean s1: at 20 labels (1/40 points equal)" in text
    assert "faithful s0: at 30 labels" in text
    header = next(line for line in md if line.startswith("| labels"))
    assert header == "| labels | reference | clean s0 | clean s1 | faithful s0 |"
    rows = {line.split(" | ")[0].strip("| "): line for line in md if line.startswith("| ") and line[2].isdigit()}
    ref = f"{published[20]:.2f}"
    assert rows["20"] == f"| 20 | {ref} | {ref} | **{published[20] - 1:.2f}** ◀ | {ref} |"
    assert rows["30"].count("◀") == 2 and rows["400"].endswith("| 89.75 | — | — | — |")
    variant_md = reference_curve(get_preset("al-linear-mnist4000-faithful"), tmp_path)
    assert variant_md[0].startswith("Point by point beside the reference: see [`al-linear-mnist4000`]")


def test_records_of_another_implementation_are_rows_beside_ours_with_their_command(tmp_path):
    from sslzoo._reports.page import section
    from tests.tiny_records import moons_records, write_jsonl

    name = "selftrain-logreg-mnist1000"
    ours = moons_records("supervised")
    for r in ours:
        r.update(preset=name, labels=1000)
    theirs = moons_records("supervised")
    for r, accuracy in zip(theirs, (0.9, 0.92)):
        r.update(preset=name, labels=1000, implementation="scikit-learn", command="python benchmarks/ref.py --seeds 2",
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
