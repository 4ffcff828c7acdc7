"""Records name the machine that made them (CPU model, the instruction-set level torch dispatched to,
torch's thread count, the GPU), older records without it still read, and ``sslzoo compare`` warns when
the two sides ran on different hardware."""

from __future__ import annotations

import copy

import pytest
import torch
from click.testing import CliRunner

from sslzoo._cli.main import main
from sslzoo._engine.machine import cpu_model, machine
from sslzoo._reports.comparison import compare
from sslzoo._results.record import SCHEMA_VERSION, Record
from sslzoo.errors import ResultsError
from tests.tiny_records import moons_records, write_jsonl


def test_a_record_names_the_cpu_its_instruction_set_and_the_thread_count():
    [record] = moons_records("supervised")[:1]
    found = record["machine"]
    assert found["cpu"] == cpu_model() and found["cpu"]
    assert found["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(found["threads"], int) and found["threads"] >= 1
    assert "gpu" not in found  # a CPU run names no GPU
    assert list(record).index("machine") == list(record).index("device") + 1


def test_the_machine_of_a_cpu_run_is_what_torch_says_here():
    assert machine(torch.device("cpu")) == {"cpu": cpu_model(), "threads": torch.get_num_threads(),
                                            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def test_a_record_with_a_machine_reads_and_writes_unchanged_without_a_new_schema():
    record = moons_records("supervised")[0]
    assert record["schema"] == SCHEMA_VERSION
    read = Record.from_json(record)
    assert read.machine == record["machine"] and "machine" not in read.extra
    assert read.to_json() == record


def test_a_record_from_before_machines_reads_without_one():
    record = moons_records("supervised")[0]
    del record["machine"]
    read = Record.from_json(record)
    assert read.machine is None and "machine" not in read.to_json()


def test_a_machine_that_is_no_object_is_refused_by_name():
    record = moons_records("supervised")[0]
    record["machine"] = "AMD EPYC"
    with pytest.raises(ResultsError, match="machine must be an object, got 'AMD EPYC'"):
        Record.from_json(record)


def _on(records, **machine):
    out = copy.deepcopy(records)
    for record in out:
        record["machine"] = {**record["machine"], **machine}
    return out


def test_compare_warns_once_when_the_two_sides_ran_on_different_cpus(tmp_path):
    records = moons_records("supervised")
    base = write_jsonl(tmp_path / "base.jsonl", _on(records, cpu="Intel Xeon Gold 6248", cpu_capability="AVX512"))
    new = write_jsonl(tmp_path / "new.jsonl", _on(records, cpu="AMD EPYC 7763", cpu_capability="AVX2"))
    result = CliRunner().invoke(main, ["compare", str(base), str(new)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert lines == ["warning: the two sides ran on different hardware (BASELINE: Intel Xeon Gold 6248, AVX512; "
                     "NEW: AMD EPYC 7763, AVX2): the same runs on another CPU give accuracies a few tenths of a "
                     "point apart"]


def test_compare_warns_when_only_the_gpu_differs_and_not_for_another_thread_count():
    records = moons_records("supervised")
    assert not compare(records, _on(records, threads=7)).warnings
    [warning] = compare(_on(records, gpu="NVIDIA H100 80GB HBM3"), _on(records, gpu="NVIDIA A100-SXM4-40GB")).warnings
    assert "NVIDIA H100 80GB HBM3" in warning and "NVIDIA A100-SXM4-40GB" in warning


def test_compare_says_nothing_of_hardware_when_a_side_does_not_name_it():
    records = moons_records("supervised")
    old = copy.deepcopy(records)
    for record in old:
        del record["machine"]
    assert not compare(old, _on(records, cpu="another CPU")).warnings
