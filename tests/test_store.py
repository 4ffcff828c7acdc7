"""The record store: one record per line, crash-safe appends, resumable benches, clear errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslzoo._cli.main import main
from sslzoo._results.store import RECORDS_FILE, RecordStore, check_resumable, load, resume_key
from sslzoo.errors import ResultsError
from tests.tiny_records import moons_records, write_jsonl

BENCH = ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "10", "--epochs", "3", "--device", "cpu", "-q"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def lines_of(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output


# -- appending and reading --------------------------------------------------------------------------
def test_append_writes_one_line_per_record_with_one_write(tmp_path, monkeypatch):
    records = moons_records("supervised")
    store = RecordStore(tmp_path / "out")
    writes = []
    real_write = os.write

    def spy(fd, data):
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", spy)
    store.extend(records)
    assert len(writes) == len(records)  # the whole line in a single write, never pieces
    assert all(w.endswith(b"\n") and w.count(b"\n") == 1 for w in writes)
    assert lines_of(store.path) == records
    assert load(tmp_path / "out").records == records


def test_a_torn_last_line_is_reported_ignored_and_cut_before_the_next_append(tmp_path):
    first, second = moons_records("supervised")
    store = RecordStore(tmp_path)
    store.append(first)
    with open(store.path, "ab") as handle:  # what a crash inside the write could leave behind
        handle.write(json.dumps(second).encode()[:50])
    loaded = load(tmp_path)
    assert loaded.records == [first]
    assert len(loaded.warnings) == 1 and "incomplete last line" in loaded.warnings[0]
    assert f"{store.path}:2" in loaded.warnings[0]
    store.append(second)
    assert lines_of(store.path) == [first, second]
    assert store.repaired is not None and "removed an incomplete last line" in store.repaired


def test_a_broken_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path):
    first, second = moons_records("supervised")
    path = tmp_path / RECORDS_FILE
    path.write_text(json.dumps(first) + "\n{not json\n" + json.dumps(second) + "\n")
    with pytest.raises(ResultsError, match=rf"{RECORDS_FILE}:2: not valid JSON"):
        load(tmp_path)


@pytest.mark.parametrize(("content", "fragment"), [
    (b'{"hello": "world"}', "not an sslzoo record: missing strategy, dataset, seed, test_accuracy"),
    (b"[1, 2, 3]", "[0]: not an sslzoo record (a JSON int"),
    (b"[]", "holds an empty array, no records"),
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not a text file"),
    (b"{'strategy': 1}", "not valid JSON"),
])
def test_foreign_or_unreadable_json_names_the_file(tmp_path, content, fragment):
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(ResultsError) as info:
        load(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_missing_paths_and_empty_directories_are_clear_errors(tmp_path):
    with pytest.raises(ResultsError, match="no such file or directory"):
        load(tmp_path / "nope")
    with pytest.raises(ResultsError, match="empty results directory"):
        load(tmp_path)


def test_a_missing_preset_is_none_in_the_resume_key():
    fresh = moons_records("supervised")[0]
    assert fresh["preset"] is None  # records say they ran without a preset
    record = {k: v for k, v in fresh.items() if k != "preset"}  # a record from before presets existed
    assert resume_key(record) == resume_key({**record, "preset": None})
    assert resume_key(record) != resume_key({**record, "preset": "ci"})


# -- resuming ---------------------------------------------------------------------------------------
def test_resume_refuses_another_version_dataset_setup_or_options(tmp_path):
    record = moons_records("supervised")[0]
    plan = {k: record.get(k) for k in ("strategy", "dataset", "seed", "options", "dataset_options", "labels",
                                          "model", "split")}
    version = record["versions"]["sslzoo"]

    def stored(**changes):
        loaded = load(write_jsonl(tmp_path / "r.jsonl", [{**record, **changes}]))
        return check_resumable(loaded, [plan], version)

    assert stored() == [record]
    with pytest.raises(ResultsError, match="came from sslzoo 0.0.1, this is sslzoo"):
        stored(versions={**record["versions"], "sslzoo": "0.0.1"})
    with pytest.raises(ResultsError, match="on dataset 'mnist'"):
        stored(dataset="mnist")
    with pytest.raises(ResultsError, match="preset 'ci'"):
        stored(preset="ci")
    with pytest.raises(ResultsError, match="labels 20 \\(this run: 10\\)"):
        stored(labels=20)
    with pytest.raises(ResultsError, match="other options: epochs=7"):
        stored(options={**record["options"], "epochs": 7})


def test_bench_out_appends_and_resume_runs_only_what_is_missing(tmp_path):
    out = tmp_path / "out"
    result = invoke(*BENCH, "--seeds", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    first = lines_of(out / RECORDS_FILE)
    assert [r["seed"] for r in first] == [0, 1]

    result = invoke(*BENCH, "--seeds", "3", "--out", str(out), "--resume")
    assert result.exit_code == 0, result.output
    after = lines_of(out / RECORDS_FILE)
    assert after[:2] == first and [r["seed"] for r in after] == [0, 1, 2]
    assert "supervised  moons    3" in result.output  # the table covers the resumed records too

    result = invoke(*BENCH, "--seeds", "3", "--out", str(out), "--resume")  # nothing left to do
    assert result.exit_code == 0 and len(lines_of(out / RECORDS_FILE)) == 3


def test_bench_out_without_resume_does_not_mix_into_an_existing_store(tmp_path):
    assert invoke(*BENCH, "--out", str(tmp_path)).exit_code == 0
    one_line_error(invoke(*BENCH, "--out", str(tmp_path)), "already holds 1 records", "--resume")
    one_line_error(invoke(*BENCH, "--out", str(tmp_path), "--resume", "-o", "lr=0.5"),
                   f"{tmp_path / RECORDS_FILE}:1", "other options: lr=0.01", "this run: lr=0.5")
    path = tmp_path / RECORDS_FILE
    record = json.loads(path.read_text())
    record["versions"]["sslzoo"] = "0.0.1"
    path.write_text(json.dumps(record) + "\n")
    one_line_error(invoke(*BENCH, "--out", str(tmp_path), "--resume"), "came from sslzoo 0.0.1")
    assert len(path.read_text().splitlines()) == 1  # nothing was run, nothing was appended


def test_resume_needs_out():
    result = invoke(*BENCH, "--resume")
    assert result.exit_code == 2 and "--resume needs --out" in result.output


def test_api_run_with_out_and_resume_returns_every_record(tmp_path):
    import sslzoo

    done = sslzoo.run("supervised", "moons", labels=10, seeds=1, options={"epochs": 3}, device="cpu", out=tmp_path)
    both = sslzoo.run("supervised", "moons", labels=10, seeds=2, options={"epochs": 3}, device="cpu", out=tmp_path,
                      resume=True)
    assert both[0] == done[0] and [r["seed"] for r in both] == [0, 1]
    assert lines_of(tmp_path / RECORDS_FILE) == both


def test_sigkill_mid_bench_keeps_finished_records_and_resume_completes_the_rest(tmp_path):
    out, seeds = tmp_path / "out", 5
    path = out / RECORDS_FILE
    args = ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "10", "--epochs", "30",
            "--seeds", str(seeds), "--device", "cpu", "--out", str(out), "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "sslzoo", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "SSLZOO_LOAD_PLUGINS": ""})
    try:
        deadline = time.monotonic() + 60
        while not (path.exists() and path.stat().st_size) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        assert path.exists(), "no record appeared within 60 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    survived = lines_of(path)  # every line complete and valid JSON, the file ends with a newline
    assert 1 <= len(survived) < seeds, "the bench finished before it was killed; make the runs longer"
    assert [r["seed"] for r in survived] == list(range(len(survived)))

    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    final = lines_of(path)
    assert final[:len(survived)] == survived
    assert sorted(r["seed"] for r in final) == list(range(seeds))  # all there, none twice
