"""Unit tests never load installed third-party plugins and always start from a fresh registry."""

from __future__ import annotations

import os

import pytest

os.environ["SSLZOO_LOAD_PLUGINS"] = ""


@pytest.fixture(autouse=True)
def _isolated_registry():
    from sslzoo.testing import only_plugins

    with only_plugins(""):
        yield
