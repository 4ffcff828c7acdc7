"""Bad third-party plugins fail loudly, naming the plugin and its distribution, before or at the
first round: never a silent wrong result.

Each bad plugin is a real (throw-away) distribution with an ``sslzoo`` entry point, so that the
error message can name the distribution as a user installed it.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslzoo._cli.main import main
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo.errors import PluginError, PluginWarning
from tests.plugin_helpers import install_fake_distribution, run_here

TINY_BENCH = ["--dataset", "moons", "--labels", "10", "-d", "n_train=100", "-d", "n_test=100", "--epochs", "1",
              "--quiet"]

HEADER = """
import torch
import sslzoo
from sslzoo._strategies.active import ActiveStrategy
from sslzoo._contract.dataset import Arrays, Dataset
from sslzoo._contract.strategy import Strategy
from sslzoo._contract.labels import Labels
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(dist, source)``: a throw-away distribution ``dist`` whose entry point is ``source``.

    Returns the plugin's module name; ``SSLZOO_LOAD_PLUGINS`` then loads that distribution only.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = []

    def install_one(dist: str, source: str) -> str:
        module = "sslzoo_fake_" + dist.removeprefix("sslzoo-").replace("-", "_")
        install_fake_distribution(tmp_path, dist, module, HEADER + source)
        monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", dist)
        modules.append(module)
        return module

    yield install_one
    for module in modules:
        sys.modules.pop(module, None)


def fails_on_the_command_line(*args: str, one_line: bool = True) -> str:
    """Run ``sslzoo args``: it must fail with an error (one line unless told) and no traceback,
    and print nothing on stdout; returns the error's first line."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or not one_line, result.stderr
    return lines[0]


# -- registration: raised when the registry is built, before any run ------------------------------

def test_register_strategies_that_raises(install):
    install("sslzoo-raises", """
@sslzoo.hookimpl
def register_strategies(register):
    raise RuntimeError("cannot find my weights file")
""")
    expected = ("plugin sslzoo-raises (distribution sslzoo-raises) failed in register_strategies: "
                "RuntimeError: cannot find my weights file")
    with pytest.raises(PluginError) as info:
        Registry(make_plugins())
    assert str(info.value) == expected
    assert fails_on_the_command_line("strategies") == f"Error: {expected}"
    # every command fails the same way, so a broken plugin is never half-loaded
    assert expected in fails_on_the_command_line("bench", "-s", "supervised", *TINY_BENCH)


@pytest.mark.parametrize(("registered", "shown"), [
    ("dict", "<class 'dict'>"),
    ("Mine()", "<sslzoo_fake_not_a_class.Mine object"),  # an instance, not the class
    ("'mine'", "'mine'"),
])
def test_registering_something_that_is_not_a_strategy_class(install, registered, shown):
    install("sslzoo-not-a-class", f"""
class Mine(Strategy):
    name = "mine"
    family = "baseline"

@sslzoo.hookimpl
def register_strategies(register):
    register({registered})
""")
    with pytest.raises(PluginError, match="not a Strategy subclass") as info:
        Registry(make_plugins())
    message = str(info.value)
    assert message.startswith("plugin sslzoo-not-a-class (distribution sslzoo-not-a-class) registered ")
    assert shown in message
    assert "not a Strategy subclass" in fails_on_the_command_line("strategies")


def test_registering_a_strategy_with_an_unknown_family(install):
    install("sslzoo-family", """
class Mine(Strategy):
    name = "mine"
    family = "reinforcement"

@sslzoo.hookimpl
def register_strategies(register):
    register(Mine)
""")
    with pytest.raises(PluginError, match=r"plugin sslzoo-family \(distribution sslzoo-family\): strategy "
                                          r"'mine' has family 'reinforcement'; allowed: baseline, ssl, al"):
        Registry(make_plugins())


def test_registering_a_strategy_without_a_family(install):
    install("sslzoo-no-family", """
class Mine(Strategy):
    name = "mine"

@sslzoo.hookimpl
def register_strategies(register):
    register(Mine)
""")
    assert fails_on_the_command_line("strategies") == (
        "Error: plugin sslzoo-no-family (distribution sslzoo-no-family): strategy 'mine' declares no family; set "
        "the class attribute family to one of baseline, ssl, al, hybrid")


def test_every_built_in_and_example_strategy_declares_its_family():
    from sslzoo._default_plugins.supervised import Supervised
    from sslzoo_example import InformationDensity

    assert "family" in vars(Supervised) and InformationDensity.family == "al"
    for entry in Registry(make_plugins(load="")).strategies.entries.values():
        declared = next(vars(cls)["family"] for cls in entry.obj.__mro__ if "family" in vars(cls))
        assert declared in ("baseline", "ssl", "al", "hybrid") and declared == entry.obj.family, entry.name


def test_registering_an_active_strategy_with_nothing_to_choose_by(install):
    install("sslzoo-unscored", """
