"""The oracle: the hidden ground truth of the training set, and the handle one ``label`` call gets.

The truth is held by the run's judge alone (:mod:`sslzoo._engine.judge`, whose :class:`Oracle` this is),
never by the :class:`~sslzoo._contract.context.Context` nor by anything the context holds. For each ``label``
call the engine opens an :class:`OracleHandle` as ``ctx.oracle``: it answers for that call's ids
only, asking the judge per call (over the pipe to the judge's process, or, with the judge in the
same process, from the truth of that call's ids alone), counts the distinct ids it answered and
refuses to answer beyond the round's ``query_count``. When the call returns the handle is closed
and drops what answers. Anywhere else ``ctx.oracle`` is a closed handle: every call raises
:class:`~sslzoo.errors.OracleError` saying where the oracle can be asked.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sslzoo._contract.labels import ORACLE, Labels
from sslzoo.errors import OracleError

OUTSIDE_LABEL = ("the oracle was asked outside the label hook: a strategy may ask for true labels only in "
                 "label(), once per round, and only for the ids passed to that call")
CALL_RETURNED = ("the oracle was asked through a handle kept from this round's label call after that call "
                 "returned: it answers only during the label call it was given to")


Answer = Callable[[torch.Tensor], torch.Tensor]
"""The true labels of some ids, as one ``label`` call's handle gets them."""


def oracle_labels(ids: torch.Tensor, targets: torch.Tensor) -> Labels:
    """``targets`` as oracle labels of ``ids`` (confidence 1)."""
    return Labels(ids, targets, torch.ones(ids.numel(), device=ids.device),
                  torch.full((ids.numel(),), ORACLE, dtype=torch.int8, device=ids.device))


class Oracle:
    """The hidden ground truth of the training set, kept by the judge and never given to a strategy."""

    def __init__(self, targets: torch.Tensor) -> None:
        self._targets = targets

    def reveal(self, ids: torch.Tensor) -> torch.Tensor:
        """True labels of ``ids``, for the judge's figures (pseudo-label accuracy, the boundary)."""
        return self._targets[ids]

    def labels(self, ids: torch.Tensor) -> Labels:
        """Oracle labels of ``ids``, for the labels a run starts with."""
        return oracle_labels(ids, self._targets[ids])

    def handle(self, ids: torch.Tensor, allowed: int, where: str) -> OracleHandle:
        """An open handle for one ``label`` call on ``ids`` that may answer for ``allowed`` of them: it
        holds the truth of those ids only, until it is closed."""
        known = ids.sort().values
        truth = self._targets[known]
        return OracleHandle(ids, lambda asked: truth[torch.searchsorted(known, asked)], allowed, where)


class OracleHandle:
    """What ``ctx.oracle`` is: the oracle of one ``label`` call, or a closed one.

    Open, it answers ``handle(ids)`` with oracle :class:`~sslzoo._contract.strategy.Labels` for ids passed to
    its ``label`` call, counting each distinct id once, up to ``allowed`` ids; anything else raises
    :class:`~sslzoo.errors.OracleError` (a :class:`~sslzoo.errors.PluginError`) before answering.
    """

    def __init__(self, ids: torch.Tensor, answer: Answer, allowed: int, where: str,
                 on_close: Callable[[str], None] | None = None) -> None:
        self._ids = ids.sort().values
        self._answer: Answer | None = answer  # the true labels of asked ids (of the judge, or over its pipe)
        self._on_close = on_close
        self._asked = torch.zeros(ids.numel(), dtype=torch.bool, device=ids.device)
        self._answers = torch.full((ids.numel(),), -1, dtype=torch.long, device=ids.device)  # what it answered
        self._allowed, self._where = allowed, where
        self._closed: str | None = None

    @classmethod
    def closed(cls, reason: str) -> OracleHandle:
        """A handle that answers nothing: each call raises ``OracleError(reason)``."""
        handle = cls(torch.zeros(0, dtype=torch.long), torch.clone, 0, "")
        handle.close(reason)
        return handle

    def close(self, reason: str) -> None:
        """Answer nothing from now on (each call raises ``OracleError(reason)``) and drop what answers."""
        if self._closed is None and self._on_close is not None:
            self._on_close(reason)
        self._closed = reason
        self._answer = None

    def __call__(self, ids: torch.Tensor) -> Labels:
        if self._closed is not None or self._answer is None:
            raise OracleError(f"{self._where}: {self._closed}" if self._where else self._closed)
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype != torch.long:
            got = (f"a tensor of shape {tuple(ids.shape)} and dtype {ids.dtype}" if isinstance(ids, torch.Tensor)
                   else type(ids).__name__)
            raise OracleError(f"{self._where}: the oracle takes a 1-D int64 tensor of global ids, got {got}")
        pos = torch.searchsorted(self._ids, ids).clamp(max=max(0, self._ids.numel() - 1))
        inside = self._ids[pos] == ids if self._ids.numel() else torch.zeros_like(ids, dtype=torch.bool)
        if not bool(inside.all()):
            others = ids[~inside]
            raise OracleError(f"{self._where}: label asked the oracle about ids that were not passed to this label "
                              f"call ({others.unique().numel()} of them, e.g. id {int(others[0])}); it may ask "
                              f"only about the ids it is labeling")
        asked = self._asked.clone()
        asked[pos] = True
        count = int(asked.sum())
        if count > self._allowed:
            raise OracleError(f"{self._where}: label asked the oracle for {count} labels; its query_count "
                              f"allows {self._allowed} this round")
        answers = self._answer(ids)
        self._asked = asked
        self._answers[pos] = answers
        return oracle_labels(ids, answers)

    def answered(self) -> torch.Tensor:
        """The sorted ids this handle has answered for."""
        return self._ids[self._asked]

    def changed(self, ids: torch.Tensor, labels: torch.Tensor) -> int:
        """How many of ``labels``, given as this handle's answers for ``ids`` (ids it answered), are not
        its answers."""
        return int((labels != self._answers[torch.searchsorted(self._ids, ids)]).sum())
