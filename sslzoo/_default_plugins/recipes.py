"""Built-in training recipes (:mod:`sslzoo._contract.recipe`), registered like third-party ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.recipe import BUILT_IN


@hookimpl
def register_recipes(register: Callable[[Any], None]) -> None:
    for recipe in BUILT_IN:
        register(recipe)
