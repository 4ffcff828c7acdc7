"""Hostile strategies: each tries one route to the hidden labels of the pool and writes what it found.

A plugin module (learner processes import it by its name). Every strategy queries 5 pool ids a round
for 3 rounds; at each ``select`` it tries its route, merges what it found (id → label) into the JSON
file its ``out`` option names, and lets what it found steer its choice (the pool ids it found in
class 1 first), so that its behaviour depends on what it read, as a cheat's would.

The routes are those of the judge's threat model (``docs/architecture.md``): the garbage collector,
the call stack, the objects reachable from ``ctx``, the oracle handle's internals, ``select``
returning the whole pool, a handle kept past its call, a wrapper installed at import time on the
judge's classes, a strategy that behaves only under test, and one that reads only the class prior;
the last two read through the route the judge cannot close (loading the dataset again).
"""

from __future__ import annotations

import gc
import json
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import sslzoo
from sslzoo import ORACLE, Context, Labels, Strategy, TrainOptions, hookimpl
from sslzoo._contract import oracle as oracle_module
from sslzoo._engine import judge as judge_module

Found = dict[int, int]

#: What the import-time wrapper stashes: every label tensor given to the judge's classes in this process.
STASH: list[torch.Tensor] = []


def _stash(cls: type) -> None:
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        STASH.extend(a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))
        original(self, *args, **kwargs)

    cls.__init__ = init  # type: ignore[misc]


_stash(judge_module.Judge)
_stash(oracle_module.Oracle)


def _agrees(value: Any, ctx: Context) -> bool:
    """Whether ``value`` is a full label tensor of the training set: one valid class per id, equal to the
    labels the strategy holds where it holds one."""
    if not isinstance(value, torch.Tensor) or value.dim() != 1 or value.numel() != ctx.x.shape[0]:
        return False
    if value.dtype.is_floating_point or value.dtype == torch.bool:
        return False
    known = ctx.ledger.ids(ORACLE)
    value = value.to(ctx.device)
    valid = bool(((value >= 0) & (value < ctx.num_classes)).all())
    return valid and torch.equal(value[known], ctx.ledger.target[known])


def _first_truth(values: Any, ctx: Context) -> torch.Tensor | None:
    for value in values:
        try:
            if _agrees(value, ctx):
                return value.to(ctx.device)
        except Exception:  # anything that is not a plain tensor
            continue
    return None


def _walk(root: Any, ctx: Context, depth: int = 6) -> torch.Tensor | None:
    """Breadth-first over attributes, containers and closures from ``root``, for a truth tensor."""
    seen: set[int] = set()
    level = [root]
    for _ in range(depth):
        following: list[Any] = []
        for obj in level:
            if id(obj) in seen or isinstance(obj, (str, bytes, int, float, types.ModuleType, type)):
                continue
            seen.add(id(obj))
            if _agrees(obj, ctx):
                return obj
            if isinstance(obj, dict):
                following.extend(obj.values())
            elif isinstance(obj, (list, tuple, set)):
                following.extend(obj)
            elif isinstance(obj, types.FunctionType):
                following.extend(cell.cell_contents for cell in obj.__closure__ or () if _filled(cell))
            elif isinstance(obj, types.MethodType):
                following.append(obj.__self__)
                following.append(obj.__func__)
            elif hasattr(obj, "__dict__") and not isinstance(obj, torch.Tensor):
                following.extend(vars(obj).values())
        level = following
    return None


def _filled(cell: Any) -> bool:
    """Whether a closure cell holds a value yet."""
    try:
        return cell.cell_contents is not cell
    except ValueError:
        return False


