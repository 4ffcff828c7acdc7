"""What sslzoo refuses: input a careless or hostile user may give, each answered with a one-line error
(exit code 1, no traceback) naming the file, field, class or label at fault before any run, with a
stated warning, or with the correct result, never silently wrong.

Read top to bottom, this file is the list: images and image folders, ``.npz`` and CSV files, sizes
and loop counts, Label Studio exports, then planning a grid of runs. Workers and Ray nodes that die
under a grid, and Ray addresses where no cluster answers, are in ``tests/test_executors.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._datasets.imagefolder import decode
from sslzoo._planning.executor import SerialExecutor
from sslzoo._planning.preset import Preset
from sslzoo.errors import DataError, DataWarning, SessionError
from sslzoo.labeling.label_studio import read_export
from tests.user_data import image_folder, shape_image, write_png

MOONS = ["-s", "supervised", "--dataset", "moons", "--labels", "6", "--epochs", "1", "-q"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any run that starts fails the test: a refusal must come before the first one."""
    def execute(self, runs, registry, driver):
        raise AssertionError(f"{len(runs)} runs started")

    monkeypatch.setattr(SerialExecutor, "execute", execute)


def refused(args: list[str], fragment: str) -> str:
    """Run the command line; it must fail with one line that holds ``fragment``, and no traceback."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError), result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert fragment in result.output, result.output
    return result.output


def npz(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)
    return path


def csv(path: Path, rows: list[str], header: str = "a,b,label") -> Path:
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode())
    return path


# -- images and image folders -----------------------------------------------------------------------
def test_a_16_bit_png_is_read_at_its_depth_not_clipped_to_255(tmp_path):
    from PIL import Image

    pixels = np.array([[0, 1000, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(pixels).save(tmp_path / "deep.png")
    assert decode(tmp_path / "deep.png").tolist() == [[[0, 4, 128, 255]]]


def test_a_folder_of_16_bit_pngs_keeps_its_classes_apart(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for kind, name in enumerate(("cross", "square")):
        for i in range(3):
            deep = shape_image(kind, g).squeeze(0).numpy().astype(np.uint16) * 256 + 300  # every pixel above 255
            Image.fromarray(deep).save((tmp_path / name).mkdir(exist_ok=True) or tmp_path / name / f"{i}.png")
    x = sslzoo.create_dataset("imagefolder", root=str(tmp_path), test_fraction=0.3).read().x_train
    assert x.dtype == torch.uint8 and len(x.unique()) > 10  # clipped, every pixel was 255


def test_a_float_tiff_in_0_1_is_scaled_not_rounded_to_0_or_1(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "float.tiff")
    assert decode(tmp_path / "float.tiff").tolist() == [[[0, 64, 128, 255]]]


def test_a_float_image_outside_0_1_is_refused_naming_the_file(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0.0, 7.5]], dtype=np.float32)).save(tmp_path / "hot.tiff")
    with pytest.raises(DataError, match=r"hot.tiff: a float image, read in \[0, 1\] whose values run from 0 to 7.5"):
        decode(tmp_path / "hot.tiff")


def test_links_that_lead_back_into_an_image_folder_are_not_followed_and_said(tmp_path):
    photos = image_folder(tmp_path, per_class=2, unlabeled=0, test_per_class=0)
    (photos / "cross" / "self").symlink_to(photos / "cross")
    (photos / "cross" / "up").symlink_to(photos)
    (photos / "square" / "up").symlink_to("..")
    with pytest.warns(DataWarning, match="not followed") as seen:
        listing = sslzoo._datasets.imagefolder.list_images(str(photos))
    assert sorted(str(w.message) for w in seen) == [
        f"{photos}/cross/self: a link to {photos}/cross, which leads back into {photos}/cross; not followed (its "
        f"images would be read twice, or without end)",
        f"{photos}/cross/up: a link to {photos}, which leads back into {photos}; not followed (its images would be "
        f"read twice, or without end)",
        f"{photos}/square/up: a link to {photos}, which leads back into {photos}; not followed (its images would be "
        f"read twice, or without end)"]
    assert listing.classes == ["cross", "square"] and listing.train_labels == [0, 0, 1, 1]


def test_a_link_to_a_folder_outside_the_image_folder_is_followed(tmp_path):
    photos = image_folder(tmp_path / "in", per_class=2, unlabeled=0, test_per_class=0)
    outside = image_folder(tmp_path / "out", per_class=1, unlabeled=0, test_per_class=0)
    (photos / "cross" / "more").symlink_to(outside / "cross")
    assert sslzoo._datasets.imagefolder.list_images(str(photos)).train_labels == [0, 0, 0, 1, 1]


def test_an_image_folder_of_one_class_is_refused(tmp_path):
    write_png(tmp_path / "cat" / "0.png", shape_image(0, torch.Generator()))
    refused(["bench", *MOONS[:2], "--dataset", tmp_path], f"{tmp_path} has one class folder only ('cat')")


# -- .npz files --------------------------------------------------------------------------------------
X = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)


def test_a_class_too_small_for_the_split_is_named_by_its_name(tmp_path):
    x = np.random.default_rng(0).normal(size=(41, 2)).astype(np.float32)
    y = np.array([0] * 20 + [1] * 20 + [2])
    data = npz(tmp_path / "three.npz", x=x, y=y, x_test=x, y_test=y, classes=np.array(["cat", "dog", "emu"]))
    refused(["bench", "-s", "supervised", "--dataset", data, "--labels", "6", "--epochs", "1"],
            "class 2 ('emu') has only 1 samples")


@pytest.mark.parametrize(("arrays", "message"), [
    ({"y": [0, 1] * 4, "classes": ["same", "same"]}, "classes names 'same' 2 times; class names must be distinct"),
    ({"y": [0] * 8}, "one class only ('0'); a classifier needs at least two classes"),
    ({"y": [0] * 8, "classes": ["only"]}, "one class only ('only')"),
    ({"y": [0, 1, 0, 1, 0, 1, 0, 5]}, "label 5 is used but no sample has label 2; without a classes array"),
    ({"y": [0, 1, 0, 1, 0, 1, 0, 2**40]}, f"label {2**40} is used but no sample has label 2"),
    ({"y": [0, 1, 0, 1, 0, 1, 0, 2**40], "classes": ["a", "b"]}, f"a label is {2**40} but classes names 2"),
    ({"y": [-1] * 8, "x_test": X[:2], "y_test": [0, 1]}, "y holds no label at all (every entry is -1)"),
    ({"x": np.zeros((8, 0)), "y": [0, 1] * 4}, "x has shape (8, 0): its samples hold no values"),
    ({"x": np.full((8, 2), 1e300), "y": [0, 1] * 4}, "x holds 1e+300, beyond the float32 range"),
], ids=["duplicate class names", "one class", "one named class", "a stray label", "a label of 2^40",
        "a label of 2^40 with names", "no label in y", "zero-width features", "beyond float32"])
def test_a_bad_npz_is_a_one_line_error_naming_the_file(tmp_path, arrays, message):
    path = npz(tmp_path / "data.npz", **{"x": X, **arrays})
    assert refused(["bench", *MOONS[:2], "--dataset", path, "--labels", "2"], message).startswith(f"Error: {path}: ")


# -- CSV files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("rows", "message"), [
    (["1,2,pos", "3,4,neg", "5,6,Pos", "7,8,pos"], ":4: the label 'Pos' differs from the label 'pos' only by case"),
    (["1,2,pos", "3,4,neg", "5,6,p\0os"], ":4: the label 'p\\x00os' in column 'label' holds the control character"),
    (["1,2,pos", "3,4,pos"], ": one class only ('pos')"),
    (["1,2,pos", "1e39,4,neg"], ":3: column 'a' holds '1e39', beyond the float32 range"),
], ids=["labels differing by case", "a NUL byte in a label", "one class", "beyond float32"])
def test_a_bad_csv_is_a_one_line_error_naming_the_file_and_label(tmp_path, rows, message):
    path = csv(tmp_path / "data.csv", rows)
    refused(["bench", *MOONS[:2], "--dataset", path, "--labels", "2"], f"{path}{message}")


# -- sizes and loop counts ---------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    ([*MOONS, "-d", "n_train=100000000000"], "option n_train='100000000000' of dataset 'moons' is not allowed: it "
                                             "must be between 2 and 10000000"),
    ([*MOONS, "-d", "noise=1e308"], "option noise='1e308' of dataset 'moons' is not allowed: it must be between 0.0 "
                                    "and 100"),
    ([*MOONS[:-3], "--epochs", str(2**63 - 1)], f"option epochs={2**63 - 1} of strategy 'supervised' is not "
                                                f"allowed: it must be at most 100000"),
    ([*MOONS[2:], "-s", "self_training", "-o", "max_rounds=1000000"], "option max_rounds=1000000 of strategy "
                                                                      "'self_training' is not allowed"),
], ids=["moons n_train", "moons noise", "epochs", "rounds"])
def test_an_absurd_size_or_loop_count_is_a_one_line_error(args, message):
    refused(["bench", *args], message)


# -- Label Studio exports ----------------------------------------------------------------------------
def _task(annotation: object = None, **fields: object) -> list:
    """A task of Label Studio's JSON export, as its export writes it, with ``fields`` replaced."""
    if annotation is None:
        annotation = {"id": 11, "completed_by": {"id": 1, "email": "ann@example.org"}, "was_cancelled": False,
                      "result": [{"id": "r1", "from_name": "label", "to_name": "item", "type": "choices",
                                  "origin": "manual", "value": {"choices": ["1"]}}],
                      "created_at": "2024-05-01T10:00:00.123456Z", "updated_at": "2024-05-01T10:00:09.5Z",
                      "lead_time": 9.5, "ground_truth": False, "task": 7, "project": 1}
    return [{"id": 7, "data": {"image": "data:image/png;base64,", "sslzoo_id": 4}, "annotations": [annotation],
             "predictions": [], "meta": {}, "inner_id": 1, "total_annotations": 1, **fields}]


