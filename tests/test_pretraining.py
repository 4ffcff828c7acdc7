"""The self-supervised stage (``--pretrain``): the methods' losses against their reference code, the
views, the stage's cache and how a run uses it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import sslzoo
from sslzoo._cli.main import main
from sslzoo._contract.pretraining import Pretrainer
from sslzoo._contract.registry import default_registry
from sslzoo._default_plugins.pretrainers import negative_cosine, nt_xent
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.pretraining import FORMAT, NOTE, Pretraining, _locked, _store, digest, head_keys
from sslzoo._engine.run import Run, RunSpec
from sslzoo._ops.views import channel_range, random_view
from sslzoo._planning.executor import SerialExecutor
from sslzoo.errors import OptionError, UnknownNameError
from sslzoo.labeling.session import Session
from sslzoo.labeling.simulated import SimulatedLabeler
from tests.user_data import image_folder


def reference_contrastive_loss(hidden: np.ndarray, temperature: float) -> float:
    """google-research/simclr ``tf2/objective.py`` ``add_contrastive_loss(hidden, hidden_norm=True,
    temperature)`` on one replica, its TensorFlow calls written with NumPy."""
    large_num = 1e9
    hidden = hidden / np.linalg.norm(hidden, axis=-1, keepdims=True)
    hidden1, hidden2 = np.split(hidden, 2, 0)
    batch_size = hidden1.shape[0]
    labels = np.eye(batch_size, batch_size * 2)
    masks = np.eye(batch_size)
    logits_aa = hidden1 @ hidden1.T / temperature - masks * large_num
    logits_bb = hidden2 @ hidden2.T / temperature - masks * large_num
    logits_ab = hidden1 @ hidden2.T / temperature
    logits_ba = hidden2 @ hidden1.T / temperature

    def softmax_cross_entropy_with_logits(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -(labels * log_softmax).sum(axis=1)

    loss_a = softmax_cross_entropy_with_logits(labels, np.concatenate([logits_ab, logits_aa], 1))
    loss_b = softmax_cross_entropy_with_logits(labels, np.concatenate([logits_ba, logits_bb], 1))
    return float(np.mean(loss_a + loss_b))


@pytest.mark.parametrize("temperature", [0.5, 0.1, 1.0])
def test_nt_xent_is_the_simclr_reference_loss(temperature):
    generator = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(16, 8, generator=generator), torch.randn(16, 8, generator=generator)
    expected = reference_contrastive_loss(torch.cat([z1, z2]).double().numpy(), temperature)
    assert abs(float(nt_xent(z1, z2, temperature)) - expected) < 1e-6 * max(1.0, expected)


def test_negative_cosine_is_the_simsiam_reference_loss_with_its_stop_gradient():
    generator = torch.Generator().manual_seed(4)
    p1, p2, z1, z2 = (torch.randn(12, 6, generator=generator, requires_grad=True) for _ in range(4))
    criterion = nn.CosineSimilarity(dim=1)  # facebookresearch/simsiam main_simsiam.py, train()
    expected = -(criterion(p1, z2.detach()).mean() + criterion(p2, z1.detach()).mean()) * 0.5
    loss = negative_cosine(p1, p2, z1, z2)
    assert abs(loss.detach().item() - expected.detach().item()) < 1e-6
    loss.backward()
    assert z1.grad is None and z2.grad is None  # the projections are targets: no gradient reaches them
    assert p1.grad is not None and float(p1.grad.abs().sum()) > 0


def test_views_are_drawn_from_the_generator_and_stay_in_the_pixel_range():
    x = torch.rand(6, 3, 16, 16) * 2 - 0.5  # a per-channel affine normalisation of [0, 1] pixels
    pixels = channel_range(x, torch.arange(6))
    first = random_view(x, torch.Generator().manual_seed(1), pixels, 0.08, 0.5, 10.0)
    again = random_view(x, torch.Generator().manual_seed(1), pixels, 0.08, 0.5, 10.0)
    other = random_view(x, torch.Generator().manual_seed(2), pixels, 0.08, 0.5, 10.0)
    assert first.shape == x.shape and torch.equal(first, again) and not torch.equal(first, other)
    low, high = (p.view(1, 3, 1, 1) for p in pixels)
    assert bool(((first >= low - 1e-5) & (first <= high + 1e-5)).all())


def test_a_grey_image_is_cropped_and_rotated_but_never_distorted_in_colour():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, :, :4] = 1.0  # left half white: a flip would put the white on the right
    view = random_view(x, torch.Generator().manual_seed(0), channel_range(x, torch.arange(64)), 0.5, 0.5, 0.0)
    left, right = view[..., :4].mean(dim=(1, 2, 3)), view[..., 4:].mean(dim=(1, 2, 3))
    assert bool((left >= right).all())  # no view mirrored


@pytest.mark.parametrize(("text", "error", "words"), [
    ("simclrr", UnknownNameError, "simclr"),
    ("simclr:temperature=0", OptionError, "temperature"),
    ("simsiam:epochs=0", OptionError, "epochs"),
    ("simclr:lr=fast", OptionError, "lr"),
    ("simclr:colour=1", OptionError, "colour"),
])
def test_a_bad_method_or_option_is_a_one_line_error(text, error, words):
    with pytest.raises(error) as caught:
        Pretraining(default_registry(), text, "strategy 'supervised'")
    assert words in str(caught.value) and "\n" not in str(caught.value)


TINY = "simclr:epochs=1,batch_size=16,projection_dim=8"
"""A stage that trains in well under a second on the test folders."""


def _folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A small image folder (two classes of 16x16 grey shapes, a test folder beside it) and a cache
    directory of the test's own."""
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(tmp_path / "cache"))
    return str(image_folder(tmp_path / "data", per_class=16, unlabeled=0))


