"""A run's self-supervised stage (the training option ``pretrain``): trained once, cached by content.

``pretrain=NAME[:KEY=VALUE,...]`` names a registered :class:`~sslzoo._contract.pretraining.Pretrainer`
and its options (an unknown name or a bad option fails when the run is built, before anything is
loaded). Before round 0 the learner trains a fresh model's backbone (every layer before its
embedding layer, :func:`~sslzoo._ops.embedding.embedding_layer`) on the inputs of the run's pool
and starting labels, no label, with the method's head, then keeps the backbone's weights: every
model the run builds (round 0's, each ``retrain=scratch`` round's, a committee's members) starts
from them, its embedding layer (the classifier) initialised as without the stage. With the training
option ``pretrain_use=probe`` the backbone is frozen (its batch norms keep their statistics, as
``freeze=true`` does for a zoo model; its dropout layers still drop in training, as they do there)
and only the embedding layer trains: a linear probe, whose embedding (``features=model`` of the
embedding strategies) is the stage's.

**Cached by content.** The stage depends on the inputs it trains on, the model, the method, its
options and its ``seed`` (an option of the stage, default 0, not the run's seed: every seed and
strategy of a grid shares one stage). Its key is a digest of these, the inputs by a BLAKE2 digest
of their values as the model sees them (normalised); the weights are kept in the cache directory of
the datasets (``SSLZOO_CACHE_DIR``, else ``~/.cache/sslzoo``) as ``pretrain-NAME-KEY.pt``. Which
inputs: every training id the run may train on (its pool and starting labels), which is the whole
training split and the same for every seed unless the run holds ids out (the ``gal2017`` split, a
``validation`` set): then each seed has its own stage, as it should.

**Concurrent runs.** The file is written whole (a temporary file renamed into place), so a reader
finds the previous file or the new one, never a torn one. A run that finds no file takes an
advisory lock beside it (``flock``; released when its holder exits, even killed); a second run of
the same stage waits for the lock, then finds the file and reuses it, so a grid's workers train a
stage once. Where the cache cannot be written, the stage trains in every run, and says so.

The log (the progress notes ``sslzoo bench`` prints) says ``pretrain NAME: trained ... (N s), cached
at PATH`` or ``pretrain NAME: reused the cached stage PATH``; the record's ``pretrain`` entry holds the
method, its options, the key, whether the stage was ``reused`` and the seconds its training took.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sslzoo._contract.options import options_dict
from sslzoo._contract.pretraining import Pretrainer
from sslzoo._contract.registry import Registry
from sslzoo._contract.stopping import parse_stop
from sslzoo._datasets.tensor_cache import cache_dir
from sslzoo._ops import inference
from sslzoo._ops.embedding import embedding_layer
from sslzoo._ops.features import FittedFeatures
from sslzoo._ops.inference import Precision
from sslzoo._ops.model_zoos import freeze_all_but
from sslzoo._ops.views import channel_range
from sslzoo.errors import OptionError, TrainingError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: concurrent runs train the stage each
    fcntl = None  # type: ignore[assignment]

FORMAT = 1
"""The version of the cached stages' layout: a change makes every older file a miss."""
NOTE = "note"
"""The key of a progress report that is a line for the log rather than an epoch's progress."""
SPREAD_ROWS = 1024
"""The inputs whose embeddings tell a collapsed stage (:meth:`Pretraining.train`)."""
COLLAPSED = 1e-3
"""A relative spread below this is a collapsed embedding: the log says so (SimSiam without batch norm, a
learning rate too high)."""

Build = Callable[[tuple[int, ...], int], nn.Module]
Note = Callable[[str], None]


def head_keys(model: nn.Module) -> frozenset[str]:
    """The state-dict keys of ``model``'s embedding layer (its classifier): what the stage leaves out."""
    layer = embedding_layer(model)
    name = next(n for n, m in model.named_modules() if m is layer)
    return frozenset(f"{name}.{key}" if name else key for key in layer.state_dict())