def _annotation(**fields: object) -> dict:
    return {**_task()[0]["annotations"][0], **fields}


def _choices(value: object) -> dict:
    return _annotation(result=[{"type": "choices", "from_name": "label", "to_name": "item", "value": value}])


def test_label_studios_json_and_json_min_exports_read_as_they_are():
    (full,) = read_export(json.dumps(_task()), Path("x.json"))
    assert (full.id, full.label, full.by, full.at) == (4, "1", "ann@example.org", "2024-05-01T10:00:09.5Z")
    minimal = [{"image": "data:,", "sslzoo_id": 5, "id": 8, "label": "0", "annotator": 3, "annotation_id": 12,
                "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T10:01:00Z", "lead_time": 2.0},
               {"sslzoo_id": 6, "id": 9, "label": {"choices": ["1"]}, "annotator": "bo@example.org"}]
    assert [(a.id, a.label, a.by) for a in read_export(json.dumps(minimal), Path("x.json"))] == [
        (5, "0", "label-studio user 3"), (6, "1", "bo@example.org")]


@pytest.mark.parametrize(("export", "message"), [
    (_task(annotations=5), "field annotations is a whole number (5), expected a list"),
    (_task(annotations={"0": _annotation()}), "field annotations is an object, expected a list"),
    (_task(annotation=[1]), "field annotations[0] is a list, expected an object"),
    (_task(_annotation(was_cancelled="false")), "field annotations[0].was_cancelled is text ('false'), expected "
                                                "true or false"),
    (_task(_annotation(result={"type": "choices"})), "field annotations[0].result is an object, expected a list"),
    (_task(_annotation(result=["choices"])), "field annotations[0].result[0] is text ('choices'), expected an object"),
    (_task(_choices([{"choices": ["1"]}])), "field annotations[0].result[0].value is a list, expected an object"),
    (_task(_choices("0")), "field annotations[0].result[0].value is text ('0'), expected an object"),
    (_task(_choices({"choices": "10"})), "field annotations[0].result[0].value.choices is text ('10'), expected a "
                                         "list of class names"),
    (_task(_choices({"choices": 1})), "value.choices is a whole number (1), expected a list of class names"),
    (_task(_choices({"choices": [{"label": "1"}]})), "value.choices[0] is an object, expected a class name"),
    (_task(_annotation(updated_at={"at": "today"})), "field annotations[0].updated_at is an object, expected text"),
    (_task(_annotation(updated_at=1714557609)), "field annotations[0].updated_at is a whole number (1714557609)"),
    (_task(_annotation(completed_by=[1])), "field annotations[0].completed_by is a list, expected a whole number "
                                           "or text or an object"),
    (_task(data=[4]), "field data is a list, expected an object"),
    ([{"sslzoo_id": 5, "id": 8, "label": 1}], "task 8: field label is a whole number (1), expected text or a list"),
    ([{"sslzoo_id": 5, "id": 8, "label": {"choices": "10"}}], "task 8: field label.choices is text ('10')"),
    ([{"sslzoo_id": 5, "id": 8, "label": "0", "updated_at": 3.5}], "task 8: field updated_at is a number (3.5)"),
    ([{"sslzoo_id": 5, "id": {"x": 1}, "label": "0"}], "task 0: field id is an object, expected a whole number"),
], ids=["annotations a number", "annotations an object", "an annotation a list", "was_cancelled text",
        "result an object", "a result text", "value a list", "value text", "choices text", "choices a number",
        "a choice an object", "updated_at an object", "updated_at a number", "completed_by a list", "data a list",
        "min: label a number", "min: choices text", "min: updated_at a number", "min: id an object"])