# -- the routes -----------------------------------------------------------------------------------------
def gc_scan(ctx: Context) -> torch.Tensor | None:
    """Every object the garbage collector tracks, and the tensors they hold (quietly: some objects
    warn when looked at)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _scan(gc.get_objects(), ctx)


def _scan(objects: list[Any], ctx: Context) -> torch.Tensor | None:
    found = _first_truth(objects, ctx)
    if found is not None:
        return found
    return _first_truth((v for o in objects if hasattr(o, "__dict__") for v in vars(o).values()), ctx)


def frame_walk(ctx: Context) -> torch.Tensor | None:
    """The locals of every frame up the call stack, and what they hold."""
    frame = sys._getframe()
    while frame is not None:
        found = _walk(dict(frame.f_locals), ctx, depth=4)
        if found is not None:
            return found
        frame = frame.f_back
    return None


def ctx_walk(ctx: Context) -> torch.Tensor | None:
    """Everything reachable from ``ctx``."""
    return _walk(ctx, ctx)


def reloaded(ctx: Context) -> torch.Tensor | None:
    """The dataset loaded again through sslzoo's API (the route the judge cannot close)."""
    return sslzoo.create_dataset("moons", n_train=ctx.x.shape[0], n_test=200, noise=0.1).load(ctx.seed).y_train


def stashed(ctx: Context) -> torch.Tensor | None:
    """What the wrapper installed at import time stashed in this process."""
    return _first_truth(STASH, ctx)


# -- the strategies -------------------------------------------------------------------------------------
@dataclass
class HostileOptions(TrainOptions):
    out: str = field(default="", metadata={"help": "the JSON file where it writes what it found (id → label)"})


class Hostile(Strategy):
    """Queries 5 pool ids a round for 3 rounds, those it found in class 1 first."""

    family = "al"
    paper = "—"
    summary = "a hostile strategy of the judge's tests"
    Options = HostileOptions
    route = staticmethod(gc_scan)

    def stop(self, ctx: Context) -> str | None:
        return None if ctx.round < 3 else "done"

    def query_count(self, ctx: Context, n_candidates: int) -> int:
        return min(5, n_candidates)

    def found(self, ctx: Context) -> torch.Tensor | None:
        """The route's labels of every training id, or None."""
        try:
            return self.route(ctx)
        except Exception:
            return None

    def keep(self, found: Found) -> None:
        """Merge ``found`` into the ``out`` file."""
        if not self.options.out:
            return
        path = Path(self.options.out)
        known = {int(k): v for k, v in json.loads(path.read_text()).items()} if path.exists() else {}
        known.update(found)
        path.write_text(json.dumps(known))

    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        truth = self.found(ctx)
        if truth is None:
            self.keep({})
            return candidates[:5]
        self.keep(dict(zip(candidates.tolist(), truth[candidates].tolist())))
        ordered = candidates[torch.argsort((truth[candidates] != 1).to(torch.int8), stable=True)]
        return ordered[:5]


class GcScan(Hostile):
    name = "hostile_gc_scan"


class FrameWalk(Hostile):
    name = "hostile_frame_walk"
    route = staticmethod(frame_walk)


class CtxWalk(Hostile):
    name = "hostile_ctx_walk"
    route = staticmethod(ctx_walk)


class ImportWrapper(Hostile):
    name = "hostile_import_wrapper"
    route = staticmethod(stashed)


class HandleInternals(Hostile):
    """Selects 25 pool ids, asks the oracle for 5 and reads the rest from the handle's internals (its
    attributes and the closures it holds), to return them as pseudo-labels."""

    name = "hostile_handle_internals"

    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        return candidates[:25]

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        handle, order = ctx.oracle, ids.sort().values
        pieces = [v for v in _reachable(handle) if isinstance(v, torch.Tensor) and v.numel() == ids.numel()
                  and v.dtype == torch.long and not torch.equal(v.to(ctx.device), order)
                  and bool(((v >= 0) & (v < ctx.num_classes)).all())]
        answered = handle(ids[:5])
        rest = ids[5:]
        if pieces:  # the truth of the call's ids, in sorted id order
            truth = pieces[0].to(ctx.device)[torch.searchsorted(order, rest)]
            self.keep(dict(zip(rest.tolist(), truth.tolist())))
        else:
            self.keep({})
            truth = torch.zeros_like(rest)
        return answered.cat(Labels.pseudo(rest, truth, torch.ones(rest.numel(), device=ctx.device)))


