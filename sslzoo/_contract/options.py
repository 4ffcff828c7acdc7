"""Typed, strict options: ``-o KEY=VALUE`` strings coerced to a dataclass's field types.

Allowed values come from the field's annotation (``Literal[...]`` lists choices) and from its
metadata (``field(metadata={"min": 0, "max": 1})`` bounds a number).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union

from sslzoo.errors import OptionError

T = TypeVar("T")

INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what a tensor (and so the engine) can hold
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """``["lr=0.1", "epochs=5"]`` → ``{"lr": "0.1", "epochs": "5"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"option {pair!r} is not KEY=VALUE")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "none"
    if origin is tuple:
        return f"a comma list of {_describe(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "text"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any) -> Any:
    """Return ``value`` as type ``tp`` or raise ValueError."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        for choice in allowed:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ValueError
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value)
            except ValueError:
                continue
        raise ValueError
    if origin is tuple:
        (item,) = typing.get_args(tp)[:1]
        parts = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_coerce(item, p.strip() if isinstance(p, str) else p) for p in parts if p != "")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError
    if tp in (int, float):
        accepted = (int, str) if tp is int else (int, float, str)
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise ValueError
        return tp(value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    return value


def make_options(cls: type[T], given: Mapping[str, Any], owner: str) -> T:
    """Build the options dataclass ``cls`` from ``given``, strictly.

    ``owner`` names what the options belong to in error messages (e.g. ``strategy 'margin'``).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, raw in given.items():
        key = key.replace("-", "_")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise OptionError(f"{owner} has no option {key!r}{hint}; valid options: "
                              f"{', '.join(sorted(fields)) or 'none'}")
        tp = hints[key]
        try:
            value = _coerce(tp, raw)
        except (ValueError, TypeError):
            raise OptionError(f"option {key}={raw!r} of {owner} is not allowed: "
                              f"expected {_describe(tp)}") from None
        meta = fields[key].metadata
        numbers = [v for v in (value if isinstance(value, tuple) else (value,))
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            raise OptionError(f"option {key}={raw!r} of {owner} is not allowed: it must be a finite number")
        if not isinstance(value, tuple) and numbers:
            low, high = meta.get("min"), meta.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                raise OptionError(f"option {key}={raw!r} of {owner} is not allowed: it must be {_bounds(meta)}")
        if any(isinstance(v, int) and not INT_MIN <= v <= INT_MAX for v in numbers):
            raise OptionError(f"option {key}={raw!r} of {owner} is not allowed: it must fit in 64 bits "
                              f"(between {INT_MIN} and {INT_MAX})")
        values[key] = value
    return cls(**values)


def options_dict(options: Any) -> dict[str, Any]:
    """The options as a JSON-friendly dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(options).items()}


def _bounds(meta: Mapping[str, Any]) -> str:
    """A field's ``min``/``max`` metadata in the words of the errors: ``"at least 1"``, ``"between 0
    and 1"``, ``"at most 5"``, or ``""`` when it has neither."""
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f"between {low} and {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return ""


def describe_options(cls: type) -> list[dict[str, Any]]:
    """Each option's name, default, allowed values (type, choices and bounds: ``"an integer, at least
    1"``, ``"one of 'sgd', 'adam'"``) and help, for listings and docs."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append({"name": f.name, "default": list(default) if isinstance(default, tuple) else default,
                    "allowed": ", ".join(filter(None, (_describe(hints[f.name]), _bounds(f.metadata)))),
                    "help": f.metadata.get("help", "")})
    return out


class Configured:
    """Base of the named, listed objects built from ``KEY=VALUE`` options (stopping criteria,
    pretraining methods): subclasses set ``name``, ``paper``, ``summary``, ``kind`` (how errors name
    them) and their ``Options`` dataclass, which is built strictly: a bad option is an
    :class:`~sslzoo.errors.OptionError` naming the kind and the name."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    Options: ClassVar[type]

    def __init__(self, **options: Any) -> None:
        self.options: Any = make_options(self.Options, options, f"{self.kind} {self.name!r}")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, paper, summary and options, for listings."""
        return {"name": cls.name, "paper": cls.paper, "summary": cls.summary, "options": describe_options(cls.Options)}
