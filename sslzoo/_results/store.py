"""The record store: result records as JSON Lines, crash-safe and resumable.

A store is a directory holding ``records.jsonl``, one record per line. Each record is appended
with a single ``os.write`` of the whole line on a file opened with ``O_APPEND``, then
``fsync``-ed, so a run killed at any moment leaves every finished record readable and at most
one torn last line (a crash inside the write itself), which readers report and ignore and the
next writer cuts off before appending.

Records are also read from anything ``sslzoo`` writes: a ``.jsonl`` file, a ``.json`` file holding
one record or an array of them (``sslzoo bench --json-out PATH``), or a directory of such files.
Each is read through :meth:`Record.from_json <sslzoo._results.record.Record.from_json>` (an older
schema migrates) and kept as its ``to_json()``; the store writes ``to_json()`` too.
Everything that cannot be read is a :class:`~sslzoo.errors.ResultsError` naming the file (and line)
and what is wrong.

The resume key of a record is what makes two runs the same run:
``(strategy, dataset, preset, seed, options)``, with the rest of the setup (dataset options,
initial labels, model, split) and the sslzoo version checked to match before any record is reused.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslzoo._contract.options import options_dict
from sslzoo._contract.registry import Registry, default_registry
from sslzoo._contract.strategy import Strategy
from sslzoo._engine.run import RunSpec, resolve
from sslzoo._files import Journal, Lines, hold, parse_lines, read_text
from sslzoo._results.record import Record
from sslzoo._version import __version__
from sslzoo.errors import ResultsError

RECORDS_FILE = "records.jsonl"
#: The setup shared by every record of one comparison (besides strategy, seed and options).
SETUP_KEYS = ("dataset_options", "labels", "model", "split")

SESSION_FILE = "session.json"
"""What marks a directory as a labeling session (:mod:`sslzoo.labeling.session`), not a store."""

def canonical(value: Any) -> str:
    """A stable text form of a JSON-like value (dict key order and tuples vs lists don't matter)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def preset_of(record: Mapping[str, Any]) -> Any:
    """The record's preset; records from before presets existed have None."""
    return record.get("preset")


def version_of(record: Mapping[str, Any]) -> str | None:
    versions = record.get("versions")
    return versions.get("sslzoo") if isinstance(versions, Mapping) else None


def resume_key(record: Mapping[str, Any]) -> tuple[str, str, str, int, str]:
    """``(strategy, dataset, preset, seed, options)``: records with equal keys are the same run."""
    return (str(record["strategy"]), str(record["dataset"]), canonical(preset_of(record)), int(record["seed"]),
            canonical(record.get("options", {})))


def setup_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the setup that is not in the resume key but must match for records to mix."""
    return {key: record.get(key) for key in SETUP_KEYS}


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class Loaded:
    """Records read from one or more paths, with where each came from and what was skipped."""

    records: list[dict[str, Any]] = field(default_factory=list)  # each one as Record.to_json() gives it
    origins: list[str] = field(default_factory=list)  # "path:line" of each record
    warnings: list[str] = field(default_factory=list)  # e.g. a torn last line left by a crash
    files: list[Path] = field(default_factory=list)


def _read_record(obj: Any, where: str) -> dict[str, Any]:
    """The record ``obj`` read at ``where`` (:meth:`Record.from_json`, migrated), as a JSON object."""
    try:
        return Record.from_json(obj).to_json()
    except ResultsError as exc:
        raise ResultsError(f"{where}: {exc}") from None


def read_jsonl(path: Path, into: Loaded) -> None:
    """Records of a JSON Lines file; a torn last line (no newline, not JSON) is a warning, not an error."""
    lines = Lines()
    parse_lines(read_text(path, ResultsError), path, ResultsError, lines)
    into.warnings.extend(lines.warnings)
    for obj, where in zip(lines.entries, lines.origins):
        into.records.append(_read_record(obj, where))
        into.origins.append(where)
    into.files.append(path)


def read_json(path: Path, into: Loaded) -> None:
    """Records of a JSON file holding one record or an array of records."""
    text = read_text(path, ResultsError)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    items = obj if isinstance(obj, list) else [obj]
    if isinstance(obj, list) and not obj:
        raise ResultsError(f"{path}: holds an empty array, no records")
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(obj, list) else str(path)
        into.records.append(_read_record(item, where))
        into.origins.append(where)
    into.files.append(path)


def _files_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".jsonl", ".json"))


def load(paths: str | os.PathLike | Iterable[str | os.PathLike], *, allow_empty: bool = False) -> Loaded:
    """Read records from files and directories (``*.jsonl`` and ``*.json`` directly inside them)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    loaded = Loaded()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ResultsError(f"{path}: no such file or directory")
        if path.is_dir():
            if (path / SESSION_FILE).is_file():
                raise ResultsError(f"{path}: a labeling session, not a directory of records; `sslzoo label report "
                                   f"{path}` replays its control group and writes its report")
            files = _files_in(path)
            if not files and not allow_empty:
                raise ResultsError(f"{path}: empty results directory: no {RECORDS_FILE} or other *.jsonl/*.json "
                                   f"record files in it")
        else:
            files = [path]
        for file in files:
            before = len(loaded.records)
            (read_json if file.suffix == ".json" else read_jsonl)(file, loaded)
            if len(loaded.records) == before and not allow_empty:
                raise ResultsError(f"{file}: holds no records")
    return loaded


def as_records(source: Any, name: str = "records") -> Loaded:
    """Records given directly (a record or a sequence of them) or as paths to read."""
    if isinstance(source, (str, os.PathLike)):
        return load(source)
    if isinstance(source, Mapping):
        source = [source]
    if not isinstance(source, Sequence):
        raise ResultsError(f"{name}: expected records or paths, got {type(source).__name__}")
    if source and all(isinstance(s, (str, os.PathLike)) for s in source):
        return load(source)
    loaded = Loaded()
    for i, item in enumerate(source):
        loaded.records.append(_read_record(item, f"{name}[{i}]"))
        loaded.origins.append(f"{name}[{i}]")
    if not loaded.records:
        raise ResultsError(f"{name}: no records")
    return loaded


# -- writing ---------------------------------------------------------------------------------------
class RecordStore:
    """``DIR/records.jsonl``: append records one line at a time, read them back, plan a resume."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / RECORDS_FILE
        if self.directory.exists() and not self.directory.is_dir():
            raise ResultsError(f"{self.directory}: --out must be a directory, this is a file")
        self.journal = Journal(self.path, ResultsError)
        self.reused: list[dict[str, Any]] = []  # stored records a resumed bench did not run again
        self.notes: list[str] = []  # warnings found while reading the store

    @property
    def repaired(self) -> str | None:
        """What was cut off the end of the file before appending (a torn line left by a killed run)."""
        return self.journal.repaired

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the directory for this process: a second writer (``sslzoo bench --out`` on the same
        directory) is refused at once instead of duplicating records. The lock is an advisory
        ``flock`` on the directory itself, so the operating system releases it when the holder
        ends, however it ends: a killed run never leaves a stale lock (POSIX systems)."""
        def busy() -> ResultsError:
            return ResultsError(f"{self.directory}: another sslzoo bench is writing to this directory; "
                                f"wait until it ends (then --resume) or use another --out")

        return hold(self.directory, busy, ResultsError, purpose="as --out")

    def load(self) -> Loaded:
        """The stored records (none when the file does not exist yet)."""
        loaded = Loaded()
        if self.path.exists():
            read_jsonl(self.path, loaded)
        return loaded

    def append(self, record: Record | Mapping[str, Any]) -> None:
        """Append ``record`` (a JSON object is read as a :class:`Record` first) as one line of its
        :meth:`~Record.to_json`: one ``os.write`` on an ``O_APPEND`` descriptor, then fsync."""
        self.journal.append((record if isinstance(record, Record) else Record.from_json(record)).to_json())

    def extend(self, records: Iterable[Record | Mapping[str, Any]]) -> None:
        for record in records:
            self.append(record)

    def plan(self, built: list[tuple[Any, Any]], *, resume: bool, registry: Any = None) -> list[tuple[Any, Any]]:
        """The (spec, strategy) pairs still to run; sets :attr:`reused` and :attr:`notes`.

        Without ``resume`` a store that already holds records is an error (no silent mixing or
        duplicates); a store whose file cannot be written (a read-only directory) is one before any run.
        With it, stored records whose resume key matches a planned run are reused,
        after :func:`check_resumable` made sure they come from this version and setup.
        """
        stored = self.load()
        self.notes = list(stored.warnings)
        self.reused = []
        if stored.records and not resume:
            raise ResultsError(f"{self.path}: already holds {len(stored.records)} records; resume them "
                               f"(--resume) or write to another --out directory")
        planned = [planned_record(spec, strategy, registry) for spec, strategy in built]
        reusable = {resume_key(r): r for r in check_resumable(stored, planned, __version__)}
        todo = []
        for pair, plan in zip(built, planned):
            key = resume_key(plan)
            if key in reusable:
                self.reused.append(reusable.pop(key))
            else:
                todo.append(pair)
        if todo:  # before the first run: a record that cannot be stored would be lost
            self.journal.check_writable()
        return todo


# -- resuming --------------------------------------------------------------------------------------
def _describe_options(options: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    """The options that differ between two option dicts, as ``key=value`` of the first."""
    keys = sorted(set(options) | set(other))
    diff = [f"{k}={options.get(k, '(unset)')!r}" for k in keys if options.get(k) != other.get(k)]
    return ", ".join(diff) or "(none)"


def check_resumable(stored: Loaded, planned: Sequence[Mapping[str, Any]], version: str) -> list[dict[str, Any]]:
    """The stored records that the planned runs can reuse, after checking they can be mixed.

    ``planned`` holds one record-shaped dict per planned run (strategy, dataset, preset, seed,
    resolved options and the setup keys). A stored record from another sslzoo version, another
    dataset/preset/setup, or the same strategy with other options is an error: resuming would
    mix results that are not comparable.
    """
    if not planned:
        return []
    first = planned[0]
    by_strategy: dict[str, Mapping[str, Any]] = {}
    for plan in planned:
        by_strategy.setdefault(plan["strategy"], plan)
    keys = {resume_key(p) for p in planned}
    reuse: list[dict[str, Any]] = []
    seen: dict[tuple, str] = {}
    for record, where in zip(stored.records, stored.origins):
        got = version_of(record)
        if got != version:
            raise ResultsError(f"{where}: this record came from sslzoo {got or '(unknown)'}, this is sslzoo "
                               f"{version}; resume into a new --out directory instead of mixing versions")
        if (record["dataset"], preset_of(record)) != (first["dataset"], preset_of(first)):
            raise ResultsError(f"{where}: this record is on dataset {record['dataset']!r} (preset "
                               f"{preset_of(record)!r}), this run is on {first['dataset']!r} (preset "
                               f"{preset_of(first)!r}); use another --out directory")
        setup, want = setup_of(record), setup_of(first)
        if canonical(setup) != canonical(want):
            diff = [f"{k} {setup[k]!r} (this run: {want[k]!r})" for k in SETUP_KEYS
                    if canonical(setup[k]) != canonical(want[k])]
            raise ResultsError(f"{where}: this record was run with other settings: {'; '.join(diff)}; "
                               f"use another --out directory or the same settings")
        same = by_strategy.get(record["strategy"])
        if same is not None and canonical(record.get("options", {})) != canonical(same.get("options", {})):
            raise ResultsError(f"{where}: strategy {record['strategy']!r} was run with other options: "
                               f"{_describe_options(record.get('options', {}), same.get('options', {}))} "
                               f"(this run: {_describe_options(same.get('options', {}), record.get('options', {}))}); "
                               f"use another --out directory or the same options")
        key = resume_key(record)
        if key in seen:
            raise ResultsError(f"{where}: duplicate of the record at {seen[key]} (strategy {record['strategy']!r}, "
                               f"seed {record['seed']})")
        seen[key] = where
        if key in keys:
            reuse.append(record)
    return reuse


def planned_record(spec: RunSpec, strategy: Strategy, registry: Registry | None = None) -> dict[str, Any]:
    """What the record of a planned run will say about its identity and setup (without running it),
    its options resolved as the run resolves them (:func:`sslzoo._engine.run.resolve`)."""
    resolved = resolve(spec, strategy, registry or default_registry())
    record = {
        "strategy": strategy.name,
        "dataset": spec.dataset,
        "preset": spec.preset,
        "seed": spec.seed,
        "options": resolved.options,
        "dataset_options": options_dict(resolved.dataset.options),
        "labels": spec.labels,
        "model": resolved.model_name,
        "split": {"how": spec.split, "exclude_classes": list(spec.exclude_classes)},
    }
    return json.loads(json.dumps(record, default=str))  # the JSON round trip a stored record went through
