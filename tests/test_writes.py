"""Writes replace only what sslzoo means to: a file named through a symbolic link is written where the
link points (the link stays), a character device is written through, and a path that names a named
pipe, a socket or a directory is a one-line error before any work, with nothing replaced. A tensor
cache that cannot be written costs only time: a warning, no temporary file left."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from sslzoo._cli.main import main
from sslzoo._datasets import tensor_cache
from sslzoo._files import replace_file
from sslzoo.errors import DataWarning, ResultsError
from sslzoo.labeling import Session

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


# -- every command that writes a file: --json-out, report --out, results --out -----------------------
def _records(tmp_path):
    import sslzoo

    path = tmp_path / "records.jsonl"
    records = sslzoo.run("supervised", "moons", labels=6, device="cpu", options={"epochs": 1})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _command(which, path, tmp_path):
    """The command line writing to ``path``, and whether ``path`` names a directory (report --out)."""
    if which == "--json-out":
        return [*BENCH, "--json-out", str(path)], False
    if which == "report --out":
        return ["report", str(_records(tmp_path)), "--out", str(path)], True
    (tmp_path / "results").mkdir()
    return ["results", "--results", str(tmp_path / "results"), "--out", str(path)], False


def _make(kind, path, tmp_path, directory):
    """A symbolic link (to a file or directory elsewhere), a named pipe or a character device at ``path``;
    returns what a link points to."""
    if kind == "link":
        target = tmp_path / "elsewhere" / ("report" if directory else "written")
        target.parent.mkdir()
        if directory:
            target.mkdir()
        path.symlink_to(target)
        return target
    if kind == "fifo":
        os.mkfifo(path)
        return None
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the null device's numbers
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return None


@pytest.mark.parametrize("kind", ["link", "fifo", "device"])
@pytest.mark.parametrize("which", ["--json-out", "report --out", "results --out"])
def test_a_write_to_a_link_a_pipe_or_a_device_goes_through_or_is_refused_and_never_replaces_it(which, kind,
                                                                                               tmp_path):
    path = tmp_path / "out"
    args, directory = _command(which, path, tmp_path)
    target = _make(kind, path, tmp_path, directory)
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output
    if result.exit_code:
        assert f"{path}: not a " in result.output and len(result.output.strip().splitlines()) == 1, result.output
    if kind == "link":
        assert result.exit_code == 0, result.output
        assert path.is_symlink() and os.readlink(path) == str(target)
        assert (target / "report.md" if directory else target).is_file()
    else:
        assert (stat.S_ISFIFO if kind == "fifo" else stat.S_ISCHR)(os.lstat(path).st_mode)
    assert not list(tmp_path.rglob(".*.tmp-*"))


def test_report_refuses_a_report_md_that_is_a_named_pipe_before_drawing_any_figure(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    os.mkfifo(out / "report.md")
    result = CliRunner().invoke(main, ["report", str(_records(tmp_path)), "--out", str(out)])
    assert result.exit_code != 0
    assert f"{out / 'report.md'}: not a regular file (a named pipe)" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.md"]


# -- the tensor cache and labeling sessions ----------------------------------------------------------
def _full_disk(entry, path):
    """torch.save on a full disk: part of the file written, then an error."""
    with open(path, "wb") as handle:
        handle.write(b"PK\x03\x04 part of an entry")
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 896 vs 790")


def test_a_tensor_cache_that_cannot_be_written_warns_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tensor_cache.torch, "save", _full_disk)
    source = tmp_path / "data.csv"
    source.write_text("x,label\n1,a\n")
    with pytest.warns(DataWarning, match="cannot write: the write failed \\(is the disk full\\?\\); going on without"):
        data = tensor_cache.cached("csv", {"n": 1}, [source], lambda: {"x": [1.0]})
    assert data == {"x": [1.0]}
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_tensor_cache_entry_named_by_a_link_is_written_where_it_points(tmp_path, monkeypatch):
    cache, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    cache.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(cache))
    source = tmp_path / "data.csv"
    source.write_text("x,label\n1,a\n")
    tensor_cache.cached("csv", {"n": 1}, [source], lambda: {"x": [1.0]})
    (entry,) = cache.iterdir()
    entry.rename(elsewhere / entry.name)
    entry.symlink_to(elsewhere / entry.name)
    source.write_text("x,label\n2,a\n")  # a changed file: the entry is rebuilt
    assert tensor_cache.cached("csv", {"n": 1}, [source], lambda: {"x": [2.0]}) == {"x": [2.0]}
    assert entry.is_symlink() and sorted(p.name for p in elsewhere.iterdir()) == [entry.name]
    assert tensor_cache.cached("csv", {"n": 1}, [source], lambda: {"x": [3.0]}) == {"x": [2.0]}  # read back


def test_a_session_started_in_a_link_to_an_empty_directory_lives_where_it_points(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "session"
    link.symlink_to(tmp_path / "elsewhere")
    Session.start(link, "moons", "random", options={"epochs": "1"}, dataset_options={"n_train": 20, "n_test": 10},
                  device="cpu")
    assert link.is_symlink() and (tmp_path / "elsewhere" / "session.json").is_file()
