"""A labeling session's control group: random queries beside the strategy's, labeled by the same
people, so that a random-query learner can be replayed on the labels they gave and the strategy's
label saving measured on their own data.

The labeling-workflow guide judges active learning against a control group: labels drawn at random
instead of chosen by the strategy, the model trained the same way (:mod:`sslzoo._planning.control_group`, which
``sslzoo bench --control`` runs on data whose labels are all known). A session knows only the labels
people give, so its control group is asked for too, a fraction F of each round's queries
(``sslzoo label start --control F``):

* **The start is shared**: the labels held when the first round with a model was asked (the data's
  own labels, anything imported before) and every item a cold-start round asked about (a random
  choice already). Both learners' first training is the same.
* **Draws**: each later round, besides the strategy's K queries, the control group draws
  ceil(F·K) items at random from its own pool: every item that is not held out, not in the start and
  not drawn before, whatever the strategy did. A draw that has a label already (the strategy asked
  for it) reuses it; a draw the strategy queries in the same round is asked once; every other draw
  is a **control item**, asked in the round's sheets beside the queries, mixed in at random places so
  that whoever labels cannot tell them apart. The group costs at most ceil(F·K) more labels a round.
* **Control labels** (the labels of control items) are marked as such in the ledger; the strategy's
  model never trains on them and the strategy never asks about their items, so its curve is its own.
* **The control learner** (:func:`sslzoo._planning.control_group.control_of`: ``random``, or ``random+B`` for
  ``A+B``, with the strategy's protocol) trains on the labels of the start and of its draws and on
  nothing else, at every training of the session (:mod:`sslzoo.labeling.replay`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from sslzoo._contract.registry import Registry
from sslzoo._contract.strategy import Strategy
from sslzoo._planning.control_group import control_of, protocol_of
from sslzoo.errors import OptionError, SessionError
from sslzoo.labeling.label_log import LabelBatch

T = TypeVar("T")
CONTROL_FILE = "control.jsonl"
"""The control group's replay: one line per training of the session it replayed."""
CONTROL_MODEL_FILE = "control-model.pt"
"""The control learner's last model, with its line of the replay."""


def parse_fraction(value: float | str) -> float:
    """``--control``'s value: a fraction of each round's queries, more than 0 and at most 1."""
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = math.nan
    if isinstance(value, bool) or not 0 < fraction <= 1:
        raise OptionError(f"--control must be a fraction of each round's queries, more than 0 and at most 1 "
                          f"(1: as many random control items as queries), got {value!r}")
    return fraction


@dataclass(frozen=True)
class ControlGroup:
    """A session's control group: the ``fraction`` of each round's queries it draws, the ``strategy``
    that replays the session's with random queries and that strategy's ``options`` (the protocol)."""

    fraction: float
    strategy: str
    options: dict[str, Any]

    @classmethod
    def of(cls, fraction: float | str, name: str, strategy: Strategy, registry: Registry,
           leave_out: Collection[str] = ()) -> ControlGroup:
        """The control group of the session strategy ``name`` (built as ``strategy``), drawing ``fraction``
        of each round's queries; options in ``leave_out`` (set by each round) are not part of its protocol."""
        share = parse_fraction(fraction)
        control = control_of(name, strategy.family)
        if control is None:
            raise SessionError(f"strategy {name!r} has no control group: " + (
                "its queries are random already" if name == "random" else "it does not query labels"))
        options = {k: v for k, v in protocol_of(strategy, control, registry).items()
                   if k.rpartition(".")[2] not in leave_out}
        return cls(share, control, options)

    @classmethod
    def from_json(cls, entry: Mapping[str, Any] | None) -> ControlGroup | None:
        return None if entry is None else cls(float(entry["fraction"]), str(entry["strategy"]), dict(entry["options"]))

    def to_json(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "strategy": self.strategy, "options": self.options}

    def size(self, k: int) -> int:
        """The items drawn in a round of ``k`` queries: ceil(fraction · k)."""
        return math.ceil(round(self.fraction * k, 9))


def draw_seed(seed: int, round_: int) -> int:
    """The seed of round ``round_``'s control draws, an odd number (apart from the strategy's selection
    seed); the next number seeds where the round's sheets put its control items."""
    return (seed * 100_003 + round_) * 2 + 1


def draw(pool: Sequence[int], count: int, seed: int) -> list[int]:
    """``count`` items of ``pool`` drawn uniformly at random (all of them if it holds fewer)."""
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(pool), generator=generator)[:count].tolist()
    return [pool[i] for i in picks]


def mix(queries: Sequence[T], controls: Sequence[T], seed: int) -> list[T]:
    """The queries in their order with the control items put in at random places (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    total = len(queries) + len(controls)
    places = set(torch.randperm(total, generator=generator)[:len(controls)].tolist())
    asked, others = iter(queries), iter(controls)
    return [next(others) if place in places else next(asked) for place in range(total)]


@dataclass(frozen=True)
class Holdings:
    """Who holds which items at one point of a session (its history and ledger up to there): the
    shared ``start``, the control group's ``drawn`` items and its ``control_items`` (asked for it
    alone: never as the strategy's queries)."""

    start: frozenset[int]
    drawn: frozenset[int]
    control_items: frozenset[int]

    def taken(self) -> frozenset[int]:
        """The items out of the control group's pool: its start and its draws."""
        return self.start | self.drawn

    def control_labels(self, labels: Mapping[int, T]) -> dict[int, T]:
        """``labels`` (item → label) restricted to the control learner's: the start's and the draws'."""
        taken = self.taken()
        return {i: label for i, label in labels.items() if i in taken}


def holdings(history: Sequence[Mapping[str, Any]], batches: Sequence[LabelBatch]) -> Holdings:
    """The holdings after ``history`` (a session's history entries, in order) with the ledger's ``batches``."""
    queries = [e for e in history if e.get("event") == "query"]
    first = next((q for q in queries if "control" in q), None)
    before = batches[:first["batches"]] if first is not None else batches
    start = {x.id for batch in before for x in batch.labels}
    start |= {item["id"] for q in queries if q["training"] is None for item in q["items"]}
    drawn = {i for q in queries for i in q.get("control", ())}
    queried = {item["id"] for q in queries for item in q["items"] if not item.get("control")}
    control_items = {item["id"] for q in queries for item in q["items"] if item.get("control")} - queried
    return Holdings(frozenset(start), frozenset(drawn), frozenset(control_items))
