"""The installable example plugin, plugins/sslzoo-example, driven through the command line.

CI installs it (``pip install -e ".[test]" -e plugins/sslzoo-example``). Unit tests run with
``SSLZOO_LOAD_PLUGINS=""`` (tests/conftest.py), so each test here says which plugins to load.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslzoo._cli.main import main

try:
    EXAMPLE = importlib.metadata.distribution("sslzoo-example")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("the example plugin is not installed: pip install -e plugins/sslzoo-example "
                "(the README's test command does)", allow_module_level=True)

TINY_BENCH = ["--dataset", "moons", "--labels", "10", "-d", "n_train=200", "-d", "n_test=200", "--epochs", "2",
              "--query-size", "5", "--budget", "20", "--quiet"]


def sslzoo_cli(*args: str, load: str | None) -> subprocess.CompletedProcess:
    """The installed ``sslzoo`` console script, with ``SSLZOO_LOAD_PLUGINS`` unset (None) or set."""
    env = {k: v for k, v in os.environ.items() if k != "SSLZOO_LOAD_PLUGINS"}
    if load is not None:
        env["SSLZOO_LOAD_PLUGINS"] = load
    script = Path(sys.executable).with_name("sslzoo")
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=300)


def test_plugins_json_lists_the_example_with_its_version_and_hooks():
    done = sslzoo_cli("plugins", "--json", load=None)
    assert done.returncode == 0, done.stderr
    listed = {p["name"]: p for p in json.loads(done.stdout)}
    assert listed["sslzoo_example"] == {"name": "sslzoo_example", "distribution": "sslzoo-example",
                                        "version": EXAMPLE.version, "hooks": ["register_strategies"],
                                        "api": ">=1,<2", "loaded": True, "problem": None, "clashes": []}


def test_strategies_lists_information_density_with_its_distribution(monkeypatch):
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "sslzoo-example")
    result = CliRunner().invoke(main, ["strategies", "--json", "information_*"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["name"] == "information_density" and row["family"] == "al"
    assert row["plugin"] == "sslzoo_example (sslzoo-example)"
    assert "Settles" in row["paper"]
    assert {"name": "beta", "default": 1.0} == {k: v for k, v in row["options"][-1].items() if k in ("name", "default")}


@pytest.mark.parametrize("load", ["sslzoo-example", "sslzoo_example"])
def test_bench_runs_information_density_next_to_a_built_in(monkeypatch, load):
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", load)
    result = CliRunner().invoke(main, ["bench", "--strategy", "information_density", "-s", "entropy",
                                       "-o", "information_density.beta=2",
                                       *TINY_BENCH, "--json"])
    assert result.exit_code == 0, result.output
    records = {r["strategy"]: r for r in json.loads(result.stdout)}
    dense = records["information_density"]
    assert dense["options"]["beta"] == 2.0 and "beta" not in records["entropy"]["options"]
    assert [e["labels"] for e in dense["curve"]] == [10, 15, 20]
    assert dense["termination"] == "budget"
    assert dense["versions"]["plugins"] == [{"name": "sslzoo_example", "distribution": "sslzoo-example",
                                             "version": EXAMPLE.version}]


def test_load_variable_turns_the_example_off():
    done = sslzoo_cli("strategies", load="")
    assert done.returncode == 0, done.stderr
    assert "information_density" not in done.stdout and "entropy" in done.stdout
    done = sslzoo_cli("bench", "-s", "information_density", *TINY_BENCH, load="")
    assert done.returncode == 1
    assert "unknown strategy 'information_density'" in done.stderr and "Traceback" not in done.stderr
    done = sslzoo_cli("plugins", load="some-other-plugin")
    assert done.returncode == 0 and "sslzoo_example" not in done.stdout


def test_only_plugins_isolates_a_block_and_restores_the_environment(monkeypatch):
    from sslzoo import list_strategies
    from sslzoo.testing import only_plugins

    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "sslzoo-elsewhere")
    with only_plugins("sslzoo-example"):
        assert os.environ["SSLZOO_LOAD_PLUGINS"] == "sslzoo-example"
        assert "information_density" in list_strategies()
        with only_plugins(""):
            assert "information_density" not in list_strategies()
        assert "information_density" in list_strategies()
    assert os.environ["SSLZOO_LOAD_PLUGINS"] == "sslzoo-elsewhere"
    monkeypatch.delenv("SSLZOO_LOAD_PLUGINS")
    with only_plugins(""):
        pass
    assert "SSLZOO_LOAD_PLUGINS" not in os.environ
