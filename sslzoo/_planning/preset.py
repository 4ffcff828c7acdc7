"""Protocol presets: named, published protocols stored as TOML files in ``sslzoo/presets/``.

A preset mirrors ``sslzoo bench``'s arguments::

    title = "..."                      # one line
    description = "..."
    strategies = ["supervised", "pseudo_label"]
    dataset = "mnist"
    labels = 1000                      # or a list: one bench per label count
    labels_for = { supervised = [400, 4000] }  # optional: these strategies run at these counts instead
    seed = 0
    seeds = 1
    model = "cnn"                      # optional (default: the dataset's)
    split = "balanced"                 # balanced | first | random
    exclude_classes = []
    [options]                          # -o KEY=VALUE; NAME.key scopes a key to one strategy
    [dataset_options]                  # -d KEY=VALUE
    [reference]                        # the published numbers: citation, metric, values, best, notes
    [scaled]                           # overrides for a CPU-sized variant (``--scaled``); note = why
    [ci]                               # overrides on top of [scaled] for the test suite (``--ci``)

A preset can be a variant of another: ``extends = "NAME"`` reads the preset file ``NAME.toml``
beside it first; the variant's ``[options]`` and ``[dataset_options]`` are merged over the base's
(``merge_options``), every other key it gives replaces the base's, and what it leaves out (the
reference, [scaled], [ci], ...) is the base's. The results page shows a variant beside its base.

Explicit command-line flags override a preset's values (``merge_options`` for ``-o``).
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sslzoo._contract.registry import default_registry
from sslzoo._datasets.split import SPLITS
from sslzoo._engine.catalog import create_strategy
from sslzoo._planning.routing import merge_options, strategy_options
from sslzoo.errors import PresetError, UnknownNameError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SIZES = ("full", "scaled", "ci")
RUN_KEYS = {"strategies": list, "dataset": str, "labels": (int, list), "labels_for": dict, "seed": int, "seeds": int,
            "model": str, "split": str, "exclude_classes": list, "options": dict, "dataset_options": dict}
TOP_KEYS = {**RUN_KEYS, "title": str, "description": str, "reference": dict, "scaled": dict, "ci": dict,
            "extends": str}
OVERRIDE_KEYS = {**RUN_KEYS, "note": str}


@dataclass
class Preset:
    """One protocol: what ``sslzoo bench`` runs, the published reference and the scaled-down overrides."""

    name: str
    path: Path
    strategies: list[str]
    dataset: str
    labels: list[int]
    labels_for: dict[str, list[int]] = field(default_factory=dict)
    title: str = ""
    description: str = ""
    seed: int = 0
    seeds: int = 1
    model: str | None = None
    split: str = "balanced"
    exclude_classes: list[int] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    scaled: dict[str, Any] = field(default_factory=dict)
    ci: dict[str, Any] = field(default_factory=dict)
    extends: str | None = None  # the preset this one is a variant of
    size: str = "full"
    note: str = ""

    def variant(self, size: str) -> Preset:
        """This preset at ``size``: ``full`` (as published), ``scaled`` ([scaled] applied) or
        ``ci`` ([scaled] then [ci] applied)."""
        if size not in SIZES:
            raise PresetError(f"unknown preset size {size!r}; allowed: {', '.join(SIZES)}")
        out = copy.deepcopy(self)
        tables = {"full": [], "scaled": [self.scaled], "ci": [self.scaled, self.ci]}[size]
        notes = []
        for table in tables:
            for key, value in table.items():
                if key == "note":
                    notes.append(value)
                elif key == "options":
                    out.options = merge_options(out.options, value)
                elif key == "dataset_options":
                    out.dataset_options = {**out.dataset_options, **value}
                elif key == "labels":
                    out.labels = _counts(value)
                elif key == "labels_for":
                    out.labels_for = {name: _counts(counts) for name, counts in value.items()}
                else:
                    setattr(out, key, copy.deepcopy(value))
        # a [scaled] table of only a note (the protocol is already small) leaves the full protocol
        out.size = size if any(k != "note" for table in tables for k in table) else "full"
        out.note = " ".join(notes)
        return out

    def label_groups(self, strategies: list[str] | None = None) -> list[tuple[int, list[str]]]:
        """(label count, the strategies run at it) for ``strategies`` (default: the preset's): each
        strategy at its ``labels_for`` counts, or else at ``labels``."""
        groups: dict[int, list[str]] = {}
        for name in strategies or self.strategies:
            for n in self.labels_for.get(name, self.labels):
                groups.setdefault(n, []).append(name)
        return list(groups.items())

    def record_name(self, labels: int | None = None) -> str:
        """The ``preset`` a record of this variant carries: NAME, NAME:scaled or NAME:ci, then
        ``@LABELS`` when the protocol has several label counts."""
        name = self.name if self.size == "full" else f"{self.name}:{self.size}"
        return f"{name}@{labels}" if labels is not None and self.several_counts() else name

    def several_counts(self) -> bool:
        """Whether the protocol runs at more than one label count (read up to the second count: a
        protocol of thousands of counts names each part's records in linear time)."""
        counts = (n for name in self.strategies for n in self.labels_for.get(name, self.labels))
        first = next(counts, None)
        return any(n != first for n in counts)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "strategies": self.strategies, "dataset": self.dataset, "labels": self.labels,
                "labels_for": self.labels_for, "seed": self.seed,
                "seeds": self.seeds, "model": self.model, "split": self.split,
                "exclude_classes": self.exclude_classes, "options": self.options,
                "dataset_options": self.dataset_options, "reference": self.reference, "scaled": self.scaled,
                "ci": self.ci, "extends": self.extends, "path": str(self.path)}


def _counts(labels: int | list[int]) -> list[int]:
    return [labels] if isinstance(labels, int) else list(labels)


def _check_type(where: str, key: str, value: Any, kind: Any) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join({int: "an integer", str: "a string", list: "a list", dict: "a table"}[k] for k in kinds)
        raise PresetError(f"{where}: {key} must be {names}, got {value!r}")


def _check_run_keys(where: str, table: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise PresetError(f"{where}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
        _check_type(where, key, value, allowed[key])
    counts = [("labels", table["labels"])] if "labels" in table else []
    counts += [(f"labels_for.{name}", value) for name, value in table.get("labels_for", {}).items()]
    for key, labels in counts:
        each = labels if isinstance(labels, list) else [labels]
        if not each or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in each):
            raise PresetError(f"{where}: {key} must be a positive integer or a non-empty list of them, got {labels!r}")
    if "strategies" in table and (not table["strategies"] or not all(isinstance(s, str) for s in table["strategies"])):
        raise PresetError(f"{where}: strategies must be a non-empty list of names, got {table['strategies']!r}")
    if "split" in table and table["split"] not in SPLITS:
        raise PresetError(f"{where}: split must be one of {', '.join(SPLITS)}, got {table['split']!r}")
    if "seeds" in table and table["seeds"] < 1:
        raise PresetError(f"{where}: seeds must be at least 1, got {table['seeds']}")


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """One preset file's table, with the file it ``extends`` (recursively) merged under it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PresetError(f"{path}: cannot read the preset file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise PresetError(f"{path}: not valid TOML: not UTF-8 text") from None
    if "extends" not in data:
        return data
    _check_type(str(path), "extends", data["extends"], str)
    base_path = path.parent / f"{data['extends']}.toml"
    if base_path.resolve() in seen + (path.resolve(),):
        raise PresetError(f"{path}: extends {data['extends']!r}, which extends it back")
    if not base_path.is_file():
        raise PresetError(f"{path}: extends {data['extends']!r}, but there is no {base_path.name} beside it")
    out = {k: v for k, v in _read(base_path, seen + (path.resolve(),)).items() if k != "extends"}
    for key, value in data.items():
        if key == "options" and isinstance(value, dict):
            value = merge_options(out.get("options", {}), value)
        elif key == "dataset_options" and isinstance(value, dict):
            value = {**out.get("dataset_options", {}), **value}
        out[key] = value
    return out


def _check_reference(where: str, reference: Mapping[str, Any], strategies: list[str]) -> None:
    """``[reference.values]`` and ``[reference.best]``: per strategy of the preset, a number or a table
    of numbers (one per label count or error level)."""
    for table in ("values", "best"):
        for strategy, value in reference.get(table, {}).items():
            numbers = value.values() if isinstance(value, Mapping) else [value]
            if strategy not in strategies:
                raise PresetError(f"{where}: reference.{table} names {strategy!r}, not in strategies")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                raise PresetError(f"{where}: reference.{table}.{strategy} must be a number or a table of numbers, "
                                  f"got {value!r}")


def load_file(path: str | Path, name: str | None = None) -> Preset:
    """Read and check one preset file; errors name the file and the problem."""
    path = Path(path)
    data = _read(path)
    where = str(path)
    for key in ("strategies", "dataset", "labels"):
        if key not in data:
            raise PresetError(f"{where}: missing the required key {key!r}")
    _check_run_keys(where, data, TOP_KEYS)
    for size in ("scaled", "ci"):
        _check_run_keys(f"{where} [{size}]", data.get(size, {}), OVERRIDE_KEYS)
    strategies = data["strategies"]
    for size, table in (("", data), (" [scaled]", data.get("scaled", {})), (" [ci]", data.get("ci", {}))):
        unknown = sorted(set(table.get("labels_for", {})) - set(table.get("strategies", strategies)))
        if unknown:
            raise PresetError(f"{where}{size}: labels_for names {', '.join(unknown)}, not in strategies")
    _check_reference(where, data.get("reference", {}), strategies)
    values = {k: v for k, v in data.items() if k not in ("labels", "labels_for")}
    return Preset(name=name or path.stem, path=path, labels=_counts(data["labels"]),
                  labels_for={k: _counts(v) for k, v in data.get("labels_for", {}).items()}, **values)


def _builtin_dir() -> Path:
    return Path(str(resources.files("sslzoo") / "presets"))


def list_presets() -> list[str]:
    """The names of the presets shipped with sslzoo, sorted."""
    return sorted(p.stem for p in _builtin_dir().glob("*.toml"))


def get_preset(name: str) -> Preset:
    """The shipped preset ``name``; an unknown name lists the close matches."""
    path = _builtin_dir() / f"{name}.toml"
    if not path.is_file():
        raise UnknownNameError("preset", name, list_presets())
    return load_file(path)


def validate(preset: Preset, registry: Any = None) -> None:
    """Check every size of ``preset`` against the registry: strategies, dataset, model and every
    option and dataset option are known and allowed (nothing is run, no data is loaded)."""
    registry = registry or default_registry()
    for size in SIZES:
        p = preset.variant(size)
        try:
            cls = registry.datasets.get(p.dataset).obj
            machine = {f.name: "." for f in dataclasses.fields(cls.Options) if f.name == "data_dir"}
            dataset = cls(**{**machine, **p.dataset_options})  # where the data lives is the command's to say
            registry.models.get(p.model or dataset.default_model)
            per = strategy_options(p.strategies, p.options, registry)
            for name in p.strategies:
                create_strategy(name, registry, **per[name])
        except PresetError:
            raise
        except Exception as exc:  # an SslzooError in practice: say which file and size
            raise PresetError(f"{preset.path} ({size}): {exc}") from None
