"""Writes replace only what sslzoo means to: a file named through a symbolic link is written where the
link points (the link stays), a character device is written through, and a path that names a named
pipe, a socket or a directory is a one-line error before any work, with nothing replaced."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from sslzoo.cli import main
from sslzoo.errors import ResultsError
from sslzoo.journal import replace_file

BENCH = ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "6", "--epochs", "1", "-q"]


def test_json_out_through_a_link_writes_the_file_it_points_to_and_keeps_the_link(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "records.json"
    target.write_text("old\n")
    link = tmp_path / "records.json"
    link.symlink_to(target)
    result = CliRunner().invoke(main, [*BENCH, "--json-out", str(link)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())[0]["strategy"] == "supervised"


def test_json_out_to_a_named_pipe_is_a_one_line_error_before_any_run(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = CliRunner().invoke(main, [*BENCH, "--json-out", str(fifo)])
    assert result.exit_code != 0
    assert f"--json-out {fifo}: not a regular file (a named pipe)" in result.output
    assert "Traceback" not in result.output and "supervised" not in result.output
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_character_device_is_written_through_and_stays_a_device(tmp_path):
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the null device's numbers
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    replace_file(device, b"{}\n", ResultsError)
    assert stat.S_ISCHR(os.stat(device).st_mode)
    assert not list(tmp_path.glob(".null.tmp-*"))


def test_replace_file_refuses_what_is_no_regular_file_and_leaves_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ResultsError, match="pipe: not a regular file \\(a named pipe\\)"):
        replace_file(fifo, b"x", ResultsError)
    with pytest.raises(ResultsError, match="not a regular file \\(a directory\\)"):
        replace_file(tmp_path, b"x", ResultsError)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    regular = tmp_path / "file.json"
    regular.write_text("old")
    replace_file(regular, b"new", ResultsError)
    assert regular.read_text() == "new"
