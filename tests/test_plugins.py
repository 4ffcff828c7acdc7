"""Plugin discovery, SSLZOO_LOAD_PLUGINS, and loud failures of broken plugins."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from sslzoo import hookimpl
from sslzoo._cli.main import main
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo.errors import PluginError, PluginWarning
from tests.plugin_helpers import install_fake_distribution

GOOD_PLUGIN = """
import sslzoo

class Curious(sslzoo.Strategy):
    name = "curious"
    family = "al"
    paper = "A. Author, A curious idea, 2026"
    summary = "a test strategy"

@sslzoo.hookimpl
def register_strategies(register):
    register(Curious)
"""


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("sslzoo_fake")]:
        del sys.modules[name]


def test_entry_point_plugin_appears_in_strategies_listing(fake_site, monkeypatch):
    install_fake_distribution(fake_site, "sslzoo-curious", "sslzoo_fake_curious", GOOD_PLUGIN)
    monkeypatch.delenv("SSLZOO_LOAD_PLUGINS")
    result = CliRunner().invoke(main, ["strategies"])
    assert result.exit_code == 0, result.output
    assert "curious" in result.output
    plugins = CliRunner().invoke(main, ["plugins", "--json"])
    assert '"distribution": "sslzoo-curious"' in plugins.output
    assert '"version": "1.2.3"' in plugins.output


def test_empty_load_variable_hides_installed_plugins(fake_site, monkeypatch):
    install_fake_distribution(fake_site, "sslzoo-curious", "sslzoo_fake_curious", GOOD_PLUGIN)
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "")
    result = CliRunner().invoke(main, ["strategies"])
    assert result.exit_code == 0
    assert "curious" not in result.output
    assert "supervised" in result.output


def test_load_variable_selects_plugins_by_distribution_name(fake_site):
    install_fake_distribution(fake_site, "sslzoo-curious", "sslzoo_fake_curious", GOOD_PLUGIN)
    assert "curious" in Registry(make_plugins(load="sslzoo-curious")).strategies.names()
    with pytest.warns(PluginWarning, match="'something-else', which is no installed plugin"):
        assert "curious" not in Registry(make_plugins(load="something-else")).strategies.names()


def test_misspelled_hookimpl_fails_loudly():
    class Typo:
        @hookimpl
        def register_stratgies(self, register):
            pass

    with pytest.raises(PluginError, match="register_stratgies"):
        make_plugins(load="", extra=(Typo(),))


def test_plugin_that_fails_to_import_is_reported_with_its_distribution(fake_site, monkeypatch):
    install_fake_distribution(fake_site, "sslzoo-broken", "sslzoo_fake_broken", "import no_such_module_x\n")
    monkeypatch.delenv("SSLZOO_LOAD_PLUGINS")
    with pytest.raises(PluginError, match="sslzoo-broken.*failed to import.*no_such_module_x"):
        make_plugins()
    result = CliRunner().invoke(main, ["strategies"])
    assert result.exit_code == 1
    assert "sslzoo-broken" in result.output
    assert "Traceback" not in result.output


def test_registering_a_non_strategy_is_an_error_naming_the_plugin():
    class Wrong:
        @hookimpl
        def register_strategies(self, register):
            register(object)

    with pytest.raises(PluginError, match="Wrong.*not a Strategy"):
        Registry(make_plugins(load="", extra=(Wrong(),)))


def test_observer_hooks_see_every_round_of_a_run():
    seen = []

    class Watcher:
        @hookimpl
        def round_ended(self, run, entry):
            seen.append((run["strategy"], entry["round"]))

    registry = Registry(make_plugins(load="", extra=(Watcher(),)))
    from sslzoo import run

    run("supervised", "moons", labels=10, options={"epochs": 2}, registry=registry)
    assert seen == [("supervised", 0)]
