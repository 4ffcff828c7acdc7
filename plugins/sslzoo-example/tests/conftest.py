"""Run this plugin's tests against the installed plugin, with no other third-party plugin loaded."""

from __future__ import annotations

import importlib.metadata

import pytest

from sslzoo.testing import only_plugins

try:
    importlib.metadata.distribution("sslzoo-example")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("sslzoo-example is not installed, so sslzoo cannot find its entry point: run "
                "`pip install -e .` in its directory (from sslzoo's checkout: "
                "`pip install -e plugins/sslzoo-example`)", allow_module_level=True)


@pytest.fixture(autouse=True)
def only_this_plugin():
    """Each test sees the built-ins and this plugin, in a fresh registry."""
    with only_plugins("sslzoo-example"):
        yield
