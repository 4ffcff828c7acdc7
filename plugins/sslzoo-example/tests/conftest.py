"""Run this plugin's tests against the installed plugin, with no other third-party plugin loaded."""

from __future__ import annotations

import importlib.metadata

import pytest

from sslzoo.registry import reset_default_registry

try:
    importlib.metadata.distribution("sslzoo-example")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("sslzoo-example is not installed, so sslzoo cannot find its entry point: run "
                "`pip install -e .` in its directory (from sslzoo's checkout: "
                "`pip install -e plugins/sslzoo-example`)", allow_module_level=True)


@pytest.fixture(autouse=True)
def only_this_plugin(monkeypatch: pytest.MonkeyPatch):
    """Each test sees the built-ins and this plugin, in a fresh registry."""
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "sslzoo-example")
    reset_default_registry()
    yield
    reset_default_registry()
