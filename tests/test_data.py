"""Data: bundled MNIST, two-moons, and the initial labeled split."""

from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import pytest
import torch

from sslzoo._datasets.mnist import BUNDLED_DIR, FILES, load_mnist
from sslzoo._datasets.moons import make_moons
from sslzoo._datasets.split import SPLITS, held_out, initial_labels
from sslzoo.errors import ChecksumError, DataError, OptionError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def _copy_bundled(dst: Path) -> Path:
    shutil.copytree(BUNDLED_DIR, dst)
    return dst


# --- MNIST ---------------------------------------------------------------------------------------


def test_bundled_mnist_has_expected_shapes_and_dtypes(mnist):
    x_train, y_train, x_test, y_test = mnist
    assert x_train.shape == (60000, 1, 28, 28) and x_train.dtype == torch.uint8
    assert y_train.shape == (60000,) and y_train.dtype == torch.int64
    assert x_test.shape == (10000, 1, 28, 28) and x_test.dtype == torch.uint8
    assert y_test.shape == (10000,) and y_test.dtype == torch.int64
    assert all(t.device.type == "cpu" for t in mnist)
    assert int(x_train.max()) == 255 and int(x_train.min()) == 0


def test_bundled_mnist_label_counts_match_dataset_readme(mnist):
    _, y_train, _, y_test = mnist
    assert torch.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert torch.bincount(y_test, minlength=10).tolist() == TEST_COUNTS


def test_repeated_bundled_load_is_cached(mnist):
    again = load_mnist()
    assert all(a is b for a, b in zip(again, mnist))


def test_corrupt_bundled_file_raises_checksum_error_naming_it(tmp_path, mnist):
    # mnist fixture loaded first: the in-process cache must not hide corruption of another dir
    bad = _copy_bundled(tmp_path / "mnist")
    target = bad / "train-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        load_mnist(bundled_dir=bad)
    msg = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in msg
    assert "expected" in msg and "corrupt" in msg and "reinstall" in msg


def test_missing_bundled_file_raises_data_error_naming_it(tmp_path):
    bad = _copy_bundled(tmp_path / "mnist")
    (bad / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_mnist(bundled_dir=bad)
    assert not isinstance(info.value, ChecksumError)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert "missing" in str(info.value)


def test_data_dir_without_mnist_raises_data_error_naming_dir_and_layout(tmp_path):
    with pytest.raises(DataError) as info:
        load_mnist(data_dir=tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg
    assert "MNIST/raw/" in msg and "never downloads" in msg


def test_data_dir_torchvision_root_gives_same_tensors_as_bundled(tmp_path, mnist):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        with gzip.open(BUNDLED_DIR / name, "rb") as src, open(raw / name[: -len(".gz")], "wb") as dst:
            shutil.copyfileobj(src, dst)
    loaded = load_mnist(data_dir=str(tmp_path))
    for got, want in zip(loaded, mnist):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(got, want)


# --- two moons -----------------------------------------------------------------------------------


def test_moons_shapes_dtypes_and_both_classes():
    x, y = make_moons(101, noise=0.1, seed=0)
    assert x.shape == (101, 2) and x.dtype == torch.float32
    assert y.shape == (101,) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [50, 51]


def test_moons_deterministic_per_seed():
    a, b = make_moons(200, 0.2, seed=3), make_moons(200, 0.2, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = make_moons(200, 0.2, seed=4)
    assert not torch.equal(a[0], c[0])


def test_moons_are_shuffled():
    _, y = make_moons(200, 0.0, seed=0)
    assert not torch.equal(y, torch.sort(y).values)


def test_moons_without_noise_lie_on_the_two_arcs():
    x, y = make_moons(300, noise=0.0, seed=1)
    outer, inner = x[y == 0].double(), x[y == 1].double()
    # outer arc: unit circle around (0, 0), upper half
    assert torch.allclose(outer.norm(dim=1), torch.ones(len(outer), dtype=torch.float64), atol=1e-6)
    assert (outer[:, 1] >= -1e-6).all()
    # inner arc: unit circle around (1, 0.5), lower half
    centred = inner - torch.tensor([1.0, 0.5], dtype=torch.float64)
    assert torch.allclose(centred.norm(dim=1), torch.ones(len(inner), dtype=torch.float64), atol=1e-6)
    assert (centred[:, 1] <= 1e-6).all()
    assert outer[:, 0].min() == pytest.approx(-1.0) and outer[:, 0].max() == pytest.approx(1.0)
    assert inner[:, 0].min() == pytest.approx(0.0, abs=1e-6) and inner[:, 0].max() == pytest.approx(2.0)


def test_moons_noise_has_requested_scale():
    clean, y0 = make_moons(4000, 0.0, seed=5)
    noisy, y1 = make_moons(4000, 0.3, seed=5)
    assert torch.equal(y0, y1)  # same shuffle, noise drawn after it
    assert (noisy - clean).std().item() == pytest.approx(0.3, rel=0.05)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"n": 1, "noise": 0.1, "seed": 0}, "n >= 2"),
        ({"n": 10, "noise": -0.1, "seed": 0}, "noise must be"),
        ({"n": 10, "noise": math.nan, "seed": 0}, "noise must be"),
    ],
)
def test_moons_bad_arguments_raise_option_error(kwargs, fragment):
    with pytest.raises(OptionError, match=fragment):
        make_moons(**kwargs)


# --- initial labeled split -----------------------------------------------------------------------


