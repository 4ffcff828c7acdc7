"""The result record: what one run (strategy × dataset × seed) measured, typed and versioned.

On disk a record is a JSON object (a line of ``records.jsonl``). :meth:`Record.from_json` reads
one: it checks the keys every record has, migrates an older schema and keeps every other key as it
was; :meth:`Record.to_json` gives the object back, its keys in the order they were read.

Schemas (:data:`SCHEMA_VERSION`, the record's ``schema`` key):

1. (no ``schema`` key) the engine also wrote figures derived from the others: ``per_class``
   (from ``confusion``) and ``al_metrics`` (from ``curve``). They are dropped on read.
2. the record holds what the run measured; the figures derived from it are the methods
   :meth:`Record.per_class` and :meth:`Record.al_metrics`, computed where they are reported.

Keys added since, optional, need no new schema: a record without one reads as before (its field is
None), and an older sslzoo keeps one it does not know as it was. ``machine`` (the CPU model, the
instruction-set level torch dispatched to, torch's thread count, the GPU: :mod:`sslzoo._engine.machine`)
is one; ``stopped`` (the stopping criterion that ended the run: its ``criterion``, ``options``,
``round``, ``labels`` and ``why``) and ``watched`` (the same for each criterion the run watched, with
``round``, ``labels`` and ``why`` None for one that never fired) are others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sslzoo._contract.recipe import upgrade_options
from sslzoo._contract.record import SCHEMA_VERSION
from sslzoo._ops.metrics import class_metrics, curve_metrics
from sslzoo.errors import ResultsError

__all__ = ["DERIVED_KEYS", "REQUIRED_KEYS", "SCHEMA_VERSION", "Record"]

#: Keys every record must have to be compared, reported or resumed.
REQUIRED_KEYS = ("strategy", "dataset", "seed", "test_accuracy")
#: Figures schema 1 stored beside what they are computed from; dropped on read.
DERIVED_KEYS = ("per_class", "al_metrics")

_NUMBER = (int, float)


@dataclass
class Record:
    """One run's record. The typed fields are the keys the engine writes into every record; a key a
    record does not have is None (and stays absent in :meth:`to_json`), every other key is in
    :attr:`extra`, unchanged."""

    strategy: str
    dataset: str
    seed: int
    test_accuracy: float
    family: str | None = None
    options: dict[str, Any] | None = None
    preset: str | None = None
    dataset_options: dict[str, Any] | None = None
    model: str | None = None
    split: dict[str, Any] | None = None
    labels: int | None = None
    oracle_labels: int | None = None
    termination: str | None = None
    stopped: dict[str, Any] | None = None
    watched: list[dict[str, Any]] | None = None
    classes: list[Any] | None = None
    confusion: list[list[int]] | None = None
    curve: list[dict[str, Any]] | None = None
    pseudo: dict[str, Any] | None = None
    wall_seconds: float | None = None
    device: str | None = None
    machine: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """The record's keys in the order :meth:`to_json` writes them (empty: the fields' order, then
    :attr:`extra`'s, leaving out the fields that are None)."""

    # -- reading and writing ------------------------------------------------------------------------
    @classmethod
    def from_json(cls, mapping: Any) -> Record:
        """The record a JSON object holds, migrated to :data:`SCHEMA_VERSION`; a
        :class:`~sslzoo.errors.ResultsError` naming the key that is missing or of a wrong type."""
        if not isinstance(mapping, Mapping):
            raise ResultsError(f"not an sslzoo record (a JSON {type(mapping).__name__}, expected an object "
                               f"with {', '.join(REQUIRED_KEYS)})")
        missing = [k for k in REQUIRED_KEYS if k not in mapping]
        if missing:
            keys = ", ".join(list(mapping)[:6]) or "none"
            raise ResultsError(f"not an sslzoo record: missing {', '.join(missing)} (has keys: {keys})")
        schema = mapping.get("schema", 1)
        _check("schema", schema, int, "an integer")
        if not 1 <= schema <= SCHEMA_VERSION:
            raise ResultsError(f"schema {schema} is not one this sslzoo reads (1 to {SCHEMA_VERSION}); "
                               f"a newer sslzoo wrote it")
        data = {k: v for k, v in mapping.items() if k != "schema" and not (schema == 1 and k in DERIVED_KEYS)}
        for key, (kind, what) in _TYPES.items():
            if data.get(key) is not None or key in REQUIRED_KEYS:
                _check(key, data.get(key), kind, what)
        _check_items("confusion", data.get("confusion"), list, "a list of rows of counts")
        _check_items("curve", data.get("curve"), dict, "a list of entries (objects)")
        _check_items("watched", data.get("watched"), dict, "a list of entries (objects)")
        if not 0.0 <= data["test_accuracy"] <= 1.0:
            raise ResultsError(f"test_accuracy must be a number in [0, 1], got {data['test_accuracy']!r}")
        if isinstance(data.get("options"), dict):
            data["options"] = upgrade_options(data["options"])  # a record made before recipes names its recipe
        typed = {k: v for k, v in data.items() if k in _TYPES}
        extra = {k: v for k, v in data.items() if k not in _TYPES}
        return cls(**typed, extra=extra, keys=tuple(data))

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object: ``schema`` first, then its keys in the order they were read."""
        keys = self.keys or (*(k for k in _TYPES if getattr(self, k) is not None), *self.extra)
        return {"schema": self.schema, **{k: self.extra[k] if k in self.extra else getattr(self, k) for k in keys}}

    # -- derived figures ----------------------------------------------------------------------------
    def per_class(self) -> dict[str, list[Any]] | None:
        """Precision, recall and support of each class at the end of the run
        (:func:`sslzoo._ops.metrics.class_metrics` of :attr:`confusion`); None for a record without one."""
        return class_metrics(self.confusion) if self.confusion is not None else None

    def al_metrics(self) -> dict[str, Any] | None:
        """``labels_to_accuracy`` per accuracy target and ``budget_auc``
        (:func:`sslzoo._ops.metrics.curve_metrics`, which reads the curve's round ends); None for a
        record without a curve."""
        return curve_metrics(self.curve) if self.curve else None


def _check(key: str, value: Any, kind: type | tuple[type, ...], what: str) -> None:
    """A :class:`~sslzoo.errors.ResultsError` naming ``key`` unless ``value`` is a ``kind`` (a bool is no number)."""
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ResultsError(f"{key} must be {what}, got {value!r}")


def _check_items(key: str, value: Any, kind: type, what: str) -> None:
    """The same for each item of the list ``value`` (None: the record has no ``key``)."""
    if value is not None and not all(isinstance(item, kind) for item in value):
        raise ResultsError(f"{key} must be {what}")


_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "strategy": (str, "a string"), "family": (str, "a string"), "options": (dict, "an object"),
    "dataset": (str, "a string"), "preset": (str, "a string"), "dataset_options": (dict, "an object"),
    "model": (str, "a string"), "seed": (int, "an integer"), "split": (dict, "an object"),
    "labels": (int, "an integer"), "oracle_labels": (int, "an integer"),
    "test_accuracy": (_NUMBER, "a number in [0, 1]"), "termination": (str, "a string"),
    "stopped": (dict, "an object"), "watched": (list, "a list of entries (objects)"),
    "classes": (list, "a list"), "confusion": (list, "a list of rows of counts"),
    "curve": (list, "a list of entries (objects)"),
    "pseudo": (dict, "an object"), "wall_seconds": (_NUMBER, "a number"), "device": (str, "a string"),
    "machine": (dict, "an object"), "versions": (dict, "an object"),
}
"""The type of each typed field, in the order the engine writes them."""
