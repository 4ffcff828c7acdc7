"""Unit tests never load installed third-party plugins and always start from a fresh registry."""

from __future__ import annotations

import os

import pytest

os.environ["SSLZOO_LOAD_PLUGINS"] = ""


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch):
    from sslzoo.registry import reset_default_registry

    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "")
    reset_default_registry()
    yield
    reset_default_registry()
