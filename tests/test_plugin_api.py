"""Plugin API 1.0: plugins survive an upgrade.

``sslzoo.PLUGIN_API`` is a semantic version; a plugin declares the range it fits and is left out,
with a one-line warning naming it and both versions, when it does not. Names two plugins register
stay reachable by their qualified names ``DIST:NAME``; the bare name is a one-line error listing
them, and nothing else stops working. Renamed names keep a deprecated alias for one minor version.

The plugin written against the first plugin API, ``sslzoo-kcenter`` (it registers ``kcenter``,
now also a built-in, and ``margin_random_tiebreak``; its tests import ``check_oracle``), is put
beside sslzoo in a temporary directory; the command line runs in a subprocess that loads every
installed plugin, as a user's shell would.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import sslzoo
import sslzoo.testing
from sslzoo._cli.main import main
from sslzoo._contract.plugin_api import PLUGIN_API, fits, misfit, parse_version
from sslzoo._contract.plugins import LOAD_ENV, make_plugins
from sslzoo._contract.registry import Registry, reset_default_registry
from sslzoo._engine.catalog import create_strategy
from sslzoo.errors import AmbiguousNameError, PluginError, PluginWarning, UnknownNameError
from sslzoo.testing import check_leak, only_plugins
from tests.plugin_helpers import install_fake_distribution, write_fake_distribution

ROOT = Path(__file__).resolve().parent.parent

OLD_PLUGIN = '''
"""k-center (by random scores) and margin with a random tie-break, written against sslzoo's first
plugin API, before sslzoo had a kcenter of its own."""

import torch

import sslzoo


class KCenter(sslzoo.ActiveStrategy):
    name = "kcenter"
    summary = "k-center, approximated by random scores"

    def score(self, ctx, ids):
        return torch.rand(ids.numel(), generator=ctx.generator, device=ids.device)


class MarginRandomTiebreak(sslzoo.ActiveStrategy):
    name = "margin_random_tiebreak"
    summary = "smallest margin first, ties broken at random"

    def score(self, ctx, ids):
        return sslzoo.scores.margin_score(ctx.predict(ids))


@sslzoo.hookimpl
def register_strategies(register):
    register(KCenter)
    register(MarginRandomTiebreak)
'''

OLD_PLUGIN_TESTS = '''
"""sslzoo-kcenter's tests, written against the first plugin API."""

from sslzoo.testing import check_oracle, tiny_run


def test_margin_random_tiebreak_reads_no_hidden_label():
    check_oracle(tiny_run("margin_random_tiebreak"))
'''

FUTURE_PLUGIN = '''
"""A plugin for a plugin API this sslzoo does not provide."""

import sslzoo

SSLZOO_PLUGIN_API = ">=2,<3"


class Future(sslzoo.Strategy):
    name = "future"
    family = "baseline"


@sslzoo.hookimpl
def register_strategies(register):
    register(Future)
'''

RENAMED_PLUGIN = '''
"""A plugin that imports a name sslzoo does not have (as one written for another plugin API would)."""