def test_a_label_studio_export_field_of_the_wrong_type_names_the_task_and_field(export, message):
    with pytest.raises(SessionError, match="x.json: task ") as error:
        read_export(json.dumps(export), Path("x.json"))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_label_studio_export_nested_without_end_is_one_line():
    with pytest.raises(SessionError, match="x.json: JSON nested too deeply to be a Label Studio export"):
        read_export("[" * 200_000 + "]" * 200_000, Path("x.json"))


def test_a_bad_field_of_one_task_refuses_the_whole_import(tmp_path):
    from sslzoo.labeling import Session

    directory = tmp_path / "s"
    Session.start(directory, "moons", "random", options={"epochs": "1"}, dataset_options={"n_train": 20},
                  device="cpu")
    good = _task()[0]
    export = tmp_path / "export.json"
    export.write_text(json.dumps([good, {**good, "id": 8, "annotations": {"0": _annotation()}}]))
    refused(["label", "import", directory, export], "task 8: field annotations is an object, expected a list")


# -- planning a grid of runs -------------------------------------------------------------------------
def test_a_preset_part_with_too_many_labels_is_refused_before_any_part_runs(tmp_path, no_run):
    config = tmp_path / "p.toml"
    config.write_text('title = "t"\nstrategies = ["supervised"]\ndataset = "moons"\nlabels = [6, 8, 2000]\n'
                      '[options]\nepochs = 1\n')
    refused(["bench", "--config", config, "-q"], "--labels 2000 is larger than the 1000 training samples")