def pretrained_build(build: Build, state: dict[str, Tensor], probe: bool) -> Build:
    """``build``, whose models start from the backbone weights ``state`` (their embedding layer as
    ``build`` initialised it); with ``probe`` the backbone is frozen."""
    def fresh(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        model = build(input_shape, num_classes)
        model.load_state_dict(state, strict=False)
        if probe:
            freeze_all_but(model, head_keys(model))
        return model

    return fresh


def digest(x: Tensor, ids: Tensor) -> str:
    """A BLAKE2 digest of the rows ``x[ids]`` as the model sees them (their values, shape and dtype),
    read in chunks."""
    h = hashlib.blake2b(digest_size=16)
    step = inference.chunk_rows(x)
    for start in range(0, ids.numel(), step):
        h.update(x[ids[start:start + step]].detach().float().contiguous().cpu().numpy().tobytes())
    h.update(json.dumps([ids.numel(), list(x.shape[1:])]).encode())
    return h.hexdigest()


class Pretraining:
    """A run's stage as its ``pretrain`` option names it: the method built from the option's text
    against the registry (an unknown name or a bad option fails here, before anything is loaded),
    then :meth:`weights` before round 0."""

    def __init__(self, registry: Registry, text: str, where: str) -> None:
        name, given = parse_stop(text)
        if not name:
            raise OptionError(f"option pretrain={text!r} of {where} names no pretraining method; give "
                              f"NAME[:KEY=VALUE,...] (sslzoo pretrainers lists them)")
        self.entry = registry.pretrainers.get(name)
        self.method: Pretrainer = self.entry.obj(**given)
        self.name = self.method.name

    def key(self, model_name: str, input_shape: tuple[int, ...], num_classes: int, inputs: str) -> str:
        """The stage's key: the method (qualified), its options, the model and the inputs' digest."""
        identity = [FORMAT, self.entry.qualified_name, options_dict(self.method.options), model_name,
                    list(input_shape), num_classes, inputs]
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def weights(self, build: Build, model_name: str, x: Tensor, ids: Tensor, num_classes: int,
                device: torch.device, precision: Precision, note: Note) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The backbone's weights, from the cache or trained (and cached), and the record's entry."""
        shape = tuple(x.shape[1:])
        if len(shape) != 3:
            raise OptionError(f"pretrain {self.name}: its views are of images (channels, height, width), and the "
                              f"dataset's inputs have shape {shape}")
        key = self.key(model_name, shape, num_classes, digest(x, ids))
        path = cache_dir() / f"pretrain-{self.name}-{key}.pt"
        entry = {"method": self.name, "options": options_dict(self.method.options), "key": key}
        found = _load(path, key)
        if found is None:
            with _locked(path, lambda: note(f"pretrain {self.name}: waiting for another run that trains the same "
                                            f"stage ({path})")):
                found = _load(path, key)  # it may have been written while this run waited
                if found is None:
                    started = time.perf_counter()
                    state, spread = self.train(build, x, ids, num_classes, device, precision)
                    seconds = round(time.perf_counter() - started, 3)
                    if spread < COLLAPSED:
                        note(f"pretrain {self.name}: the embedding collapsed: its features barely vary over the "
                             f"first {min(SPREAD_ROWS, ids.numel())} inputs (relative spread {spread:.1e}); try a "
                             f"lower lr, fewer epochs or a model with batch norm")
                    refused = _store(path, {"format": FORMAT, "key": key, "state": state, "seconds": seconds})
                    where = f"cached at {path}" if refused is None else f"not cached: {refused}"
                    epochs = self.method.options.epochs
                    note(f"pretrain {self.name}: trained {epochs} epoch{'s' * (epochs != 1)} on {ids.numel()} inputs "
                         f"({seconds:.1f} s), {where}")
                    return state, {**entry, "reused": False, "seconds": seconds}
        note(f"pretrain {self.name}: reused the cached stage {path} (trained in {found['seconds']:.1f} s)")
        return found["state"], {**entry, "reused": True, "seconds": found["seconds"]}

    def train(self, build: Build, x: Tensor, ids: Tensor, num_classes: int, device: torch.device,
              precision: Precision) -> tuple[dict[str, Tensor], float]:
        """Train a fresh model's backbone on ``x[ids]`` with the method, from the stage's seed (torch's
        global random state is left as it was): its weights but the embedding layer's, on the CPU, and
        the embedding's relative spread over the first :data:`SPREAD_ROWS` inputs (the mean of each
        feature's standard deviation over the mean magnitude; 0 for a collapsed embedding, a constant)."""
        o = self.method.options
        n = ids.numel()
        if n < 2:
            raise OptionError(f"pretrain {self.name}: needs at least 2 inputs, the run has {n}")
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(o.seed)
            model = build(tuple(x.shape[1:]), num_classes).to(device)
            head_of_model = head_keys(model)
            trained = [p for k, p in model.named_parameters() if k not in head_of_model and p.requires_grad]
            if any(isinstance(m, FittedFeatures) for m in model.modules()) or not trained:
                raise OptionError(f"pretrain {self.name}: the model has no trainable layer before its embedding layer "
                                  f"to pretrain (fitted features and frozen backbones have none); choose another "
                                  f"--model (sslzoo models)")
            layer = embedding_layer(model)
            seen: dict[str, Tensor] = {}
            hook = layer.register_forward_hook(lambda module, args, out: seen.__setitem__("h", args[0]))

            def embed(views: Tensor) -> Tensor:
                model(views)
                return seen["h"].flatten(1)

            with torch.no_grad(), inference.eval_mode(model):
                width = embed(x[ids[:2]]).shape[1]
            head = self.method.head(width).to(device)
            params = trained + list(head.parameters())
            optimizer: torch.optim.Optimizer = (
                torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
                if o.optimizer == "sgd" else torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay))
            generator = torch.Generator(device=device).manual_seed(o.seed)
            pixels = channel_range(x, ids)
            batch = min(o.batch_size, n)
            model.train()
            head.train()
            try:
                for epoch in range(o.epochs):
                    lr = o.lr * (0.5 * (1 + math.cos(math.pi * epoch / o.epochs)) if o.schedule == "cosine" else 1.0)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    order = ids[torch.randperm(n, generator=generator, device=device).to(ids.device)]
                    total = torch.zeros((), device=device)
                    for start in range(0, n - batch + 1, batch):
                        first, second = self.method.views(x[order[start:start + batch]], generator, pixels)
                        with inference.autocast(device, precision):
                            loss = self.method.loss(embed, head, first, second)
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                        total += loss.detach()
                    if not torch.isfinite(total):
                        raise TrainingError(f"pretrain {self.name}: the loss is not finite in epoch {epoch + 1}; try "
                                            f"a lower lr")
                with torch.no_grad(), inference.eval_mode(model):
                    h = torch.cat([embed(x[part]).float() for part in ids[:SPREAD_ROWS].split(batch)])
            finally:
                hook.remove()
        spread = float(h.std(dim=0).mean() / (h.abs().mean() + 1e-12)) if h.shape[0] > 1 else 1.0
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k not in head_of_model}, spread


def _load(path: Path, key: str) -> dict[str, Any] | None:
    """The cached stage at ``path`` if it is one of ``key`` that reads back whole, else None."""
    with contextlib.suppress(Exception):  # a missing, torn or foreign file is a miss
        if path.is_file():
            found = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(found, dict) and found.get("format") == FORMAT and found.get("key") == key \
                    and isinstance(found.get("state"), dict):
                return found
    return None


def _store(path: Path, stage: dict[str, Any]) -> str | None:
    """Write ``stage`` whole to ``path`` (a temporary file renamed into place); why not, or None."""
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(stage, temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return exc.strerror if isinstance(exc, OSError) and exc.strerror else "the write failed (is the disk full?)"
    return None


@contextlib.contextmanager
def _locked(path: Path, waiting: Callable[[], None]) -> Iterator[None]:
    """Hold the advisory lock ``PATH.lock`` (calling ``waiting`` first when another process holds it);
    without a lock where it cannot be taken (no ``flock``, a directory that cannot be written)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(f"{path.name}.lock"), "a+b")  # noqa: SIM115  (held until the block ends)
    except OSError:
        yield
        return
    with handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                waiting()
                fcntl.flock(handle, fcntl.LOCK_EX)
        yield
