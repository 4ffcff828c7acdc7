"""The user's own datasets: a folder of images, .npz arrays, CSV features and torchvision's on-disk
sets, registered like the built-ins, cached on disk, and refused with a one-line error naming the
file when the layout or a file is wrong."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._contract.dataset import UNLABELED
from sslzoo._contract.registry import resolve_dataset
from sslzoo._datasets import imagefolder
from sslzoo.errors import DataError, OptionError
from tests.user_data import cifar10_root, idx_root, image_folder, shape_image, write_png


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(cache))
    return cache


def _folder(tmp_path: Path, **options: object) -> sslzoo.Dataset:
    photos = image_folder(tmp_path)
    return sslzoo.create_dataset("imagefolder", root=str(photos), unlabeled=str(photos / "unlabeled"),
                                 test=str(tmp_path / "test"), **options)


# -- a folder of images -----------------------------------------------------------------------------
def test_image_folder_reads_classes_unlabeled_images_and_a_labeled_test_folder(tmp_path: Path) -> None:
    arrays = _folder(tmp_path).load(0)
    assert arrays.classes == ("cross", "square")  # folder names, sorted; the unlabeled folder is no class
    assert arrays.x_train.shape == (24 + 16, 1, 16, 16) and arrays.x_train.dtype == torch.uint8
    assert arrays.y_train.tolist() == [0] * 12 + [1] * 12 + [UNLABELED] * 16
    assert arrays.y_test.tolist() == [0] * 6 + [1] * 6
    assert arrays.train_names[0].endswith(os.path.join("photos", "cross", "000.png"))
    assert arrays.train_names[-1].endswith(os.path.join("unlabeled", "u015.png"))
    assert Path(arrays.test_names[0]).is_file()


def test_image_folder_is_read_once_then_from_the_cache_until_a_file_changes(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    reads = []
    real = imagefolder.decode
    monkeypatch.setattr(imagefolder, "decode", lambda path: reads.append(path) or real(path))
    dataset = _folder(tmp_path)
    first = dataset.load(0)
    assert len(reads) == 40 + 12
    again = dataset.load(0)
    assert len(reads) == 52 and torch.equal(first.x_train, again.x_train)
    changed = tmp_path / "photos" / "cross" / "000.png"
    write_png(changed, torch.zeros(1, 16, 16, dtype=torch.uint8))
    os.utime(changed, ns=(1, 1))  # a new modification time however fast the file system's clock is
    third = dataset.load(0)
    assert len(reads) == 104 and int(third.x_train[0].max()) == 0


def test_image_folder_with_colour_images_is_rgb_and_resizes_on_request(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    root = tmp_path / "shapes"
    for i in range(3):
        write_png(root / "a" / f"{i}.png", shape_image(0, g, size=12))
        write_png(root / "b" / f"{i}.png", shape_image(1, g, size=20, channels=3))
    with pytest.raises(DataError, match=r"mixed image sizes: .*a.0\.png is 12x12 pixels but .*b.0\.png is 20x20"):
        sslzoo.create_dataset("imagefolder", root=str(root)).load(0)
    arrays = sslzoo.create_dataset("imagefolder", root=str(root), size=8).load(0)
    assert arrays.x_train.shape == (6, 3, 8, 8)  # grey images joined the colour ones as RGB
    grey = sslzoo.create_dataset("imagefolder", root=str(root), size=8, channels="grey").load(0)
    assert grey.x_train.shape == (6, 1, 8, 8)


@pytest.mark.parametrize(("make", "message"), [
    (lambda root: write_png(root / "loose.png", torch.zeros(1, 4, 4, dtype=torch.uint8)),
     r"loose\.png: an image directly in .* and no class folders; the layout is one folder per class"),
    (lambda root: (root / "cat").mkdir(parents=True) or (root / "dog").mkdir()
     or write_png(root / "dog" / "1.png", torch.zeros(1, 4, 4, dtype=torch.uint8)),
     r"class 'cat' has no images: .*cat holds no image files"),
    (lambda root: write_png(root / "dog" / "1.png", torch.zeros(1, 4, 4, dtype=torch.uint8))
     and write_png(root / "cat" / "1.png", torch.zeros(1, 4, 4, dtype=torch.uint8))
     and (root / "dog" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken"),
     r"cannot read image .*dog.2\.png: "),
    (lambda root: root.mkdir(), r"has no class folders"),
])
def test_a_wrong_image_folder_is_one_error_naming_the_folder_or_file(tmp_path: Path, make, message: str) -> None:
    root = tmp_path / "photos"
    make(root)
    with pytest.raises(DataError, match=message):
        sslzoo.create_dataset("imagefolder", root=str(root)).load(0)


def test_a_test_class_the_training_folder_lacks_is_an_error(tmp_path: Path) -> None:
    photos = image_folder(tmp_path)
    write_png(tmp_path / "test" / "circle" / "0.png", torch.zeros(1, 16, 16, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"test class folder .*circle is not one of the training classes"):
        sslzoo.create_dataset("imagefolder", root=str(photos), test=str(tmp_path / "test")).load(0)


def test_test_fraction_holds_out_the_same_labeled_test_split_for_every_seed(tmp_path: Path) -> None:
    photos = image_folder(tmp_path)
    dataset = sslzoo.create_dataset("imagefolder", root=str(photos), unlabeled=str(photos / "unlabeled"),
                                    test_fraction=0.25)
    arrays, again = dataset.load(0), dataset.load(5)
    assert arrays.y_test.tolist() == [0] * 3 + [1] * 3 and arrays.test_names == again.test_names
    assert arrays.y_train.numel() == 40 - 6 and set(arrays.test_names).isdisjoint(arrays.train_names)
    with pytest.raises(OptionError, match="has a test split already"):
        sslzoo.create_dataset("imagefolder", root=str(photos), test=str(tmp_path / "test"), test_fraction=0.2).load(0)


# -- arrays and tables ------------------------------------------------------------------------------
def test_npz_features_with_unlabeled_rows_and_npz_images_in_channels_last(tmp_path: Path) -> None:
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.array([0, 1, -1, 0, 1, -1, 0, 1, 2, -1])
    np.savez(tmp_path / "f.npz", x=x, y=y, classes=np.array(["a", "b", "c"]))
    dataset = sslzoo.create_dataset("npz", path=str(tmp_path / "f.npz"))
    arrays = dataset.load(0)
    assert arrays.classes == ("a", "b", "c") and arrays.y_train.tolist() == y.tolist()
    assert dataset.default_model == "mlp" and arrays.y_test.numel() == 0
    normalized = dataset.normalize(arrays.x_train)
    assert torch.allclose(normalized.mean(0), torch.zeros(2), atol=1e-5)  # standardized with the training stats

    images = np.zeros((6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "i.npz", x=images, y=np.array([0, 1, 0, 1, 0, 1]), x_test=images[:2], y_test=np.array([1, 0]))
    dataset = sslzoo.create_dataset("npz", path=str(tmp_path / "i.npz"))
    arrays = dataset.load(0)
    assert arrays.x_train.shape == (6, 3, 8, 8) and arrays.y_test.tolist() == [1, 0]
    assert dataset.default_model == "cnn" and arrays.classes == ("0", "1")


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": np.zeros((3, 2))}, r"no array y \(it holds x\)"),
    ({"x": np.zeros((3, 2)), "y": np.zeros(2, dtype=int)}, r"y has shape \(2,\), expected \(3,\)"),
    ({"x": np.zeros((3, 2)), "y": np.array([0, -2, 1])}, r"y holds -2"),
    ({"x": np.zeros((3, 2)), "y": np.array([0, 1, 1]), "x_test": np.zeros((1, 2))}, "without y_test"),
    ({"x": np.full((3, 2), np.nan), "y": np.array([0, 1, 1])}, "NaN or infinite"),
])
def test_a_wrong_npz_file_is_one_error_naming_it(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as error:
        sslzoo.create_dataset("npz", path=str(tmp_path / "bad.npz")).load(0)
    assert "bad.npz" in str(error.value)


def test_csv_features_with_text_labels_and_empty_cells_for_unlabeled_rows(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("id,width,height,kind\n1,1.0,2.0,cat\n2,1.5,2.5,dog\n3,0.5,1.0,\n"
                                        "4,2.0,0.5,cat\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("id,width,height,kind\n9,1.0,1.0,dog\n", encoding="utf-8")
    dataset = sslzoo.create_dataset("csv", path=str(tmp_path / "train.csv"), label="kind", ignore="id",
                                    test=str(tmp_path / "test.csv"))
    arrays = dataset.load(0)
    assert arrays.classes == ("cat", "dog") and arrays.y_train.tolist() == [0, 1, UNLABELED, 0]
    assert arrays.x_train[1].tolist() == [1.5, 2.5] and arrays.y_test.tolist() == [1]
    assert arrays.train_names[2].endswith("train.csv:4")  # the file's line of the unlabeled row


@pytest.mark.parametrize(("text", "options", "message"), [
    ("a,b,label\n1,x,0\n", {}, r"bad\.csv:2: column 'b' holds 'x', not a number"),
    ("a,b,lable\n1,2,0\n", {}, r"no column 'label' \(did you mean lable\?\)"),
    ("a,label\n1,0\n2\n", {}, r"bad\.csv:3: 1 cells, the header has 2"),
    ("a,label\n1,\n", {}, "holds no label at all"),
])
def test_a_wrong_csv_file_is_one_error_naming_file_line_and_column(tmp_path: Path, text: str, options: dict,
                                                                   message: str) -> None:
    (tmp_path / "bad.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        sslzoo.create_dataset("csv", path=str(tmp_path / "bad.csv"), **options).load(0)


def test_a_csv_test_file_with_some_labels_missing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("a,label\n1,x\n2,y\n", encoding="utf-8")
    (tmp_path / "test.csv").write_text("a,label\n1,x\n2,\n", encoding="utf-8")
    with pytest.raises(DataError, match="1 of its 2 rows have a label"):
        sslzoo.create_dataset("csv", path=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv")).load(0)


# -- torchvision's on-disk datasets -----------------------------------------------------------------
@pytest.mark.parametrize(("name", "folder"), [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_idx_sets_are_read_from_a_torchvision_root(tmp_path: Path, name: str, folder: str) -> None:
    arrays = sslzoo.create_dataset(name, data_dir=str(idx_root(tmp_path, folder))).load(0)
    assert arrays.x_train.shape == (20, 1, 28, 28) and arrays.y_test.shape == (10,)
    assert len(arrays.classes) == 10


def test_cifar10_is_read_from_its_pickles(tmp_path: Path) -> None:
    arrays = sslzoo.create_dataset("cifar10", data_dir=str(cifar10_root(tmp_path)), n_test=4).load(0)
    assert arrays.x_train.shape == (20, 3, 32, 32) and arrays.x_test.shape == (4, 3, 32, 32)
    assert arrays.classes[0] == "airplane" and arrays.y_train[:3].tolist() == [0, 1, 2]


def test_a_cifar10_file_that_would_run_code_is_refused(tmp_path: Path) -> None:
    root = cifar10_root(tmp_path)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(os.getcwd.__call__))
    with pytest.raises(DataError, match="test_batch is not a CIFAR-10 batch"):
        sslzoo.create_dataset("cifar10", data_dir=str(root)).load(0)


def test_torchvision_sets_download_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sslzoo._default_plugins import user_datasets

    fetched = []
    monkeypatch.setattr(user_datasets, "download", lambda cls, root: fetched.append(cls) or idx_root(root, cls))
    with pytest.raises(DataError, match="no FashionMNIST found in .*add -d download=true"):
        sslzoo.create_dataset("fashion_mnist", data_dir=str(tmp_path)).load(0)
    assert fetched == []
    arrays = sslzoo.create_dataset("fashion_mnist", data_dir=str(tmp_path), download=True).load(0)
    assert fetched == ["FashionMNIST"] and arrays.y_train.numel() == 20
    with pytest.raises(OptionError, match="needs --data-dir DIR"):
        sslzoo.create_dataset("kmnist")


# -- naming and running them ------------------------------------------------------------------------
def test_a_path_names_the_dataset_that_reads_it(tmp_path: Path) -> None:
    assert resolve_dataset("photos/", {"size": "8"}) == ("imagefolder", {"root": "photos/", "size": "8"})
    assert resolve_dataset("data.npz") == ("npz", {"path": "data.npz"})
    assert resolve_dataset("rows.CSV") == ("csv", {"path": "rows.CSV"})
    assert resolve_dataset("mnist") == ("mnist", {})
    with pytest.raises(OptionError, match="is a path and -d root=b another one"):
        resolve_dataset("a/", {"root": "b"})


def test_a_benchmark_leaves_out_unlabeled_images_and_never_queries_them(tmp_path: Path, one_thread) -> None:
    photos = image_folder(tmp_path)
    records = sslzoo.run("entropy", str(photos), labels=4, options={"epochs": 2, "budget": 12, "query_size": 4},
                         dataset_options={"unlabeled": str(photos / "unlabeled"), "test": str(tmp_path / "test")},
                         device="cpu")
    record = records[0]
    assert record["dataset"] == "imagefolder" and record["unlabeled_samples"] == 16
    assert record["oracle_labels"] == 12 and 0.0 <= record["test_accuracy"] <= 1.0


def test_a_benchmark_needs_a_labeled_test_split_and_says_how_to_give_one(tmp_path: Path) -> None:
    photos = image_folder(tmp_path)
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", str(photos), "--labels", "4", "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].endswith(
        "has no labeled test split (it has no test split), and a benchmark measures accuracy on one; give it one: "
        "-d test=DIR (one folder per class) or -d test_fraction=0.2")


def test_a_wrong_folder_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    write_png(tmp_path / "photos" / "a.png", torch.zeros(1, 4, 4, dtype=torch.uint8))
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", str(tmp_path / "photos"), "-q"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "a.png: an image directly in" in result.output


# -- the user guide ---------------------------------------------------------------------------------
def _guide_files(root: Path) -> None:
    """The files the user guide's "Your own data" commands read, small."""
    image_folder(root, classes=("cat", "dog"))
    rows = ["id,length,width,species"]
    for i in range(30):
        species = ("setosa", "virginica", "versicolor")[i % 3] if i % 5 else ""
        rows.append(f"{i},{i % 3 + 0.1 * (i % 4)},{(i % 3) * 2 - 0.05 * i},{species}")
    (root / "measurements.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    y[::4] = -1
    np.savez(root / "arrays.npz", x=x[:30], y=y[:30], x_test=x[30:], y_test=(x[30:, 0] > 0).astype(np.int64))
    idx_root(root / "data", "FashionMNIST")


def test_the_user_guides_own_data_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          one_thread) -> None:
    import shlex

    from tests.test_docs import DOCS, fenced_blocks

    text = (DOCS / "usage.md").read_text(encoding="utf-8")
    section = text[text.index("## Your own data"):text.index("## Environment variables")]
    commands = [line for block in fenced_blocks(section) if block.lang == "sh" for line in block.body.splitlines()
                if line.startswith("sslzoo ")]
    assert len(commands) == 6
    _guide_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        args = shlex.split(command)[1:]
        result = CliRunner().invoke(main, [*args, "--device", "cpu"] if args[0] == "bench" else args)
        assert result.exit_code == 0, f"{command}\n{result.output}"
        assert "test accuracy" in result.stdout or args[0] == "report"
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "| entropy | random |" in report and "Precision and recall by class" in report


def test_images_too_small_for_the_model_are_an_error_saying_what_to_do(tmp_path: Path) -> None:
    photos = image_folder(tmp_path)
    with pytest.raises(OptionError, match=r"model 'cnn' on dataset 'imagefolder' \(inputs of shape \(1, 8, 8\)\) "
                                          r"cannot compute: .*choose another --model .* or resize the images"):
        sslzoo.run("supervised", str(photos), labels=2, dataset_options={"size": 8, "test_fraction": 0.2},
                   options={"epochs": 1}, device="cpu")