def _read(folder: str) -> dict[str, object]:
    """The dataset options that read the folder: 28x28 (cnn's size), its test folder."""
    return {"size": 28, "test": str(Path(folder).parent / "test")}


def _grid(folder: str, notes: list[str], seeds: int = 2, **options: object) -> list[dict]:
    """Two seeds of supervised training on the folder with the tiny stage, learner and judge in this process."""
    def progress(spec: RunSpec):
        return lambda info: notes.append(info[NOTE]) if NOTE in info else None

    return sslzoo.run("supervised", folder, labels=4, seeds=seeds, dataset_options=_read(folder),
                      options={"epochs": 1, "pretrain": TINY, **options}, progress=progress,
                      executor=SerialExecutor(in_process=True))


@pytest.mark.slow
def test_the_second_run_of_a_grid_reuses_the_cached_stage_without_training_it(tmp_path, monkeypatch, one_thread):
    folder = _folder(tmp_path, monkeypatch)
    trained = []
    train = Pretraining.train

    def spy(self, *args, **kwargs):
        trained.append(self.name)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Pretraining, "train", spy)
    notes: list[str] = []
    first, second = _grid(folder, notes)
    assert trained == ["simclr"]  # once for the grid
    assert first["pretrain"]["reused"] is False and second["pretrain"]["reused"] is True
    assert first["pretrain"]["key"] == second["pretrain"]["key"]
    assert first["pretrain"]["options"]["seed"] == 0 and first["options"]["pretrain"] == TINY
    path = tmp_path / "cache" / f"pretrain-simclr-{first['pretrain']['key']}.pt"
    assert notes == [f"pretrain simclr: trained 1 epoch on 32 inputs ({first['pretrain']['seconds']:.1f} s), "
                     f"cached at {path}",
                     f"pretrain simclr: reused the cached stage {path} (trained in "
                     f"{first['pretrain']['seconds']:.1f} s)"]
    _grid(folder, notes, seeds=1, lr=0.01)  # another strategy option: the same stage
    assert trained == ["simclr"] and len(notes) == 3
    _grid(folder, notes, seeds=1, pretrain=TINY + ",seed=1")  # another stage seed: another stage
    assert trained == ["simclr", "simclr"]


def test_every_fresh_model_starts_from_the_backbone_and_probe_trains_only_the_last_layer(tmp_path, monkeypatch,
                                                                                        one_thread):
    folder = _folder(tmp_path, monkeypatch)
    registry = default_registry()
    spec = RunSpec("supervised", "imagefolder", labels=4, dataset_options={"root": folder, **_read(folder)},
                   options={"epochs": 2, "pretrain": TINY, "pretrain_use": "probe"})
    run = Run(spec, create_strategy("supervised", registry, **spec.options), registry)
    record = run.execute()
    state = torch.load(tmp_path / "cache" / f"pretrain-simclr-{record['pretrain']['key']}.pt",
                       weights_only=True)["state"]
    model = run.learner.model
    assert set(state) == set(model.state_dict()) - head_keys(model) and head_keys(model) == {"11.weight", "11.bias"}
    assert all(torch.equal(model.state_dict()[key].cpu(), value) for key, value in state.items())  # frozen
    assert [name for name, p in model.named_parameters() if p.requires_grad] == ["11.weight", "11.bias"]
    fresh = run.members.build((1, 28, 28), 2)  # what a retrain=scratch round or a committee member starts from
    assert all(torch.equal(fresh.state_dict()[key], value) for key, value in state.items())


