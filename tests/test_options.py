"""Strategy options: typed, strict, with errors that list what is allowed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from sslzoo._contract.options import make_options, parse_assignments
from sslzoo.errors import OptionError


@dataclass
class Demo:
    rate: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    rounds: int = 3
    mode: Literal["fast", "slow"] = "fast"
    flag: bool = False
    limit: int | None = None
    classes: tuple[int, ...] = ()


def test_strings_are_coerced_to_the_field_types():
    opts = make_options(Demo, {"rate": "0.25", "rounds": "7", "mode": "slow", "flag": "yes",
                               "limit": "none", "classes": "1,7"}, "demo")
    assert opts == Demo(rate=0.25, rounds=7, mode="slow", flag=True, limit=None, classes=(1, 7))


def test_unknown_key_lists_close_match_and_valid_keys():
    with pytest.raises(OptionError, match=r"no option 'rouns' \(did you mean rounds\?\); valid options: "
                                          r"classes, flag, limit, mode, rate, rounds"):
        make_options(Demo, {"rouns": "2"}, "strategy 'demo'")


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("rounds", "2.5", "expected an integer"),
    ("mode", "medium", "expected one of 'fast', 'slow'"),
    ("flag", "maybe", "expected true or false"),
    ("rate", "1.5", "must be between 0.0 and 1.0"),
])
def test_bad_value_names_option_value_and_what_is_allowed(key, value, expected):
    with pytest.raises(OptionError) as info:
        make_options(Demo, {key: value}, "demo")
    assert f"{key}={value!r}" in str(info.value)
    assert expected in str(info.value)


def test_assignments_must_be_key_equals_value():
    assert parse_assignments(["lr=0.1", "batch-size=8"]) == {"lr": "0.1", "batch_size": "8"}
    with pytest.raises(OptionError, match="not KEY=VALUE"):
        parse_assignments(["lr"])