from sslzoo.testing import check_the_oracle_spy
'''

TINY_BENCH = ["--dataset", "moons", "--labels", "6", "--epochs", "2", "--budget", "9", "--query-size", "3",
              "-d", "n_train=200", "-d", "n_test=200", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding sslzoo-kcenter, as pip would install it, and its tests."""
    root = tmp_path_factory.mktemp("site")
    write_fake_distribution(root, "sslzoo-kcenter", "sslzoo_kcenter", OLD_PLUGIN, version="0.3.0")
    (root / "test_sslzoo_kcenter.py").write_text(OLD_PLUGIN_TESTS)
    return root


@pytest.fixture(scope="module")
def misfits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding two plugins that do not fit this plugin API: one declares so, one fails to
    import a name."""
    root = tmp_path_factory.mktemp("misfits")
    write_fake_distribution(root, "sslzoo-future", "sslzoo_future", FUTURE_PLUGIN, version="2.0.0")
    write_fake_distribution(root, "sslzoo-renamed", "sslzoo_renamed", RENAMED_PLUGIN, version="0.1.0")
    return root


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Within the test, ``on_path(dir)`` puts a plugin directory on this process's path."""
    def put(root: Path) -> None:
        monkeypatch.syspath_prepend(str(root))
        importlib.invalidate_caches()

    yield put
    for module in ("sslzoo_kcenter", "sslzoo_future", "sslzoo_renamed", "test_sslzoo_kcenter"):
        sys.modules.pop(module, None)


def sslzoo_command(*args: str, path: list[Path]) -> subprocess.CompletedProcess[str]:
    """``sslzoo args`` in a new Python, on one thread, with ``path`` on ``PYTHONPATH`` and every installed
    plugin loaded."""
    env = {key: value for key, value in os.environ.items() if key != LOAD_ENV}
    env["PYTHONPATH"] = os.pathsep.join([*map(str, path), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"  # tiny runs: threads would only contend with the rest of the suite
    return subprocess.run([sys.executable, "-m", "sslzoo", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


# -- the version --------------------------------------------------------------------------------------

def test_the_plugin_api_is_a_semantic_version_exported_by_sslzoo():
    assert sslzoo.PLUGIN_API == PLUGIN_API and "PLUGIN_API" in sslzoo.__all__
    assert re.fullmatch(r"\d+\.\d+\.\d+", PLUGIN_API)


@pytest.mark.parametrize(("requirement", "version", "expected"), [
    (">=1,<2", "1.0.0", True), (">=1,<2", "1.4.2", True), (">=1,<2", "2.0.0", False), (">=1,<2", "0.9.0", False),
    (">=1.1", "1.0.0", False), (">1.0", "1.0.0", False), (">1.0", "1.0.1", True), ("<=1.0", "1.0.0", True),
    ("==1", "1.7.3", True), ("==1.0", "1.1.0", False), ("!=1.0", "1.0.5", False), ("!=1.0", "1.1.0", True),
    ("1.0", "1.3.0", True), ("1.2", "1.1.0", False), ("1", "2.0.0", False), (" >= 1 , < 2 ", "1.0.0", True),
])
def test_a_declared_range_holds_the_versions_it_names(requirement, version, expected):
    assert fits(requirement, version) is expected


@pytest.mark.parametrize("declared", ["", "latest", ">=1,", "=>1", "1.x", ">=1.0.0.0", 1.0, ["1"]])
def test_a_declaration_that_is_no_range_is_named_as_such(declared):
    assert misfit(declared) == f"its SSLZOO_PLUGIN_API = {declared!r} is no version range such as '>=1,<2'"


def test_a_plugin_that_declares_nothing_or_a_range_it_fits_is_loaded():
    assert misfit(None) is None and misfit(">=1,<2") is None
    assert misfit(">=2,<3") == f"it needs sslzoo plugin API >=2,<3 and this sslzoo provides {PLUGIN_API}"


# -- the plugin written against the first API, beside sslzoo --------------------------------------------

def test_strategies_lists_both_kcenters_by_their_qualified_names(site):
    result = sslzoo_command("strategies", path=[site])
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert names[names.index("sslzoo:kcenter") + 1] == "sslzoo-kcenter:kcenter"
    assert "kcenter" not in names and {"margin", "margin_random_tiebreak", "bald"} <= set(names)
    assert result.stderr == ("note: 2 plugins register strategy 'kcenter': name one of them as sslzoo:kcenter "
                             "or sslzoo-kcenter:kcenter\n")


def test_bench_of_a_built_in_works_beside_the_plugin(site):
    result = sslzoo_command("bench", "-s", "margin", "--json", *TINY_BENCH, path=[site])
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["strategy"] == "margin" and record["oracle_labels"] == 9


def test_bench_of_the_plugins_kcenter_by_its_qualified_name(site):
    result = sslzoo_command("bench", "-s", "sslzoo-kcenter:kcenter", "--json", *TINY_BENCH, path=[site])
    assert result.returncode == 0, result.stderr
    (record,) = json.loads(result.stdout)
    assert record["strategy"] == "sslzoo-kcenter:kcenter" and record["oracle_labels"] == 9
    assert record["versions"]["plugins"] == [{"name": "sslzoo-kcenter", "distribution": "sslzoo-kcenter",
                                              "version": "0.3.0"}]


def test_bench_of_the_bare_clashing_name_is_one_line_listing_both(site):
    result = sslzoo_command("bench", "-s", "kcenter", *TINY_BENCH, path=[site])
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("Error: strategy 'kcenter' is ambiguous: 2 plugins register it; name one of them as "
                             "sslzoo:kcenter or sslzoo-kcenter:kcenter\n")


def test_plugins_that_do_not_fit_the_api_are_left_out_with_one_line_each(site, misfits):
    result = sslzoo_command("bench", "-s", "margin_random_tiebreak", *TINY_BENCH, path=[site, misfits])
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: plugin sslzoo-future (distribution sslzoo-future) is not loaded: it needs sslzoo plugin API "
        f">=2,<3 and this sslzoo provides {PLUGIN_API}",
        "warning: plugin sslzoo-renamed (distribution sslzoo-renamed) is not loaded: it fails to import: cannot "
        f"import name 'check_the_oracle_spy' from 'sslzoo.testing'; sslzoo no longer has that name (plugin API "
        f"{PLUGIN_API}): see docs/plugins/migrating.md",
    ]
    assert "margin_random_tiebreak" in result.stdout


def test_the_plugins_tests_run_through_the_deprecated_check_oracle(site, on_path):
    on_path(site)
    spec = importlib.util.spec_from_file_location("test_sslzoo_kcenter", site / "test_sslzoo_kcenter.py")
    assert spec is not None and spec.loader is not None
    tests = importlib.util.module_from_spec(spec)
    with pytest.warns(DeprecationWarning, match=r"sslzoo\.testing\.check_oracle is deprecated since plugin API "
                                                r"1\.0 and removed in 1\.1: use sslzoo\.testing\.check_leak "
                                                r"\(see docs/plugins/migrating\.md\)"):
        spec.loader.exec_module(tests)
    assert tests.check_oracle is check_leak
    with only_plugins("sslzoo-kcenter"):
        tests.test_margin_random_tiebreak_reads_no_hidden_label()


def test_plugins_and_listings_show_the_clash(site, on_path, monkeypatch):
    on_path(site)
    monkeypatch.setenv(LOAD_ENV, "sslzoo-kcenter")
    reset_default_registry()
    plugins = CliRunner().invoke(main, ["plugins"])
    assert plugins.exit_code == 0, plugins.output
    rows = {line.split()[0]: line for line in plugins.stdout.splitlines()}
    assert re.search(r"register_strategies +strategy kcenter also from sslzoo$", rows["sslzoo-kcenter"])
    assert re.search(r"register_strategies +strategy kcenter also from sslzoo-kcenter$",
                     rows["sslzoo._default_plugins.coreset"])
    (row,) = [r for r in json.loads(CliRunner().invoke(main, ["plugins", "--json"]).stdout)
              if r["name"] == "sslzoo-kcenter"]
    assert row["clashes"] == [{"kind": "strategy", "name": "kcenter", "also_from": ["sslzoo"]}]
    assert row["loaded"] and row["problem"] is None
    listed = json.loads(CliRunner().invoke(main, ["strategies", "--json", "kcenter"]).stdout)
    assert [(r["name"], r["qualified_name"], r["clashes_with"]) for r in listed] == [
        ("sslzoo:kcenter", "sslzoo:kcenter", ["sslzoo-kcenter:kcenter"]),
        ("sslzoo-kcenter:kcenter", "sslzoo-kcenter:kcenter", ["sslzoo:kcenter"])]
    margin = json.loads(CliRunner().invoke(main, ["strategies", "--json", "margin"]).stdout)
    assert [(r["name"], r["qualified_name"], r["clashes_with"]) for r in margin] == [
        ("margin", "sslzoo:margin", [])]


def test_plugins_lists_the_plugins_left_out_and_why(misfits, on_path, monkeypatch):
    on_path(misfits)
    monkeypatch.setenv(LOAD_ENV, "sslzoo-future")
    reset_default_registry()
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0
    (row,) = [r for r in json.loads(result.stdout) if r["name"] == "sslzoo-future"]
    assert row["api"] == ">=2,<3" and not row["loaded"] and row["version"] == "2.0.0"
    assert row["problem"] == f"it needs sslzoo plugin API >=2,<3 and this sslzoo provides {PLUGIN_API}"
    assert "future" not in sslzoo.list_strategies()


# -- qualified names --------------------------------------------------------------------------------------

def test_a_composition_takes_qualified_parts_and_the_record_names_them(site, on_path):
    on_path(site)
    registry = Registry(make_plugins(load="sslzoo-kcenter"))
    name = "sslzoo-kcenter:kcenter+sslzoo:self_training"
    (record,) = sslzoo.run(name, "moons", labels=6, device="cpu", registry=registry,
                           options={"epochs": 2, "budget": 9, "query_size": 3,
                                    "sslzoo:self_training.threshold": 0.9},
                           dataset_options={"n_train": 200, "n_test": 200})
    assert record["strategy"] == name and record["oracle_labels"] == 9
    assert record["options"]["sslzoo:self_training.threshold"] == 0.9
    assert [p["distribution"] for p in record["versions"]["plugins"]] == ["sslzoo-kcenter", "sslzoo"]
    chain = create_strategy("sslzoo:margin>self_training", registry, **{"self_training.threshold": 0.8})
    assert chain.name == "sslzoo:margin>self_training" and [p.name for p in chain.parts()] == [
        "sslzoo:margin", "self_training"]


def test_a_bare_name_is_recorded_bare_and_a_qualified_one_qualified():
    assert create_strategy("margin").name == "margin"
    assert create_strategy("sslzoo:margin").name == "sslzoo:margin"
    assert create_strategy("SSLZOO:margin").name == "sslzoo:margin"  # as the registry spells the distribution
    assert type(create_strategy("sslzoo:margin")) is sslzoo.get_strategy("margin")


@pytest.mark.parametrize(("kind", "source"), [
    ("strategy", """
class Bald(Strategy):
    name = "bald"
    family = "al"

@sslzoo.hookimpl
def register_strategies(register):
    register(Bald)
"""),
    ("dataset", """
class Moons(Dataset):
    name = "moons"
    def load(self, seed):
        raise AssertionError("the built-in moons was asked for")

@sslzoo.hookimpl
def register_datasets(register):
    register(Moons)
"""),
    ("model", """
@sslzoo.hookimpl
def register_models(register):
    register("cnn", lambda shape, classes: torch.nn.Linear(2, classes))
"""),
])
def test_reusing_a_built_in_name_keeps_both_reachable(kind, source, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    install_fake_distribution(tmp_path, "sslzoo-clash", "sslzoo_fake_clash",
                              "import torch\nimport sslzoo\nfrom sslzoo import Dataset, Strategy\n" + source)
    try:
        registry = Registry(make_plugins(load="sslzoo-clash"))
    finally:
        sys.modules.pop("sslzoo_fake_clash", None)
    name = {"strategy": "bald", "dataset": "moons", "model": "cnn"}[kind]
    table = {"strategy": registry.strategies, "dataset": registry.datasets, "model": registry.models}[kind]
    with pytest.raises(AmbiguousNameError) as info:
        table.get(name)
    assert str(info.value) == (f"{kind} {name!r} is ambiguous: 2 plugins register it; name one of them as "
                               f"sslzoo:{name} or sslzoo-clash:{name}")
    assert isinstance(info.value, UnknownNameError) and info.value.known == [f"sslzoo:{name}", f"sslzoo-clash:{name}"]
    assert table.get(f"sslzoo:{name}").plugin.distribution == "sslzoo"
    assert table.get(f"sslzoo-clash:{name}").plugin.distribution == "sslzoo-clash"
    assert table.get(f"sslzoo_Clash:{name}").plugin.distribution == "sslzoo-clash"  # spelled as pip compares
    assert name in table and f"sslzoo:{name}" in table and f"nobody:{name}" not in table
    assert f"sslzoo-clash:{name}" in table.names() and name not in table.names()
    assert list(table.clashes()) == [name]


def test_a_dataset_is_run_by_its_qualified_name(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    install_fake_distribution(tmp_path, "sslzoo-clash", "sslzoo_fake_clash", """
import sslzoo

class Moons(sslzoo.Dataset):
    name = "moons"
    def load(self, seed):
        raise AssertionError("this moons is not the one asked for")

@sslzoo.hookimpl
def register_datasets(register):
    register(Moons)
""")
    try:
        registry = Registry(make_plugins(load="sslzoo-clash"))
    finally:
        sys.modules.pop("sslzoo_fake_clash", None)
    (record,) = sslzoo.run("supervised", "sslzoo:moons", labels=6, device="cpu", registry=registry,
                           options={"epochs": 1}, dataset_options={"n_train": 100, "n_test": 100})
    assert record["dataset"] == "sslzoo:moons" and 0 <= record["test_accuracy"] <= 1
    with pytest.raises(AmbiguousNameError, match="dataset 'moons' is ambiguous"):
        sslzoo.run("supervised", "moons", labels=6, device="cpu", registry=registry, options={"epochs": 1})


def test_two_third_party_plugins_of_one_name_both_stay_reachable(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    for dist in ("sslzoo-twin-a", "sslzoo-twin-b"):
        install_fake_distribution(tmp_path, dist, dist.replace("-", "_"), f"""
import sslzoo

class Twin(sslzoo.Strategy):
    name = "twin"
    family = "baseline"
    summary = "{dist}"

@sslzoo.hookimpl
def register_strategies(register):
    register(Twin)
""")
    try:
        registry = Registry(make_plugins(load="sslzoo-twin-a,sslzoo-twin-b"))
    finally:
        sys.modules.pop("sslzoo_twin_a", None)
        sys.modules.pop("sslzoo_twin_b", None)
    names = ["sslzoo-twin-a:twin", "sslzoo-twin-b:twin"]
    assert registry.strategies.names("twin") == names
    assert [create_strategy(name, registry).summary for name in names] == ["sslzoo-twin-a", "sslzoo-twin-b"]
    with pytest.raises(AmbiguousNameError, match="name one of them as sslzoo-twin-a:twin or sslzoo-twin-b:twin"):
        create_strategy("twin", registry)


def test_an_unknown_qualified_name_suggests_the_close_ones():
    registry = Registry(make_plugins(load=""))
    with pytest.raises(UnknownNameError, match=r"unknown strategy 'sslzoo:kcentr'; did you mean sslzoo:kcenter\b"):
        registry.strategies.get("sslzoo:kcentr")
    with pytest.raises(UnknownNameError, match="unknown strategy 'elsewhere:kcenter'"):
        registry.strategies.get("elsewhere:kcenter")


def test_one_distribution_registering_a_name_twice_is_still_an_error():
    class Again(sslzoo.Strategy):
        name = "supervised"
        family = "baseline"

    class Twice:
        @sslzoo.hookimpl
        def register_strategies(self, register):  # type: ignore[no-untyped-def]
            register(Again)
            register(Again)

    with pytest.raises(PluginError, match="strategy 'supervised' is registered twice: by plugin Twice and by "
                                          "plugin Twice"):
        Registry(make_plugins(load="", extra=(Twice(),)))


def test_a_name_cannot_hold_the_qualifier():
    class Odd(sslzoo.Strategy):
        name = "odd:name"
        family = "baseline"

    class Plugin:
        @sslzoo.hookimpl
        def register_strategies(self, register):  # type: ignore[no-untyped-def]
            register(Odd)

    with pytest.raises(PluginError, match=r"registered strategy 'odd:name': a name cannot hold ':'"):
        Registry(make_plugins(load="", extra=(Plugin(),)))


# -- deprecations and the record of changes ----------------------------------------------------------------

def test_every_deprecated_alias_lives_one_minor_version_and_is_documented():
    migrating = (ROOT / "docs" / "plugins" / "migrating.md").read_text(encoding="utf-8")
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for old, alias in sslzoo.testing._DEPRECATED.items():
        assert parse_version(PLUGIN_API) < parse_version(alias.removed_in()), f"remove the alias {old}"
        assert getattr(sslzoo.testing, alias.new) is alias.obj
        assert old in migrating and alias.new in migrating and old in changelog


def test_the_changelog_names_this_plugin_api():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## Unreleased — Plugin API {PLUGIN_API}" in changelog


def test_a_plugin_that_fails_to_import_for_another_reason_still_stops_every_command(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    install_fake_distribution(tmp_path, "sslzoo-broken", "sslzoo_fake_broken", "import no_such_module_x\n")
    with pytest.raises(PluginError, match="sslzoo-broken.*failed to import.*no_such_module_x"):
        make_plugins(load="sslzoo-broken")


def test_a_plugin_left_out_is_a_plugin_warning(misfits, on_path):
    on_path(misfits)
    with pytest.warns(PluginWarning) as caught:
        plugins = make_plugins(load="sslzoo-future,sslzoo-renamed")
    assert [str(w.message).split(" is not loaded")[0] for w in caught] == [
        "plugin sslzoo-future (distribution sslzoo-future)", "plugin sslzoo-renamed (distribution sslzoo-renamed)"]
    assert [p.name for p in plugins.skipped] == ["sslzoo-future", "sslzoo-renamed"]
    assert not {"sslzoo-future", "sslzoo-renamed"} & set(plugins.info)
