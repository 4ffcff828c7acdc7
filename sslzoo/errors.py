"""The exception hierarchy: the library raises these, only the CLI turns them into exit codes."""

from __future__ import annotations

import contextlib
import difflib
import os
import pickle
import signal
import traceback
from collections.abc import Iterable
from typing import NoReturn


class SslzooError(Exception):
    """Base class of every error sslzoo raises on purpose."""


class UnknownNameError(SslzooError, KeyError):
    """A strategy, dataset, model or plugin name that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind, self.name = kind, name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(self.known) or 'none'}"
        super().__init__(f"unknown {kind} {name!r}; {hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class AmbiguousNameError(UnknownNameError):
    """A bare strategy, dataset or model name that several plugins register: it names no one thing.
    Each stays reachable by its qualified name ``DIST:NAME``, which ``known`` lists."""

    def __init__(self, kind: str, name: str, qualified: Iterable[str]) -> None:
        self.kind, self.name = kind, name
        self.known = list(qualified)
        choices = ", ".join(self.known[:-1]) + f" or {self.known[-1]}"
        SslzooError.__init__(self, f"{kind} {name!r} is ambiguous: {len(self.known)} plugins register it; "
                                   f"name one of them as {choices}")


class OptionError(SslzooError, ValueError):
    """An option key or value that is not allowed."""


class DataError(SslzooError):
    """A data file that cannot be read, or a split that cannot be made."""


class ChecksumError(DataError):
    """A data file whose checksum does not match the expected one."""


class PluginError(SslzooError):
    """A plugin that fails to import, registers something invalid, or breaks a hook's contract."""


class SslzooWarning(UserWarning):
    """Something sslzoo did otherwise than asked, or could not do without stopping: the command line
    shows it as one ``warning:`` line on stderr."""


class DataWarning(SslzooWarning):
    """Data read otherwise than it lies on disk, or a cache that could not be kept: a symbolic link
    not followed, a tensor cache entry that could not be written."""


class WorkerWarning(SslzooWarning):
    """A run whose worker process died (killed, out of memory) and that runs again."""


class PluginWarning(SslzooWarning):
    """A plugin setting that does nothing, such as an ``SSLZOO_LOAD_PLUGINS`` name no plugin has, or a
    loaded plugin that registers nothing and observes nothing."""


class TrackingWarning(SslzooWarning):
    """A tracker (MLflow, TensorBoard) that failed during a grid: it logs no more of the grid's runs,
    and the grid's own records are kept."""


class OracleError(PluginError):
    """A strategy asked the oracle where it may not: outside a round-phase ``label`` call, for ids not
    passed to that call, or for more labels than the round's ``query_count``."""


class TrainingError(SslzooError):
    """A run that cannot go on, such as a loss that is no longer finite."""


class TrackingError(SslzooError):
    """A tracker that cannot start, before any run: its extra is not installed, or its server does
    not answer."""


class ResultsError(SslzooError):
    """A results file or directory that cannot be read or does not fit the request."""


class PresetError(OptionError):
    """A protocol preset (TOML) file that cannot be read or does not validate."""


class SessionError(SslzooError):
    """A labeling session that cannot go on as asked: a directory that is not a session (or is held by
    another writer), or labels to import that do not fit it (unknown items or classes, a file already
    imported, a label that contradicts one in the ledger)."""


class WorkerError(SslzooError):
    """Runs of a bench that a worker process or a Ray task could not finish: the worker died (killed,
    out of memory) on every try; the runs that finished are kept, ``--resume`` runs the rest."""


class LearnerDied(WorkerError):
    """A run's learner process ended before its run did (killed, out of memory); ``code`` is its exit
    code, negative for the signal that killed it."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type, tuple[str, int | None]]:
        return type(self), (str(self), self.code)

    def end_like_it(self) -> NoReturn:
        """End this process as the learner ended (its signal, or its exit code), so that whoever
        watches this process (a bench's driver, Ray) sees the run's process die and retries it."""
        code = self.code if self.code is not None else 1
        if code < 0:
            with contextlib.suppress(OSError, ValueError):  # SIGKILL's cannot be set, nor need be
                signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        os._exit(code if code > 0 else 1)


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process (a worker, a learner), as the cause of
    the one raised here."""

    def __str__(self) -> str:
        return self.args[0]


def portable(exc: BaseException) -> tuple[BaseException, str]:
    """``exc`` (or, when it does not survive pickling, a WorkerError with its text) and its traceback,
    to send to another process (inside its ``except`` block)."""
    text = traceback.format_exc()
    try:
        return pickle.loads(pickle.dumps(exc)), text
    except Exception:
        return WorkerError(f"{type(exc).__name__}: {exc}"), text
