"""Teachers: second models whose weights follow the trained model's (the student's).

A strategy asks the context for one, ``ctx.teacher(decay)``; the engine creates it from the
student's weights of that moment, on the student's device, and after every optimizer step moves
it toward the student, an exponential moving average of the student's weights (Polyak & Juditsky
1992; the mean teacher of Tarvainen & Valpola 2017):

    teacher ← d · teacher + (1 − d) · student

With ``warmup`` (the default) the t-th update (t = 1, 2, ...) uses d = min(decay, 1 − 1/(t + 1)):
until the decay takes over, the teacher is the plain mean of the student's weights since it was
created (the mean teacher's own code). Decay 0 makes a copy of the student after every step;
decay 1 without warmup a frozen copy.

Every floating-point entry of the state dict (parameters and buffers such as batch-norm's running
statistics) is averaged; the others (batch-norm's step counter) are copied. The teacher's
parameters never require a gradient. It is created in the student's mode of the moment (training
mode during training: dropout on, the teacher's own noise as the mean teacher has it);
:meth:`Teacher.predict` switches dropout off, as ``ctx.predict`` does. A model built afresh (``retrain=scratch``) starts
without teachers: each is created again from the new student when first asked for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from sslzoo._ops import inference
from sslzoo._ops.inference import Precision
from sslzoo.errors import PluginError

View = Callable[[torch.Tensor], torch.Tensor]


class Teacher:
    """A copy of the student whose weights follow it by an exponential moving average.

    ``model`` is the teacher's ``nn.Module`` (call it under ``torch.no_grad()``), ``decay`` the
    decay of the coming updates (a strategy may change it at any time), ``updates`` how many
    updates it has had.
    """

    def __init__(self, student: nn.Module, decay: float, warmup: bool, x: torch.Tensor,
                 precision: Precision = "auto") -> None:
        self.model = copy.deepcopy(student).requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self.x, self.precision = x, precision
        mine = self.model.state_dict(keep_vars=True)
        theirs = student.state_dict(keep_vars=True)
        floats = [k for k, v in mine.items() if v.is_floating_point()]
        self._averaged = ([mine[k].detach() for k in floats], [theirs[k].detach() for k in floats])
        self._copied = [(mine[k], theirs[k]) for k in mine if k not in floats]

    def current_decay(self) -> float:
        """The decay the next update uses: ``decay``, or with ``warmup`` at most ``1 − 1/(t + 1)``
        for the t-th update."""
        if not self.warmup:
            return self.decay
        return min(self.decay, 1.0 - 1.0 / (self.updates + 2))

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average toward the student's current weights (the engine calls it after
        every optimizer step)."""
        mine, theirs = self._averaged
        if mine:
            torch._foreach_lerp_(mine, theirs, 1.0 - self.current_decay())
        for own, other in self._copied:
            own.copy_(other)
        self.updates += 1

    def predict(self, ids: torch.Tensor, view: View | None = None) -> torch.Tensor:
        """Class probabilities (k, C) of the teacher for ``ids``, dropout off, no gradient, in chunks
        (as ``ctx.predict``; ``view`` transforms each chunk's inputs first)."""
        return inference.probabilities(self.model, self.x, ids, grad_free="no_grad", precision=self.precision,
                                       view=view)


class Teachers:
    """The teachers of one student, by name: created on the first ask, updated after every step."""

    def __init__(self, student: nn.Module, x: torch.Tensor, precision: Precision = "auto") -> None:
        self.student, self.x, self.precision = student, x, precision
        self.by_name: dict[str, Teacher] = {}

    def get(self, name: str, decay: float | None, warmup: bool, where: str) -> Teacher:
        """The teacher ``name``, created from the student's weights now if it does not exist yet;
        ``decay`` (when given) becomes its decay."""
        if decay is not None and not 0.0 <= decay <= 1.0:
            raise PluginError(f"{where}: ctx.teacher(decay={decay}): the decay must be between 0 and 1")
        teacher = self.by_name.get(name)
        if teacher is None:
            if decay is None:
                raise PluginError(f"{where}: ctx.teacher(name={name!r}) has no teacher of that name yet: the first "
                                  f"call for a name creates it and must give its decay")
            teacher = self.by_name[name] = Teacher(self.student, decay, warmup, self.x, self.precision)
        elif decay is not None:
            teacher.decay = decay
        return teacher

    def update(self) -> None:
        """Every teacher one step toward the student."""
        for teacher in self.by_name.values():
            teacher.update()