def test_balanced_split_gives_exact_per_class_counts_with_remainder(mnist):
    y = mnist[1]
    ids = initial_labels(y, 23, seed=0)
    assert ids.dtype == torch.int64 and ids.shape == (23,)
    assert torch.equal(ids, torch.sort(ids).values) and len(set(ids.tolist())) == 23
    assert torch.bincount(y[ids], minlength=10).tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]


def test_balanced_split_is_deterministic_per_seed(mnist):
    y = mnist[1]
    a, b = initial_labels(y, 100, seed=7), initial_labels(y, 100, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, initial_labels(y, 100, seed=8))


def test_random_split_is_deterministic_per_seed_and_unique(mnist):
    y = mnist[1]
    a = initial_labels(y, 500, seed=1, how="random")
    assert torch.equal(a, initial_labels(y, 500, seed=1, how="random"))
    assert not torch.equal(a, initial_labels(y, 500, seed=2, how="random"))
    assert len(set(a.tolist())) == 500 and torch.equal(a, torch.sort(a).values)


def test_first_split_takes_file_order(mnist):
    y = mnist[1]
    assert initial_labels(y, 50, seed=0, how="first").tolist() == list(range(50))
    # seed does not matter for "first"
    assert torch.equal(
        initial_labels(y, 50, seed=0, how="first"), initial_labels(y, 50, seed=9, how="first")
    )


def test_first_balanced_split_takes_the_first_of_each_class_in_file_order(mnist):
    y = mnist[1]
    ids = initial_labels(y, 1110, seed=3, how="first_balanced")
    assert torch.bincount(y[ids], minlength=10).tolist() == [111] * 10
    for c in range(10):
        assert y[ids][y[ids] == c].numel() == 111
        assert ids[y[ids] == c].tolist() == (y == c).nonzero().flatten()[:111].tolist()


def test_gal2017_split_labels_from_the_first_sixth_and_pools_the_last_two_thirds_of_a_seeded_shuffle(mnist):
    y = mnist[1]
    ids = initial_labels(y, 20, seed=0, how="gal2017")
    assert torch.bincount(y[ids], minlength=10).tolist() == [2] * 10
    order = torch.randperm(60000, generator=torch.Generator().manual_seed(0))
    candidates, pool = order[:10000], order[20000:]
    assert torch.isin(ids, candidates).all()
    for c in range(10):  # the first two of each class in shuffled order
        assert set(ids[y[ids] == c].tolist()) == set(candidates[y[candidates] == c][:2].tolist())
    out = held_out(60000, 0, "gal2017", ids)
    assert out.numel() == 60000 - 40000 - 20 and not torch.isin(out, ids).any() and not torch.isin(out, pool).any()
    assert not torch.equal(ids, initial_labels(y, 20, seed=1, how="gal2017"))
    assert held_out(60000, 0, "balanced", ids).numel() == 0


def test_first_split_skips_excluded_classes():
    y = torch.tensor([0, 1, 2, 1, 0, 2, 2])
    assert initial_labels(y, 3, seed=0, how="first", exclude_classes=[1]).tolist() == [0, 2, 4]


@pytest.mark.parametrize("how", SPLITS)
def test_excluded_classes_never_labeled(mnist, how):
    y = mnist[1]
    ids = initial_labels(y, 80, seed=0, how=how, exclude_classes=[3, 7])
    assert ids.numel() == 80
    labels = set(y[ids].tolist())
    assert 3 not in labels and 7 not in labels


def test_balanced_split_with_exclusions_spreads_over_remaining_classes(mnist):
    y = mnist[1]
    ids = initial_labels(y, 17, seed=0, exclude_classes=[0, 5])
    counts = torch.bincount(y[ids], minlength=10).tolist()
    assert counts == [0, 3, 2, 2, 2, 0, 2, 2, 2, 2]


def test_split_works_on_two_moons():
    _, y = make_moons(100, 0.1, seed=0)
    ids = initial_labels(y, 10, seed=0)
    assert torch.bincount(y[ids]).tolist() == [5, 5]


@pytest.mark.parametrize(
    ("n", "how", "exclude", "error", "fragments"),
    [
        (0, "balanced", (), OptionError, ["--labels must be a positive number, got 0"]),
        (-5, "random", (), OptionError, ["positive number", "-5"]),
        (70000, "balanced", (), OptionError, ["--labels 70000 is larger than the 60000 training samples"]),
        (60000, "first", (0,), OptionError, ["larger than the 54077", "excluded classes 0"]),
        (10, "stratified", (), OptionError, ["'stratified'", "balanced, first, random"]),
        (10, "balanced", (12,), OptionError, ["class 12", "does not exist", "0..9"]),
        (10, "balanced", tuple(range(10)), OptionError, ["every class"]),
    ],
)
def test_bad_split_requests_raise_actionable_errors(mnist, n, how, exclude, error, fragments):
    with pytest.raises(error) as info:
        initial_labels(mnist[1], n, seed=0, how=how, exclude_classes=exclude)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_balanced_split_with_too_small_class_raises_data_error():
    y = torch.tensor([0] * 10 + [1] * 2)
    with pytest.raises(DataError) as info:
        initial_labels(y, 8, seed=0)
    msg = str(info.value)
    assert "class 1" in msg and "only 2" in msg and "asks for 4" in msg
    # the same request works when not class-balanced
    assert initial_labels(y, 8, seed=0, how="random").numel() == 8