class Mine(ActiveStrategy):
    name = "mine"

@sslzoo.hookimpl
def register_strategies(register):
    register(Mine)
""")
    assert fails_on_the_command_line("strategies") == (
        "Error: plugin sslzoo-unscored (distribution sslzoo-unscored): strategy 'mine' cannot run: class Mine "
        "does not define score (abstract in ActiveStrategy)")


def test_a_plugin_that_registers_nothing_is_a_warning_naming_it(tmp_path, monkeypatch):
    """The console block of docs/plugins/index.md, exactly: the hook is not marked, so the strategy
    is missing, and the warning says why at every command."""
    install_fake_distribution(tmp_path, "sslzoo-farthest", "sslzoo_farthest", HEADER + """
class FarthestFirst(ActiveStrategy):
    name = "farthest_first"

    def select(self, ctx, candidates):
        return candidates[:0]

def register_strategies(register):
    register(FarthestFirst)
""", entry_point="sslzoo_farthest")
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "sslzoo-farthest")
    try:
        text = (Path(__file__).parent.parent / "docs" / "plugins" / "index.md").read_text(encoding="utf-8")
        (shown,) = re.findall(r"^\$ (sslzoo bench -s farthest_first .*)\n((?:[^$`].*\n)+)", text, re.M)
        result = CliRunner().invoke(main, shlex.split(shown[0])[1:])
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr == shown[1]
        with pytest.warns(PluginWarning, match="plugin sslzoo_farthest .* registers nothing"):
            Registry(make_plugins())
    finally:
        sys.modules.pop("sslzoo_farthest", None)


@pytest.mark.parametrize(("source", "why"), [
    ("@sslzoo.hookimpl\ndef register_strategies(register):\n    pass",
     "its register_strategies never calls register()"),
    ("TITLE = 'no hook at all'", "it implements no sslzoo hook (mark each hook function with @sslzoo.hookimpl)"),
])
def test_other_plugins_that_register_nothing_are_warnings_too(install, source, why):
    install("sslzoo-idle", source)
    with pytest.warns(PluginWarning) as caught:
        Registry(make_plugins())
    assert [str(w.message) for w in caught] == [
        f"plugin sslzoo-idle (distribution sslzoo-idle) registers nothing: {why}"]


def test_an_observer_plugin_registers_nothing_without_a_warning(install, recwarn):
    install("sslzoo-observer", "@sslzoo.hookimpl\ndef run_ended(record):\n    pass")
    Registry(make_plugins())
    assert not [w for w in recwarn if issubclass(w.category, PluginWarning)]


def test_registering_a_dataset_or_model_that_is_not_one(install):
    install("sslzoo-bad-data", """
@sslzoo.hookimpl
def register_datasets(register):
    register(torch.utils.data.TensorDataset)

@sslzoo.hookimpl
def register_models(register):
    register("tiny", "not a builder")
""")
    with pytest.raises(PluginError, match=r"plugin sslzoo-bad-data \(distribution sslzoo-bad-data\) "
                                          r"registered .*TensorDataset.*, which is not a Dataset subclass"):
        Registry(make_plugins())


@pytest.mark.parametrize(("hook", "args"), [
    ("register_stratgies", "register"),  # a typo of register_strategies
    ("round_end", "run, entry"),         # an observer hook that does not exist (round_ended does)
    ("select", "ctx, candidates"),       # Strategy methods are not pluggy hooks
])
def test_implementing_a_hook_that_does_not_exist(install, hook, args):
    install("sslzoo-typo", f"""
@sslzoo.hookimpl
def {hook}({args}):
    pass
""")
    with pytest.raises(PluginError) as info:
        make_plugins()
    message = str(info.value)
    assert message.startswith("plugin sslzoo-typo (distribution sslzoo-typo) is invalid: ")
    assert f"unknown hook '{hook}'" in message
    assert "sslzoo-typo (distribution sslzoo-typo)" in fails_on_the_command_line("plugins")


def test_hook_with_an_argument_the_hookspec_does_not_have(install):
    install("sslzoo-bad-args", """
@sslzoo.hookimpl
def register_strategies(register, registry):
    pass
""")
    with pytest.raises(PluginError, match=r"(?s)plugin sslzoo-bad-args \(distribution sslzoo-bad-args\) is "
                                          r"invalid: .*\{'registry'\} are declared in the hookimpl but can not "
                                          r"be found in the hookspec"):
        make_plugins()


# -- select: checked by the engine at the first round ----------------------------------------------

BAD_SELECT = """
class BadSelect(ActiveStrategy):
    name = "bad_select"
    summary = "selects wrongly"

    def score(self, ctx, ids):
        return torch.zeros(ids.numel())

    def select(self, ctx, candidates):
        k = self.query_count(ctx, candidates.numel())
        return {chosen}

