"""The record class (:mod:`sslzoo._results.record`): typed fields, schema 2, old schemas migrated on
read, nothing lost on the way back to JSON, derived figures computed as the judge computed them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sslzoo._contract.recipe import upgrade_options
from sslzoo._ops.metrics import class_metrics, curve_metrics
from sslzoo._results.record import DERIVED_KEYS, SCHEMA_VERSION, Record
from sslzoo._results.store import RecordStore, load
from sslzoo.errors import ResultsError
from tests.tiny_records import moons_records

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted((ROOT / "benchmarks" / "results").rglob("*.jsonl"))


def _lines(path: Path) -> list[tuple[str, dict]]:
    return [(f"{path.relative_to(ROOT)}:{n}", json.loads(line))
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]


def test_every_committed_record_loads_and_gives_back_what_it_holds_migrated_to_the_schema():
    assert len(COMMITTED) > 20
    for path in COMMITTED:
        for where, raw in _lines(path):
            record = Record.from_json(raw)
            kept = {key: value for key, value in raw.items() if key not in DERIVED_KEYS and key != "schema"}
            kept["options"] = upgrade_options(kept["options"])
            assert record.to_json() == {"schema": SCHEMA_VERSION, **kept}, where
            assert list(record.to_json()) == ["schema", *kept], where  # the key order the pages depend on
            assert Record.from_json(record.to_json()) == record, where


def test_the_derived_figures_are_the_numbers_the_judge_stored_in_schema_1_records():
    compared = 0
    for path in COMMITTED:
        for where, raw in _lines(path):
            if "per_class" in raw:
                assert Record.from_json(raw).per_class() == raw["per_class"] == class_metrics(raw["confusion"]), where
                compared += 1
    assert compared > 50


def test_a_run_records_schema_2_without_derived_figures_which_the_record_computes():
    raw = moons_records("least_confidence", seeds=1)[0]
    assert raw["schema"] == SCHEMA_VERSION == 2 and next(iter(raw)) == "schema"
    assert not set(DERIVED_KEYS) & set(raw)
    record = Record.from_json(raw)
    assert record.to_json() == raw and list(record.to_json()) == list(raw)
    assert record.per_class() == class_metrics(raw["confusion"])
    assert record.al_metrics() == curve_metrics([e for e in raw["curve"] if e["epoch"] == e["epochs"]])
    assert record.strategy == "least_confidence" and record.dataset == "moons" and record.seed == 0
    assert isinstance(record.curve, list) and set(record.extra) == {"boundary"}  # moons is 2-D


def test_keys_the_record_class_does_not_type_are_kept_unchanged_in_their_place():
    raw = {"strategy": "s", "implementation": "scikit-learn", "dataset": "d", "seed": 1, "test_accuracy": 0.5,
           "boundary": {"grid": [[1, 2]]}, "preset": None}
    record = Record.from_json(raw)
    assert record.extra == {"implementation": "scikit-learn", "boundary": {"grid": [[1, 2]]}}
    assert record.to_json() == {"schema": 2, **raw} and list(record.to_json()) == ["schema", *raw]
    assert record.per_class() is None and record.al_metrics() is None  # nothing measured to derive them from


def test_a_schema_1_records_derived_figures_are_dropped_on_read_and_computed_again():
    raw = {key: value for key, value in moons_records("random", seeds=1)[0].items() if key != "schema"}
    stale = {**raw, "per_class": {"precision": [1.0, 1.0]}, "al_metrics": {"budget_auc": 0.1}}
    record = Record.from_json(stale)
    assert record.to_json() == {"schema": 2, **raw}
    assert record.per_class() == class_metrics(raw["confusion"]) and record.al_metrics()["budget_auc"] != 0.1


@pytest.mark.parametrize(("change", "message"), [
    ({"seed": None}, "seed must be an integer, got None"),
    ({"seed": "0"}, "seed must be an integer, got '0'"),
    ({"test_accuracy": True}, "test_accuracy must be a number in [0, 1], got True"),
    ({"test_accuracy": 1.5}, "test_accuracy must be a number in [0, 1], got 1.5"),
    ({"strategy": 3}, "strategy must be a string, got 3"),
    ({"options": ["a"]}, "options must be an object, got ['a']"),
    ({"labels": 2.5}, "labels must be an integer, got 2.5"),
    ({"curve": [1, 2]}, "curve must be a list of entries (objects)"),
    ({"confusion": [1, 2]}, "confusion must be a list of rows of counts"),
    ({"schema": 3}, "schema 3 is not one this sslzoo reads (1 to 2)"),
])
def test_a_wrong_type_is_an_error_naming_the_key(change, message):
    raw = {**moons_records("supervised", seeds=1)[0], **change}
    with pytest.raises(ResultsError) as caught:
        Record.from_json(raw)
    assert str(caught.value).startswith(message)


def test_a_missing_key_is_an_error_naming_it_and_the_store_names_file_and_line(tmp_path):
    raw = moons_records("supervised", seeds=1)[0]
    with pytest.raises(ResultsError, match="not an sslzoo record: missing seed"):
        Record.from_json({k: v for k, v in raw.items() if k != "seed"})
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(raw) + "\n" + json.dumps({**raw, "labels": "ten"}) + "\n")
    with pytest.raises(ResultsError, match=r"records.jsonl:2: labels must be an integer, got 'ten'"):
        load(path)


def test_the_store_writes_to_json_and_reads_through_from_json(tmp_path):
    raw = moons_records("supervised", seeds=1)[0]
    old = {**{k: v for k, v in raw.items() if k != "schema"}, "per_class": {"support": [1]}}
    store = RecordStore(tmp_path)
    store.append(Record.from_json(raw))
    store.append(old)
    lines = [json.loads(line) for line in store.path.read_text().splitlines()]
    assert lines == [raw, raw] and load(tmp_path).records == [raw, raw]