def test_planning_thousands_of_label_counts_reads_the_protocol_a_bounded_number_of_times(tmp_path, monkeypatch):
    config = tmp_path / "p.toml"
    config.write_text(f'title = "t"\nstrategies = ["supervised"]\ndataset = "moons"\nlabels = '
                      f'{list(range(2, 302))}\n[options]\nepochs = 1\n')
    calls = []
    groups = Preset.label_groups
    monkeypatch.setattr(Preset, "label_groups", lambda self, *a: calls.append(1) or groups(self, *a))
    planned = []
    monkeypatch.setattr(SerialExecutor, "execute", lambda self, runs, registry, driver: planned.append(len(runs)))
    result = CliRunner().invoke(main, ["bench", "--config", str(config), "-q"])
    assert planned == [300], result.output
    assert len(calls) <= 2  # once per protocol, not once per part


def _read_only(directory: Path):
    """Make ``directory`` read-only, even for root (a read-only bind mount); returns how to undo it."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return lambda: directory.chmod(0o755)
    for args in (["mount", "--bind", directory, directory], ["mount", "-o", "remount,bind,ro", directory]):
        if subprocess.run(args, capture_output=True).returncode:
            subprocess.run(["umount", directory], capture_output=True)
            pytest.skip("cannot make a read-only directory here (no permission to mount)")
    return lambda: subprocess.run(["umount", directory], check=True)


def test_resume_into_a_read_only_out_is_refused_before_training(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["bench", *MOONS, "--out", str(out)]).exit_code == 0
    undo = _read_only(out)
    try:
        monkeypatch.setattr(SerialExecutor, "execute", lambda *a: pytest.fail("a run started"))
        refused(["bench", *MOONS, "--seeds", "2", "--out", out, "--resume"], f"{out / 'records.jsonl'}: cannot write")
    finally:
        undo()


def test_compare_refusing_mismatched_seeds_names_the_torn_line_it_skipped(tmp_path):
    records = [json.dumps(r) for r in sslzoo.run("supervised", "moons", labels=6, seeds=2, device="cpu",
                                                  options={"epochs": 1})]
    (tmp_path / "base.jsonl").write_text("\n".join(records) + "\n")
    (tmp_path / "new.jsonl").write_text(records[0] + "\n" + records[1][:40])  # killed while writing seed 1
    message = refused(["compare", tmp_path / "base.jsonl", tmp_path / "new.jsonl"], "mismatched seeds")
    assert f"(note: {tmp_path / 'new.jsonl'}:2: ignored an incomplete last line (40 bytes)" in message
