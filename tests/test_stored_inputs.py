"""Inputs kept in their stored dtype: an image folder's pixels stay uint8, memory-mapped from the
tensor cache's file, and are converted per batch to exactly the floats the whole converted tensor
holds."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import sslzoo
from sslzoo._datasets import tensor_cache
from sslzoo._engine import run as run_module
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.run import Run, RunSpec, load_data
from sslzoo._ops import inference, stored
from sslzoo._ops.stored import StoredInputs, model_inputs
from sslzoo.errors import DataWarning
from tests.user_data import image_folder


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(cache))
    return cache


def _options(tmp_path: Path) -> dict[str, str]:
    photos = image_folder(tmp_path)
    return {"root": str(photos), "unlabeled": str(photos / "unlabeled"), "test": str(tmp_path / "test")}


def _convert(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([100.0, 120.0, 130.0], device=x.device).view(1, -1, 1, 1)
    std = torch.tensor([50.0, 60.0, 70.0], device=x.device).view(1, -1, 1, 1)
    return (x.float() - mean) / std


def test_an_image_folder_is_uint8_memory_mapped_from_the_cache_file(tmp_path: Path, _cache: Path) -> None:
    arrays = sslzoo.create_dataset("imagefolder", **_options(tmp_path)).load(0)
    assert arrays.x_train.dtype == torch.uint8
    source = tensor_cache.source_of(arrays.x_train)
    assert source is not None and Path(source.path).parent == _cache and source.path.endswith(".npy")
    assert torch.equal(source.open()[0], arrays.x_train)  # the file holds exactly these pixels
    assert tensor_cache.source_of(arrays.x_train.clone()) is None  # a copy in memory is no mapping


def test_a_run_keeps_an_image_folder_stored_and_the_whole_converted_pool_is_never_made(tmp_path: Path) -> None:
    spec = RunSpec("margin", "imagefolder", labels=4, seed=0, device="cpu", dataset_options=_options(tmp_path))
    run = Run(spec, create_strategy("margin"))
    data, _ = load_data(run.dataset, spec, torch.device("cpu"))
    for x in (data.x, data.x_test):
        assert isinstance(x, StoredInputs) and x.dtype == torch.float32 and x.raw.dtype == torch.uint8
        assert x.source is not None and Path(x.source.path).suffix == ".npy" and torch.equal(x.source.open()[0], x.raw)
    whole = run.dataset.normalize(data.x.raw)
    ids = torch.tensor([5, 0, 39, 17])
    assert torch.equal(data.x[ids], whole[ids]) and torch.equal(data.x[3:9], whole[3:9])


def test_each_read_converts_exactly_what_the_whole_conversion_holds() -> None:
    raw = torch.randint(0, 256, (50, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    x, whole = StoredInputs(raw, _convert, torch.device("cpu")), _convert(raw)
    ids = torch.tensor([7, 3, 49, 3])
    mask = torch.arange(50) % 3 == 0
    with torch.inference_mode():
        reads = [(x[ids], whole[ids]), (x[10:20], whole[10:20]), (x[4], whole[4]), (x[-1], whole[-1]),
                 (x[mask], whole[mask]), (x[ids, 1:], whole[ids, 1:]), (x[:, 0], whole[:, 0])]
        for got, want in reads:
            assert type(got) is torch.Tensor and got.dtype == torch.float32 and torch.equal(got, want)
        assert all(torch.equal(a, b) for a, b in zip(x.split(16), whole.split(16), strict=True))
        assert torch.equal(x.flatten(1), whole.flatten(1))  # any other use converts it whole
    assert x.shape == whole.shape and x.dtype == whole.dtype and len(x) == 50


def test_reading_the_shape_dtype_or_device_converts_nothing() -> None:
    converted = []
    x = StoredInputs(torch.zeros(10, 3, 2, 2, dtype=torch.uint8), lambda t: converted.append(len(t)) or _convert(t),
                     torch.device("cpu"))
    converted.clear()
    facts = (x.shape, x.device, x.dtype, x.dim(), x.size(0), len(x), x.numel(), x.ndim, x.is_cuda, x.requires_grad)
    assert facts == ((10, 3, 2, 2), torch.device("cpu"), torch.float32, 4, 10, 10, 120, 4, False, False)
    assert converted == []
    x[2:5]
    assert converted == [3]  # a read converts its rows only


def test_inference_over_stored_inputs_matches_inference_over_the_converted_tensor() -> None:
    raw = torch.randint(0, 256, (300, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    x, whole = StoredInputs(raw, _convert, torch.device("cpu")), _convert(raw)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 5))
    ids = torch.randperm(300, generator=torch.Generator().manual_seed(2))[:200]
    assert torch.equal(inference.probabilities(model, x, ids, chunk=64), inference.probabilities(model, whole, ids,
                                                                                                 chunk=64))
    assert torch.equal(inference.predicted_classes(model, x, chunk=64), inference.predicted_classes(model, whole,
                                                                                                     chunk=64))


def test_an_inference_chunk_of_large_inputs_is_bounded_by_its_elements() -> None:
    assert inference.chunk_rows(torch.empty(0, 1, 28, 28)) == inference.CHUNK  # MNIST: as before
    assert inference.chunk_rows(torch.empty(0, 3, 64, 64)) == inference.CHUNK_ELEMENTS // (3 * 64 * 64)
    assert inference.chunk_rows(torch.empty(0, 3, 2048, 2048)) == 1


def test_stored_inputs_sent_to_another_process_map_the_file_again_instead_of_copying(tmp_path: Path) -> None:
    raw = torch.randint(0, 256, (1000, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    data = tensor_cache.cached("imagefolder", {"t": 1}, [], lambda: {"x": raw.clone()})
    part = data["x"][100:]
    x = StoredInputs(part, _convert, torch.device("cpu"), tensor_cache.source_of(part))
    sent = pickle.dumps(x)
    assert len(sent) < 10_000 < part.nbytes
    back = pickle.loads(sent)
    assert isinstance(back, StoredInputs) and torch.equal(back.raw, raw[100:]) and torch.equal(back[5:9], x[5:9])
    assert x.to("cpu").raw is x.raw and x.share_memory_() is x  # still stored; no copy into shared memory


def test_pages_given_back_past_the_resident_budget_are_read_again_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = torch.randint(0, 256, (400, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    data = tensor_cache.cached("imagefolder", {"t": 4}, [], lambda: {"x": raw.clone()})
    x = StoredInputs(data["x"], _convert, torch.device("cpu"), tensor_cache.source_of(data["x"]))
    monkeypatch.setattr(stored, "RESIDENT_BUDGET", 3 * 16 * 16 * 50)
    released = []
    monkeypatch.setattr(x, "mapping", type("Mapping", (), {"madvise": lambda self, advice: released.append(advice)})())
    view = x.raw[:10]
    for start in range(0, 400, 40):
        assert torch.equal(x[start:start + 40], _convert(raw[start:start + 40]))
    assert len(released) == 5 and torch.equal(view, raw[:10])


def test_only_mapped_or_large_integer_inputs_stay_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = torch.randint(0, 256, (20, 3, 4, 4), dtype=torch.uint8)
    assert type(model_inputs(raw, _convert, torch.device("cpu"))) is torch.Tensor  # small: converted once
    assert type(model_inputs(raw.float(), _convert, torch.device("cpu"))) is torch.Tensor
    monkeypatch.setattr(stored, "WHOLE_BUDGET", raw.numel() * 4 - 1)
    assert isinstance(model_inputs(raw, _convert, torch.device("cpu")), StoredInputs)


def test_a_run_on_stored_inputs_gives_the_record_of_a_run_on_converted_inputs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = RunSpec("margin", "imagefolder", labels=4, seed=0, device="cpu", dataset_options=_options(tmp_path),
                   options={"epochs": 2, "budget": 8, "query_size": 2})

    def record() -> tuple[object, list[int], list[torch.Tensor]]:
        run = Run(spec, create_strategy("margin", epochs=2, budget=8, query_size=2))
        done = run.execute()
        return done["curve"], run.data.ledger.train().tolist(), list(run.learner.model.state_dict().values())

    curve, labeled, weights = record()
    monkeypatch.setattr(run_module.tensor_cache, "source_of", lambda tensor: None)  # small: converted whole
    whole_curve, whole_labeled, whole_weights = record()
    assert whole_curve == curve and whole_labeled == labeled and len(labeled) == 8  # the budget counts the start
    assert all(torch.equal(a, b) for a, b in zip(weights, whole_weights, strict=True))


def test_a_tensor_file_that_cannot_be_written_leaves_nothing_and_the_run_goes_on(
        tmp_path: Path, _cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(handle: object, array: np.ndarray, allow_pickle: bool) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tensor_cache.np, "save", full)
    raw = torch.arange(12, dtype=torch.uint8).view(3, 4)
    with pytest.warns(DataWarning, match="cannot write: No space left on device; going on without the cache"):
        data = tensor_cache.cached("imagefolder", {"t": 2}, [], lambda: {"x": raw})
    assert data["x"] is raw and list(_cache.iterdir()) == []


def test_a_missing_or_torn_tensor_file_is_a_miss_and_is_rebuilt(_cache: Path) -> None:
    raw = torch.arange(60, dtype=torch.uint8).view(5, 12)
    tensor_cache.cached("imagefolder", {"t": 3}, [], lambda: {"x": raw})
    (array,) = _cache.glob("*.npy")
    array.write_bytes(array.read_bytes()[:100])  # torn
    builds = []
    again = tensor_cache.cached("imagefolder", {"t": 3}, [], lambda: builds.append(1) or {"x": raw + 1})
    assert builds == [1] and torch.equal(again["x"], raw + 1)
    (array,) = _cache.glob("*.npy")  # the torn file replaced, not kept beside the new one
    array.unlink()
    third = tensor_cache.cached("imagefolder", {"t": 3}, [], lambda: builds.append(1) or {"x": raw + 2})
    assert builds == [1, 1] and torch.equal(third["x"], raw + 2)
    assert not [p for p in _cache.iterdir() if ".tmp-" in p.name]
