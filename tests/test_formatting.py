"""The formatting every sslzoo table shares: groups in first-seen order, mean ± std over seeds, and
plain-text and markdown tables."""

from __future__ import annotations

import importlib

import pytest

from sslzoo._results.formatting import by_keys, group_by, markdown_table, mean_std, percent, plus_minus, text_table


def test_groups_keep_first_seen_order_and_missing_keys_group_as_none():
    records = [{"s": "b", "seed": 0}, {"s": "a", "seed": 0}, {"s": "b", "seed": 1}, {"seed": 2}]
    groups = group_by(records, by_keys("s"))
    assert list(groups) == [("b",), ("a",), (None,)]
    assert [r["seed"] for r in groups[("b",)]] == [0, 1]


def test_mean_and_std_over_seeds_with_one_seed_having_no_spread():
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert percent([0.9, 0.92]) == "91.00 ± 1.41 %"
    assert plus_minus(145.0, 12.4, digits=0) == "145 ± 12"


def test_one_seed_shows_its_value_without_a_spread():
    assert percent([0.981]) == "98.10 %"
    assert plus_minus(98.1, 0.0, count=1) == "98.10"
    assert percent([0.9, 0.9]) == "90.00 ± 0.00 %"


def test_a_plain_table_pads_columns_and_leaves_no_trailing_spaces():
    lines = text_table(["name", "acc"], [["supervised", "95.96 %"], ["bald", "97 %"]])
    assert lines == ["name        acc", "----------  -------", "supervised  95.96 %", "bald        97 %"]
    assert text_table(["a", "b"], [], rule=False) == ["a  b"]


def test_a_markdown_table_aligns_numbers_right_and_escapes_pipes():
    assert markdown_table(["strategy", "dataset", "acc"], [["a|b", "moons", 0.5]], left=2) == [
        "| strategy | dataset | acc |", "|---|---|---:|", "| a\\|b | moons | 0.5 |"]


def test_the_results_page_names_are_reachable_from_the_package():
    from sslzoo._reports import accuracy_rows, write_results
    from sslzoo._reports.page import accuracy_rows as page_rows

    assert accuracy_rows is page_rows and callable(write_results)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        importlib.import_module("sslzoo._reports").nothing_here  # noqa: B018