def test_a_stage_needs_images_and_a_backbone_one_line_each(tmp_path, monkeypatch):
    folder = _folder(tmp_path, monkeypatch)
    cases = [("moons", {}, None, "its views are of images"),
             ("imagefolder", {"root": folder, **_read(folder)}, "linear",
              "no trainable layer before its embedding layer")]
    for dataset, dataset_options, model, words in cases:
        with pytest.raises(OptionError) as caught:
            sslzoo.run("supervised", dataset, labels=4, model=model, dataset_options=dataset_options,
                       options={"epochs": 1, "pretrain": TINY}, executor=SerialExecutor(in_process=True))
        assert words in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.slow
def test_bench_pretrain_logs_the_stage_and_its_reuse_from_the_learner_processes(tmp_path, monkeypatch):
    folder = _folder(tmp_path, monkeypatch)
    read = ["-d", "size=28", "-d", f"test={Path(folder).parent / 'test'}"]
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", folder, *read,
                                       "--labels", "4", "--seeds", "2", "--epochs", "1", "--pretrain", TINY])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "pretrain simclr" in line]
    assert len(lines) == 2 and lines[0].startswith("supervised seed 0: pretrain simclr: trained 1 epoch on 32 inputs")
    assert lines[1].startswith("supervised seed 1: pretrain simclr: reused the cached stage ")
    quiet = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", folder, *read, "-q",
                                      "--labels", "4", "--epochs", "1", "--pretrain", TINY])
    assert quiet.exit_code == 0 and "pretrain" not in quiet.stderr


@pytest.mark.slow
def test_a_labeling_session_trains_from_the_stage(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(tmp_path / "cache"))
    Session.start(tmp_path / "s", "mnist", "margin", options={"epochs": "1", "pretrain": TINY},
                  dataset_options={"n_train": 200, "n_test": 100}, device="cpu")
    notes: list[str] = []
    session = Session(tmp_path / "s", progress=lambda info: notes.append(info[NOTE]) if NOTE in info else None)
    cold = session.next(4)
    session.import_labels(SimulatedLabeler(session).fill(cold.directory / "queries.csv", tmp_path / "a.csv"))
    session.next(4)  # the first training: the stage is trained, then reused by the next commands
    session.train()
    assert [note.split(":")[1].split()[0] for note in notes] == ["trained", "reused"], notes
    assert notes[0].startswith("pretrain simclr: trained 1 epoch on 200 inputs")


@pytest.mark.slow
def test_a_run_that_finds_its_stage_in_training_waits_for_it_and_reuses_it(tmp_path, monkeypatch, one_thread):
    """Two runs of one stage side by side: the second finds the first's lock, waits, then reads its file."""
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(tmp_path / "cache"))
    registry = default_registry()
    stage, build = Pretraining(registry, TINY, "strategy 'supervised'"), registry.models.get("cnn").obj.build
    x, ids = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(32)
    key = stage.key("cnn", (1, 28, 28), 2, digest(x, ids))
    path = tmp_path / "cache" / f"pretrain-simclr-{key}.pt"
    notes: list[str] = []
    answers: list[tuple[dict, dict]] = []
    second = threading.Thread(target=lambda: answers.append(
        stage.weights(build, "cnn", x, ids, 2, torch.device("cpu"), "auto", notes.append)))
    with _locked(path, lambda: None):  # the first run, training
        second.start()
        for _ in range(200):
            if notes:
                break
            time.sleep(0.05)
        assert notes == [f"pretrain simclr: waiting for another run that trains the same stage ({path})"]
        state, _ = stage.train(build, x, ids, 2, torch.device("cpu"), "auto")
        assert _store(path, {"format": FORMAT, "key": key, "state": state, "seconds": 1.0}) is None
    second.join(timeout=60)
    (found, entry), = answers
    assert entry["reused"] is True and notes[1].startswith("pretrain simclr: reused the cached stage")
    assert all(torch.equal(found[k], v) for k, v in state.items())


class Shrink(Pretrainer):
    """Drives the embedding to zero: the collapse a stage must report."""

    name = "shrink"

    def head(self, width: int) -> nn.Module:
        return nn.Identity()

    def loss(self, embed, head, first, second):
        return head(embed(first)).mean() + head(embed(second)).mean()


def test_a_collapsed_stage_is_reported_in_the_log(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(tmp_path / "cache"))
    registry = default_registry()
    stage = Pretraining(registry, "simclr", "strategy 'supervised'")
    stage.method = Shrink(epochs=5, batch_size=16, lr=0.05)
    notes: list[str] = []
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    stage.weights(registry.models.get("cnn").obj.build, "cnn", x, torch.arange(64), 2, torch.device("cpu"), "auto",
                  notes.append)
    assert notes[0].startswith("pretrain simclr: the embedding collapsed: its features barely vary over the first "
                               "64 inputs (relative spread "), notes
