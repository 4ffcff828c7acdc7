"""A real Label Studio server for the interchange test, in a virtual environment of its own.

Label Studio is no dependency of sslzoo: it is installed (pinned) into its own environment under
``$SSLZOO_LABEL_STUDIO_HOME`` (default ``~/.cache/sslzoo/label-studio-<version>``), once per
machine, with ``uv`` when it can be had (several times faster than pip), and its database is
migrated once into a template data directory, so that each test server starts from a copy in
seconds. CI starts the installation in the background before the test suite
(``python3 tests/label_studio_server.py install``); the test waits for it (a file lock) and skips,
with the installer's reason, only when it failed. This file uses the standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

VERSION = "1.23.2"
PACKAGES = (f"label-studio=={VERSION}", "label-studio-sdk==2.1.2")
USER, PASSWORD, TOKEN = "sslzoo@example.com", "sslzoo-test-password", "sslzoo0test0token0000000000000000"
START_TIMEOUT = 300.0
"""Seconds a server may take to answer /health (its first start migrates a fresh database)."""
INSTALL_BUDGET = 720.0
"""Seconds the whole installation may take (a few tens of seconds with a reachable registry): past it,
the step under way is stopped and the test skips with the reason, so a slow registry costs CI at
most this much."""
UV_BUDGET = 360.0
"""Seconds ``uv`` may take before pip, with what is left of the budget, tries instead."""
QUIET = {"LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
         "CONVERTER_DOWNLOAD_RESOURCES": "false", "DEBUG": "false"}
"""Environment of the server: no calls home (version check, analytics, error reports)."""


def home() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sslzoo" / f"label-studio-{VERSION}"
    return Path(os.environ.get("SSLZOO_LABEL_STUDIO_HOME") or default)


def python(where: Path) -> Path:
    return where / "venv" / "bin" / "python"


def _run(command: list[str], log: Path, timeout: float) -> None:
    """Run ``command`` with its output, start time and duration in ``log``; at most ``timeout`` seconds."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(command)}  [{time.strftime('%H:%M:%S')}, at most {timeout:.0f} s]\n")
        out.flush()
        started = time.monotonic()
        try:
            subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=max(timeout, 1.0))
        finally:
            out.write(f"  ({time.monotonic() - started:.0f} s)\n")


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no installation log"
    return " | ".join(text[-lines:])


def install(where: Path | None = None) -> str | None:
    """Make sure Label Studio is installed and its template database migrated; None when it is, or
    why it could not be. Waits while another process installs."""
    where = where or home()
    where.mkdir(parents=True, exist_ok=True)
    ready, log = where / "ready", where / "install.log"
    with open(where / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return None
        log.write_text("")
        deadline = time.monotonic() + INSTALL_BUDGET

        def left() -> float:
            return deadline - time.monotonic()

        try:
            shutil.rmtree(where / "venv", ignore_errors=True)
            shutil.rmtree(where / "template", ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(where / "venv")], log, left())
            pip = [str(python(where)), "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "60"]
            try:
                _run([*pip, "uv"], log, min(left(), 120.0))
                _run([str(where / "venv" / "bin" / "uv"), "pip", "install", "-q", "--python", str(python(where)),
                      *PACKAGES], log, min(left(), UV_BUDGET))
            except subprocess.SubprocessError:
                _run([*pip, *PACKAGES], log, left())
            with server(where, where / "template", min(left(), START_TIMEOUT)):
                pass  # the first start migrates the database: later servers start from a copy
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            return f"Label Studio could not be installed in {where} ({exc}): {_tail(log)}"
        ready.write_text(VERSION + "\n")
        return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def server(where: Path, data: Path, timeout: float = START_TIMEOUT) -> Iterator[str]:
    """A Label Studio server on a free local port with its data in ``data`` (the user and API token
    of this module); its URL while the block runs. It must answer within ``timeout`` seconds."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    binary = where / "venv" / "bin" / "label-studio"
    env = {**os.environ, **QUIET, "LABEL_STUDIO_BASE_DATA_DIR": str(data)}
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "server.log", "a") as log:
        process = subprocess.Popen(
            [str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data), "--username", USER, "--password", PASSWORD, "--user-token", TOKEN,
             "--enable-legacy-api-token"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(url):
            if process.poll() is not None:
                raise RuntimeError(f"the Label Studio server ended with exit code {process.returncode}: "
                                   f"{_tail(data / 'server.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Label Studio server did not answer in {timeout:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@contextlib.contextmanager
def fresh_server(where: Path | None = None) -> Iterator[str]:
    """A server on a fresh copy of the template database."""
    where = where or home()
    with tempfile.TemporaryDirectory(prefix="sslzoo-label-studio-") as scratch:
        data = Path(scratch) / "data"
        shutil.copytree(where / "template", data, ignore=shutil.ignore_patterns("server.log"))
        with server(where, data) as url:
            yield url


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python3 tests/label_studio_server.py install")
    started = time.monotonic()
    reason = install()
    print(reason or f"Label Studio {VERSION} ready in {home()} ({time.monotonic() - started:.0f} s)")
    with contextlib.suppress(OSError):  # the steps and their durations, for CI's log
        print("\n".join(line for line in (home() / "install.log").read_text(errors="replace").splitlines()
                        if line.startswith(("$ ", "  ("))))
