"""Crash-safe files: a journal of JSON lines, a file replaced whole, and a directory held by one writer.

* :class:`Journal` appends each entry as one line with a single ``os.write`` on a file opened with
  ``O_APPEND``, then ``fsync``-s it: a process killed at any moment leaves every finished entry
  readable and at most one torn last line (a crash inside the write itself), which
  :meth:`Journal.read` reports and skips and the next :meth:`Journal.append` cuts off first.
* :func:`replace_file` writes a file beside its target and renames it over the target: a reader sees
  the old version or the new one, never a mix.
* :func:`hold` locks a directory for one writer with an advisory ``flock`` that the operating system
  drops when the holder ends, however it ends: a killed writer never leaves a stale lock (POSIX).

The result store (``sslzoo bench --out``) and labeling sessions are both built on these.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslzoo.errors import SslzooError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, a second writer is not refused
    fcntl = None  # type: ignore[assignment]


def fsync_directory(directory: Path) -> None:
    """Make a new or renamed entry of ``directory`` durable (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_text(path: Path, error: type[SslzooError]) -> str:
    """The UTF-8 text of ``path``; ``error`` naming the file when it cannot be read or is not text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (not UTF-8 at byte {exc.start})") from None


@dataclass
class Lines:
    """What :meth:`Journal.read` found: each entry with the ``path:line`` it came from, and warnings."""

    entries: list[Any] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_lines(text: str, path: Path, error: type[SslzooError], into: Lines) -> None:
    """The JSON entries of ``text``, one per non-blank line; a torn last line (no newline, not JSON) is
    a warning in ``into.warnings``, any other line that is not JSON an ``error`` naming ``path:line``."""
    lines = text.split("\n")
    torn_tail = not text.endswith("\n") and text != ""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            if torn_tail and number == len(lines):
                into.warnings.append(f"{where}: ignored an incomplete last line ({len(line.encode())} bytes), "
                                     f"left by a run that was killed while writing it")
                continue
            raise error(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        into.entries.append(entry)
        into.origins.append(where)


class Journal:
    """A JSON Lines file that only grows, one whole entry at a time; errors are ``error`` (a
    :class:`~sslzoo.errors.SslzooError` subclass) naming the file."""

    def __init__(self, path: str | os.PathLike, error: type[SslzooError]) -> None:
        self.path = Path(path)
        self.error = error
        self.repaired: str | None = None  # what was cut off the end of the file before appending

    def read(self) -> Lines:
        """The entries so far (none when the file does not exist yet)."""
        lines = Lines()
        if self.path.exists():
            parse_lines(read_text(self.path, self.error), self.path, self.error, lines)
        return lines

    def _cut_torn_tail(self) -> None:
        """Drop an incomplete last line (a crash inside a write) so the next line starts cleanly."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.path, "rb+") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            handle.seek(0)
            data = handle.read()
            keep = data.rfind(b"\n") + 1
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        self.repaired = f"{self.path}: removed an incomplete last line ({size - keep} bytes) left by a killed run"

    def check_writable(self) -> None:
        """An ``error`` now where :meth:`append` could not write (a read-only file or file system), so
        that no work is done whose entries would be lost; a file this made to find out is removed."""
        new = not self.path.exists()
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        except OSError as exc:
            raise self.error(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        if new:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def append(self, entry: Any) -> None:
        """Append ``entry`` as one line: one ``os.write`` on an ``O_APPEND`` descriptor, then fsync."""
        line = (json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
        new = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not new:
                self._cut_torn_tail()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self.error(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        try:
            written = os.write(fd, line)
            if written != len(line):  # only on a full disk; leave a torn line that readers ignore
                raise self.error(f"{self.path}: short write ({written} of {len(line)} bytes); is the disk full?")
            os.fsync(fd)
        except OSError as exc:
            raise self.error(f"{self.path}: cannot write: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if new:
            fsync_directory(self.path.parent)


def replace_file(path: str | os.PathLike, data: bytes, error: type[SslzooError]) -> None:
    """Write ``data`` to what ``path`` names, whole: a regular file (or a new one) through a file beside
    it, fsync-ed, then renamed over it; through a symbolic link, the file it points to (the link
    stays); a character device (``/dev/null``) written through as it is. Anything else (a named pipe,
    a socket, a directory) is an ``error`` naming it: nothing at the path is replaced."""
    target = Path(os.path.realpath(path))
    refused = unwritable(target)
    if refused:
        raise error(f"{path}: {refused}")
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISCHR(os.stat(target).st_mode):
            try:
                with open(target, "wb") as device:
                    device.write(data)
            except OSError as exc:
                raise error(f"{path}: cannot write: {exc.strerror or exc}") from None
            return
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise error(f"{target}: cannot write: {exc.strerror or exc}") from None
    fsync_directory(target.parent)


def unwritable(path: str | os.PathLike) -> str | None:
    """Why :func:`replace_file` would refuse ``path`` (followed through links): it names something that is
    neither a regular file nor a character device; None when it may be written (or does not exist)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode):
        return None
    return f"not a regular file ({node_kind(mode)}); give the path of a file to write"


def node_kind(mode: int) -> str:
    """What a file's ``st_mode`` says it is, in words: "a directory", "a named pipe", ..."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "something else")


def make_directory(path: str | os.PathLike, error: type[SslzooError], purpose: str) -> Path:
    """``path`` as a directory, made with its parents when missing (a link to a directory is used as
    it is); an ``error`` naming what is there when it is no directory, or why it cannot be made.
    ``purpose`` says what the directory is for ("--out takes the directory for ...")."""
    try:
        mode: int | None = os.stat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISDIR(mode):
        raise error(f"{path}: not a directory ({node_kind(mode)}); {purpose}")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"{path}: cannot create the directory: {exc.strerror or exc}; {purpose}") from None
    return Path(path)


@contextlib.contextmanager
def hold(directory: str | os.PathLike, busy: Callable[[], SslzooError], error: type[SslzooError],
         purpose: str = "") -> Iterator[None]:
    """Hold ``directory`` (made if missing) for this process: while held, a second :func:`hold` of it,
    from any process, raises ``busy()`` at once. The lock is an advisory ``flock`` on the directory
    itself, released when the block ends or the process does. A directory that cannot be made or
    opened is an ``error`` saying it cannot be used (``purpose``: for what, e.g. "as --out")."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY) if fcntl is not None else -1
    except OSError as exc:
        raise error(f"{path}: cannot use{' ' + purpose if purpose else ''}: {exc.strerror or exc}") from None
    if fd < 0:  # pragma: no cover - no advisory locks here
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy() from None
        yield
    finally:
        os.close(fd)  # releases the lock
