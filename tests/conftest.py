"""Unit tests never load installed third-party plugins and always start from a fresh registry;
``one_thread`` pins torch to one thread."""

from __future__ import annotations

import os

import pytest
import torch

os.environ["SSLZOO_LOAD_PLUGINS"] = ""


@pytest.fixture(autouse=True)
def _isolated_registry():
    from sslzoo.testing import only_plugins

    with only_plugins(""):
        yield


@pytest.fixture
def one_thread():
    """One CPU thread: the same numbers on any core count, and no stall when cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(items):
    """The tests that start a Label Studio server run last: CI installs it in the background while the
    rest of the suite runs (see .ci/run and tests/label_studio_server.py)."""
    items.sort(key=lambda item: item.get_closest_marker("server") is not None)