@sslzoo.hookimpl
def register_strategies(register):
    register(BadSelect)
"""


@pytest.mark.parametrize(("chosen", "fragment"), [
    ("ctx.labeled_ids()[:k]", "select returned ids that are not in the unlabeled pool"),
    ("torch.tensor([10**6] * k)", "select returned duplicate ids"),
    ("torch.tensor([10**6])", "select returned ids that are not in the unlabeled pool"),
    ("candidates[:1].repeat(k)", "select returned duplicate ids"),
    ("candidates[:k + 3]", "label asked the oracle for 13 labels; its query_count allows 10 this round"),
    ("candidates[:k - 4]",
     "select returned 6 ids and label asked the oracle for 6 of them; its query_count allows exactly 10"),
    ("candidates[:k].tolist()", "select must return a 1-D int64 tensor of global ids"),
    ("candidates[:k].int()", "select must return a 1-D int64 tensor of global ids"),
    ("candidates[:k].view(2, -1)", "select must return a 1-D int64 tensor of global ids"),
])
def test_select_that_breaks_the_contract_stops_the_first_round(install, chosen, fragment):
    install("sslzoo-bad-select", BAD_SELECT.format(chosen=chosen))
    # a 2-D tensor's repr spans lines, so that message does too
    line = fails_on_the_command_line("bench", "-s", "bad_select", *TINY_BENCH, one_line="view" not in chosen)
    assert line.startswith("Error: strategy 'bad_select' (plugin sslzoo-bad-select "
                           "(distribution sslzoo-bad-select)), round 1: ")
    assert fragment in line  # in round 1, the first round that selects, in the learner's process


@pytest.mark.parametrize(("chosen", "message"), [
    ("torch.arange(10**6, 10**6 + 7)", r"select returned ids that are not in the unlabeled pool \(7 of them: 1000000, "
     r"1000001, 1000002, 1000003, 1000004, \.\.\.\); select returns global dataset ids taken from its candidates, "
     r"never positions in them"),
    ("torch.cat([candidates[3:5]] * 5)", r"select returned duplicate ids \(2 of them: \d, \d\)"),
])
def test_a_bad_selection_names_the_round_and_up_to_five_offending_ids(install, chosen, message):
    install("sslzoo-bad-select", BAD_SELECT.format(chosen=chosen))
    line = fails_on_the_command_line("bench", "-s", "bad_select", *TINY_BENCH)
    owner = r"strategy 'bad_select' \(plugin sslzoo-bad-select \(distribution sslzoo-bad-select\)\)"
    assert re.fullmatch(rf"Error: {owner}, round 1: " + message, line), line


BAD_STEP = """
from sslzoo._contract.strategy import EpochPlan, PseudoLabels, StepLoss, supervised_loss

class BadStep(Strategy):
    name = "bad_step"
    family = "ssl"
    level = "step"

    def epoch_plan(self, ctx):
        return EpochPlan(8)

    def loss(self, ctx, step):
        ids = IDS
        return StepLoss(supervised_loss(ctx, step.labeled),
                        PseudoLabels(ids, torch.zeros_like(ids), torch.ones(ids.numel())))

@sslzoo.hookimpl
def register_strategies(register):
    register(BadStep)
"""


@pytest.mark.parametrize("ids", [
    "torch.cat([ctx.labeled_ids()[:3]] * 2)",  # labeled ids, twice: not from the unlabeled batch
    "step.unlabeled[:4]",  # a part of the batch, where a mask should say which ids were used
    "step.unlabeled.flip(0)",  # the batch's ids in another order
])
def test_a_step_loss_that_pseudo_labels_other_ids_than_its_unlabeled_batch_is_an_error(install, ids):
    install("sslzoo-bad-step", BAD_STEP.replace("IDS", ids))
    owner = r"strategy 'bad_step' \(plugin sslzoo-bad-step \(distribution sslzoo-bad-step\)\)"
    with pytest.raises(PluginError, match=rf"^{owner}: a step's pseudo-labels must be for the ids of its unlabeled "
                                          r"batch \(step\.unlabeled\), in its order$"):
        run_here("bad_step", "moons", labels=10, options={"epochs": 1}, dataset_options={"n_train": 100})


def test_observer_that_raises_is_an_error_naming_the_plugin(install):
    install("sslzoo-bad-observer", """
@sslzoo.hookimpl
def round_ended(run, entry):
    raise KeyError("test_acc")
""")
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", *TINY_BENCH])
    assert result.exit_code == 1
    assert "sslzoo-bad-observer (distribution sslzoo-bad-observer)" in result.output, repr(result.exception)