def _reachable(root: Any, depth: int = 4) -> list[Any]:
    out: list[Any] = []
    level, seen = [root], set()
    for _ in range(depth):
        following: list[Any] = []
        for obj in level:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append(obj)
            if isinstance(obj, types.FunctionType):
                following.extend(cell.cell_contents for cell in obj.__closure__ or () if _filled(cell))
            elif isinstance(obj, types.MethodType):
                following.append(obj.__self__)
            elif hasattr(obj, "__dict__") and not isinstance(obj, (torch.Tensor, type, types.ModuleType)):
                following.extend(vars(obj).values())
        level = following
    return out


class WholePool(Hostile):
    """``select`` returns the whole pool; ``label`` asks for 5 and pseudo-labels the rest with what the
    open handle answers beyond its count (it cannot: the handle refuses)."""

    name = "hostile_whole_pool"

    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        return candidates

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        answered = ctx.oracle(ids[:5])
        rest = ids[5:]
        try:
            more = ctx.oracle(rest)
            self.keep(dict(zip(rest.tolist(), more.targets.tolist())))
            guess = more.targets
        except sslzoo.OracleError:
            self.keep({})
            guess = torch.zeros_like(rest)
        return answered.cat(Labels.pseudo(rest, guess, torch.ones(rest.numel(), device=ctx.device)))


class KeptHandle(Hostile):
    """Keeps the oracle handle of one round's ``label`` and asks it about the pool in the next ``select``."""

    name = "hostile_kept_handle"
    kept: Any = None

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        type(self).kept = ctx.oracle
        return ctx.oracle(ids)

    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        if self.kept is not None:
            try:
                labels = self.kept(candidates)
                self.keep(dict(zip(candidates.tolist(), labels.targets.tolist())))
            except sslzoo.OracleError:
                self.keep({})
        return candidates[:5]


class ClassPrior(Hostile):
    """Reads only the class counts of its candidates (by loading the data again) and takes its lowest
    ids when class 0 is the commoner, else its highest: no single label is used."""

    name = "hostile_class_prior"
    route = staticmethod(reloaded)

    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        truth = self.found(ctx)
        self.keep({})
        ordered = candidates.sort().values
        if truth is None:
            return ordered[:5]
        counts = torch.bincount(truth.to(ctx.device)[candidates], minlength=2)
        return ordered[:5] if counts[0] >= counts[1] else ordered[-5:]


class DetectsTests(Hostile):
    """Honest when ``sslzoo/testing.py`` is on the call stack; otherwise it loads the data again and
    queries what it found in class 1."""

    name = "hostile_test_detecting"
    route = staticmethod(reloaded)

    def found(self, ctx: Context) -> torch.Tensor | None:
        frame = sys._getframe()
        while frame is not None:
            if frame.f_code.co_filename.replace("\\", "/").endswith("sslzoo/testing.py"):
                return None
            frame = frame.f_back
        return super().found(ctx)


class Fragile(Hostile):
    """Loads the data again and raises when its class counts are not those of the real data."""

    name = "hostile_fragile"
    route = staticmethod(reloaded)

    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        truth = self.found(ctx)
        if truth is not None and int(truth.sum()) != ctx.x.shape[0] // 2:  # moons: half of each class
            raise RuntimeError("the labels changed")
        return candidates[:5]


HOSTILE: tuple[type[Hostile], ...] = (GcScan, FrameWalk, CtxWalk, ImportWrapper, HandleInternals, WholePool,
                                      KeptHandle, ClassPrior, DetectsTests)
"""Every hostile strategy; those of :data:`READS_THE_DATA` go through the route the judge cannot close."""

READS_THE_DATA = (ClassPrior, DetectsTests)


@hookimpl
def register_strategies(register: Any) -> None:
    for strategy in (*HOSTILE, Fragile):
        register(strategy)
