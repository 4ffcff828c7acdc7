"""Option routing: which of a run's strategies takes each ``-o`` option, and how options given
later (flags) override earlier ones (a preset's, a file's)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from sslzoo._contract.registry import Registry
from sslzoo._engine.catalog import option_names
from sslzoo.errors import OptionError


def strategy_options(names: Sequence[str], given: Mapping[str, Any], registry: Registry) -> dict[str, dict]:
    """Split ``-o`` options among strategies: ``key=v`` goes to every strategy that has ``key``,
    ``name.key=v`` to strategy ``name`` only. A key no chosen strategy has is an error."""
    per: dict[str, dict[str, Any]] = {name: {} for name in names}
    fields = {name: option_names(name, registry) for name in names}
    for key, value in given.items():
        key = key.replace("-", "_")
        takers = [name for name in names if key in fields[name]]
        scope, dot, bare = key.rpartition(".")
        if not takers and dot and scope in per:
            per[scope][bare] = value  # make_options reports an unknown key with the valid ones
            continue
        if not takers:
            valid = sorted(set().union(*fields.values()))
            close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise OptionError(f"no strategy being run has option {key!r}{hint}; valid options: {', '.join(valid)}")
        for name in takers:
            per[name][key] = value
    return per


def merge_options(base: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` over ``base``: a plain ``key`` replaces ``key`` and every ``NAME.key`` of base;
    ``NAME.key`` replaces only itself."""
    out = dict(base)
    for key in given:
        key_ = key.replace("-", "_")
        if "." not in key_:
            for old in [k for k in out if k.replace("-", "_").rpartition(".")[2] == key_]:
                del out[old]
        else:
            out.pop(key, None)
    out.update(given)
    return out


def options_for(options: Mapping[str, Any], strategies: list[str]) -> dict[str, Any]:
    """The ``options`` (``-o`` keys, possibly ``NAME.key``) that at least one of ``strategies`` accepts."""
    fields = {name: option_names(name) for name in strategies}
    keep = {}
    for key, value in options.items():
        scope, dot, bare = key.rpartition(".")
        if any(key in f for f in fields.values()) or dot and scope in fields:
            keep[key] = value
    return keep
