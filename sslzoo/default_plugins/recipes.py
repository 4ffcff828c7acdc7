"""Built-in training recipes (:mod:`sslzoo.contract.recipe`), registered like third-party ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sslzoo.contract.hookspecs import hookimpl
from sslzoo.contract.recipe import BUILT_IN


@hookimpl
def register_recipes(register: Callable[[Any], None]) -> None:
    for recipe in BUILT_IN:
        register(recipe)
