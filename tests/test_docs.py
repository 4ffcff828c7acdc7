"""Meta-tests: the docs say what the code does.

- every hookspec, and every Strategy, ActiveStrategy and Dataset method, is documented in
  docs/plugins/hooks.md with its exact signature, and the hook examples work;
- docs/strategies.md is exactly what ``tools.docs`` generates from the registered strategies;
- the ``--help`` blocks in the docs are the real ``--help`` output;
- the plugin tutorial, followed literally in a fresh directory, gives a working plugin, identical
  to plugins/sslzoo-example;
- relative links between the docs resolve.

After changing a strategy or the CLI, regenerate with ``python -m tools.docs``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import sslzoo
from sslzoo._contract.options import describe_options, make_options
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo._contract.strategy import TrainOptions
from sslzoo._ops.embedding import embeddings
from sslzoo.testing import check_strategy
from tests.plugin_helpers import registry_with, run_here
from tools import docs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "plugins" / "sslzoo-example"
REGENERATE = "regenerate with: python -m tools.docs"


@dataclass
class Block:
    """One fenced code block of a markdown file."""

    info: str
    body: str
    line: int

    @property
    def lang(self) -> str:
        return self.info.split()[0] if self.info else ""

    @property
    def file(self) -> str | None:
        match = re.search(r"\bfile=(\S+)", self.info)
        return match.group(1) if match else None


def fenced_blocks(text: str) -> list[Block]:
    blocks, fence, info, body, start = [], None, "", [], 0
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        if fence is None:
            match = re.match(r"^(`{3,})(.*)$", line.rstrip("\n"))
            if match:
                fence, info, body, start = match.group(1), match.group(2).strip(), [], number
        elif line.rstrip("\n") == fence:
            blocks.append(Block(info, "".join(body), start))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"a code block opened at line {start} is never closed"
    return blocks


def sections(text: str) -> dict[str, str]:
    """``### `name` `` heading → the text up to the next heading of level 2 or 3."""
    out: dict[str, str] = {}
    for match in re.finditer(r"^### `([^`]+)`\n(.*?)(?=^##)|^### `([^`]+)`\n(.*)\Z", text, re.S | re.M):
        out[match.group(1) or match.group(3)] = match.group(2) or match.group(4)
    return out


def signatures(path: Path, cls: str | None = None) -> dict[str, str]:
    """Public function (or method of ``cls``) name → its exact ``def`` line, from the source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = tree.body if cls is None else next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    out = {}
    for node in body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            out[node.name] = f"def {node.name}({ast.unparse(node.args)}){returns}:"
    return out


HOOKS_MD = (DOCS / "plugins" / "hooks.md").read_text(encoding="utf-8")
HOOK_SECTIONS = sections(HOOKS_MD)
DOCUMENTED = [
    ("", signatures(ROOT / "sslzoo" / "_contract" / "hookspecs.py")),
    ("", signatures(ROOT / "sslzoo" / "_contract" / "strategy.py", "Strategy")),
    ("ActiveStrategy.", signatures(ROOT / "sslzoo" / "_strategies" / "active.py", "ActiveStrategy")),
    ("BatchStrategy.", signatures(ROOT / "sslzoo" / "_strategies" / "active.py", "BatchStrategy")),
    ("Dataset.", signatures(ROOT / "sslzoo" / "_contract" / "dataset.py", "Dataset")),
]


def test_hookspecs_are_what_the_plugin_manager_uses():
    specs = {name for name, fn in vars(sslzoo._contract.hookspecs).items()
             if callable(fn) and hasattr(fn, "sslzoo_spec")}
    assert specs == set(DOCUMENTED[0][1]), "hookspecs.py holds a public function that is no hookspec"


@pytest.mark.parametrize(("heading", "signature"), [
    (prefix + name, line) for prefix, found in DOCUMENTED for name, line in found.items()])
def test_every_hook_is_documented_with_its_exact_signature(heading, signature):
    assert heading in HOOK_SECTIONS, f"docs/plugins/hooks.md has no section ### `{heading}`"
    code = "".join(b.body for b in fenced_blocks(HOOK_SECTIONS[heading]) if b.lang == "python")
    assert signature in code.splitlines(), (
        f"docs/plugins/hooks.md, section {heading}: the signature is not the source's\n  {signature}")


def test_every_hook_section_documents_something_that_exists():
    known = {prefix + name for prefix, found in DOCUMENTED for name in found}
    assert set(HOOK_SECTIONS) <= known, set(HOOK_SECTIONS) - known


def test_the_plugin_hook_examples_register_and_observe(tmp_path, monkeypatch):
    """The complete examples of the plugin-hook sections, in one module, make a working plugin."""
    monkeypatch.chdir(tmp_path)  # run_ended's example appends to finished.jsonl
    hookspecs = signatures(ROOT / "sslzoo" / "_contract" / "hookspecs.py")
    module = types.ModuleType("hooks_md_examples")
    for name in hookspecs:
        for block in fenced_blocks(HOOK_SECTIONS[name]):
            if block.lang == "python" and not block.body.rstrip().endswith(":"):  # not the signature
                exec(compile(block.body, f"hooks.md:{block.line}", "exec"), vars(module))
    registry = Registry(make_plugins(load="", extra=(module,)))
    assert registry.plugins.info["hooks_md_examples"].hooks == tuple(sorted(hookspecs))
    (record,) = run_here("smallest_max", "blobs", labels=6, options={"budget": 9, "query_size": 3},
                         registry=registry)  # the module is made here: a learner process could not import it
    assert [e["labels"] for e in record["curve"]] == [6, 9]
    assert json.loads((tmp_path / "finished.jsonl").read_text())["strategy"] == "smallest_max"


def test_every_python_block_of_the_plugin_guide_compiles():
    for path in sorted((DOCS / "plugins").glob("*.md")):
        for block in fenced_blocks(path.read_text(encoding="utf-8")):
            if block.lang == "python" and not block.body.rstrip().endswith(":"):
                compile(block.body, f"{path.name}:{block.line}", "exec")


def part(text: str, heading: str) -> str:
    """The text of section ``heading`` (a level-2 or level-3 heading's title) up to the next heading."""
    match = re.search(rf"^#{{2,3}} {re.escape(heading)}\n(.*?)(?=^#{{2,3}} |\Z)", text, re.S | re.M)
    assert match, f"no section {heading!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the first markdown table in ``text``, cells stripped and unescaped."""
    lines = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [[cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_every_option_annotation_in_the_hook_reference_shows_the_allowed_values_it_says():
    rows = table_rows(part(HOOKS_MD, "Strategy options"))
    assert len(rows) >= 8
    for annotation, metadata, allowed in rows:
        annotated = eval(annotation.strip("`"), {"Literal": typing.Literal})
        option = dataclasses.field(default=None, metadata=eval(metadata.strip("`")))
        cls = dataclasses.make_dataclass("Options", [("x", annotated, option)])
        assert describe_options(cls)[0]["allowed"] == allowed, annotation


def test_a_choice_option_refuses_what_the_hook_reference_says():
    section = part(HOOKS_MD, "Strategy options")
    (block,) = [b for b in fenced_blocks(section) if b.lang == "python"]
    namespace: dict = {}
    exec(compile(block.body, "hooks.md", "exec", dont_inherit=True), namespace)
    options = namespace["KCenterOptions"]
    assert make_options(options, {"space": "inputs", "query_size": "3"}, "strategy 'kcenter'").space == "inputs"
    with pytest.raises(sslzoo.OptionError) as info:
        make_options(options, {"space": "pixels"}, "strategy 'kcenter_cover'")
    assert f"`{info.value}`" in " ".join(section.split())


def test_the_hook_reference_lists_every_score_and_the_pickers_exact_signature():
    section = part(HOOKS_MD, "Scores and pickers")
    listed = [row[0].strip("`") for row in table_rows(section)]
    assert sorted(listed) == sorted(sslzoo.scores.__all__)
    (block,) = [b for b in fenced_blocks(section) if b.lang == "python"]
    documented = ast.parse(block.body + "    pass\n").body[0]
    assert f"def top_k({ast.unparse(documented.args)}) -> {ast.unparse(documented.returns)}:" == \
        signatures(ROOT / "sslzoo" / "_ops" / "picking.py")["top_k"]
    assert sslzoo.top_k is sslzoo._ops.picking.top_k


def test_the_hook_references_own_model_pass_gives_what_ctx_embed_gives():
    (block,) = [b for b in fenced_blocks(part(HOOKS_MD, "The model")) if b.lang == "python"]
    namespace: dict = {}
    exec(block.body, namespace)
    torch.manual_seed(0)
    model = sslzoo.create_model("cnn", (1, 28, 28), 10).train()
    ctx = types.SimpleNamespace(model=model, x=torch.randn(6, 1, 28, 28))
    ids = torch.arange(6)
    torch.testing.assert_close(namespace["features"](ctx, ids), embeddings(model, ctx.x, ids))
    assert model.training


def test_an_active_strategy_needs_a_score_unless_it_selects_itself():
    class Neither(sslzoo.ActiveStrategy):
        name = "neither"

    class Selects(sslzoo.ActiveStrategy):
        name = "selects"

        def select(self, ctx, candidates):
            return candidates[:0]

    with pytest.raises(TypeError, match="Can't instantiate abstract class"):
        Neither()
    with pytest.raises(sslzoo.PluginError, match="strategy 'neither' cannot run: class "
                                                 ".*Neither does not define score \\(abstract in ActiveStrategy\\)"):
        registry_with(Neither)
    assert Selects().family == "al"
    with pytest.raises(NotImplementedError, match="'selects' chooses its batch in select"):
        Selects().score(None, torch.arange(3))


def test_the_testing_guide_example_without_installing_passes(tmp_path, monkeypatch):
    """The example as a test module of its own (the leak check's learners import it by its name)."""
    text = (DOCS / "plugins" / "testing.md").read_text(encoding="utf-8")
    (block,) = [b for b in fenced_blocks(text) if "class Mine" in b.body]
    (tmp_path / "test_mine_example.py").write_text(block.body, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("test_mine_example").test_mine_honours_the_contract()


# -- the strategy reference ------------------------------------------------------------------------

def test_strategy_reference_is_generated_from_the_registered_strategies():
    committed = (DOCS / "strategies.md").read_text(encoding="utf-8")
    assert committed == docs.strategy_reference(), f"docs/strategies.md is stale; {REGENERATE}"


TRAINING = {f.name for f in dataclasses.fields(TrainOptions)}  # documented once, in the shared table


def test_every_built_in_strategy_has_a_section_with_its_options():
    text = (DOCS / "strategies.md").read_text(encoding="utf-8")
    for name in Registry(make_plugins(load="")).strategies.names():
        assert f"### `{name}`" in text
        own = sections(text)[name]
        for option in sslzoo.get_strategy(name).describe()["options"]:
            if option["name"] not in TRAINING:
                assert f"| `{option['name']}` |" in own, (name, option["name"])


# -- CLI help blocks -------------------------------------------------------------------------------

HELP_DOCS = sorted(p for p in DOCS.rglob("*.md") if docs.help_commands(p.read_text(encoding="utf-8")))


def test_the_user_guide_shows_the_help_of_every_main_command():
    shown = docs.help_commands((DOCS / "usage.md").read_text(encoding="utf-8"))
    for command in ("bench", "strategies", "plugins", "compare", "report"):
        assert f"sslzoo {command}" in shown


@pytest.mark.parametrize("path", HELP_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_help_blocks_are_the_real_help(path):
    text = path.read_text(encoding="utf-8")
    fresh = docs.update_help_blocks(text)
    if fresh != text:
        for command in docs.help_commands(text):
            block = re.search(rf"<!-- help: {re.escape(command)} -->\n```text\n(.*?)^```$", text, re.S | re.M)
            assert block is not None and block.group(1) == docs.command_help(command), (
                f"{path.relative_to(ROOT)}: the help of `{command}` is stale; {REGENERATE}")
    assert fresh == text


def test_help_block_equals_the_installed_command_in_an_80_column_terminal():
    expected = docs.command_help("sslzoo bench")
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run([str(Path(sys.executable).with_name("sslzoo")), "bench", "--help"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected


# -- links -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(DOCS.rglob("*.md")) + [EXAMPLE / "README.md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    prose = re.sub(r"^(`{3,}).*?^\1$", "", text, flags=re.S | re.M)
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = target.split("#")[0]
        assert (path.parent / file).exists(), f"{path.relative_to(ROOT)}: broken link {target}"


# -- the tutorial ----------------------------------------------------------------------------------

TUTORIAL = (DOCS / "plugins" / "tutorial.md").read_text(encoding="utf-8")


def tutorial_files() -> dict[str, str]:
    """Path → content of every file the tutorial writes (blocks for one file join with 2 blank lines)."""
    parts: dict[str, list[str]] = {}
    for block in fenced_blocks(TUTORIAL):
        if block.file:
            parts.setdefault(block.file, []).append(block.body)
    return {path: "\n\n".join(texts) for path, texts in parts.items()}


def example_files() -> dict[str, str]:
    skip = ("__pycache__", ".egg-info", ".pytest_cache", "build")
    return {str(p.relative_to(EXAMPLE)): p.read_text(encoding="utf-8") for p in sorted(EXAMPLE.rglob("*"))
            if p.is_file() and not any(part.endswith(skip) for part in p.relative_to(EXAMPLE).parts)}


def test_the_tutorial_writes_exactly_the_example_plugin():
    written, example = tutorial_files(), example_files()
    assert sorted(written) == sorted(example), "the tutorial and plugins/sslzoo-example hold other files"
    for path, text in example.items():
        assert written[path] == text, f"docs/plugins/tutorial.md and plugins/sslzoo-example/{path} differ"


def tutorial_commands() -> list[str]:
    """The tutorial's shell commands, in order, but publishing."""
    lines = [line for block in fenced_blocks(TUTORIAL) if block.lang == "sh" for line in block.body.splitlines()]
    return [line for line in lines if line.strip() and "twine" not in line]


def test_following_the_tutorial_literally_gives_a_working_plugin(tmp_path):
    """Every shell command of the tutorial runs, in order, in a fresh directory, after its files
    are written where the tutorial says. One substitution keeps the shared environment as it is:
    ``pip install -e .`` installs into a private ``site`` directory on ``PYTHONPATH`` instead (a
    real build of the tutorial's pyproject.toml, so its entry point is what sslzoo finds)."""
    site = tmp_path / "site"
    isolation = "--no-build-isolation" if importlib.util.find_spec("setuptools") else ""
    install = f"{sys.executable} -m pip install -q --no-deps {isolation} --target {site} ."
    commands = tutorial_commands()
    assert commands[0].startswith("mkdir -p sslzoo-example/") and commands[0].endswith("&& cd sslzoo-example")
    assert "pip install -e ." in commands
    script = ["set -euo pipefail", "set -x", commands[0]]
    for path, text in tutorial_files().items():  # the tutorial's "write this file" steps
        script.append(f"test -d {Path(path).parent}")  # the tutorial's mkdir made its directory
        script.append(f"cat > {path} <<'SSLZOO_TUTORIAL_EOF'\n{text}SSLZOO_TUTORIAL_EOF")
    script += [install if line == "pip install -e ." else line for line in commands[1:]]
    script.append('python -c "import sslzoo_example; print(\'imported from\', sslzoo_example.__file__)"')
    env = {k: v for k, v in os.environ.items() if k not in ("SSLZOO_LOAD_PLUGINS", "PYTEST_ADDOPTS")}
    # this checkout's sslzoo, whatever the environment has installed
    env.update(PYTHONPATH=f"{site}{os.pathsep}{ROOT}", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    log = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-6000:]}"
    assert done.returncode == 0, log
    assert re.search(r"^sslzoo_example\s+sslzoo-example\s+0\.1\.0\s+register_strategies$", done.stdout, re.M), log
    assert '"name": "information_density"' in done.stdout and '"name": "beta"' in done.stdout, log
    assert '"allowed": "a number, at least 0.0"' in done.stdout, log  # "its default and allowed values"
    assert re.search(r"^information_density\s+moons\s+1\s", done.stdout, re.M), log
    assert re.search(r"^\d+ passed", done.stdout, re.M) and " failed" not in done.stdout, log
    assert f"imported from {site}" in done.stdout, log


# -- the cookbook ----------------------------------------------------------------------------------

COOKBOOK = (DOCS / "plugins" / "cookbook.md").read_text(encoding="utf-8")
RECIPES = {"ratio_of_confidence": "score", "kcenter": "select", "entropy_minimization": "loss"}
"""Each recipe's module, and the one strategy hook that makes it what it is."""


def cookbook_files() -> dict[str, str]:
    files = {block.file: block.body for block in fenced_blocks(COOKBOOK) if block.file}
    assert len(files) == sum(1 for block in fenced_blocks(COOKBOOK) if block.file), "a file is written twice"
    return files


def test_the_cookbook_holds_three_recipes_each_with_its_tests():
    assert sorted(cookbook_files()) == sorted(f for m in RECIPES for f in (f"{m}.py", f"test_{m}.py"))


@pytest.mark.parametrize("module", RECIPES)
def test_the_cookbook_recipe_runs_as_written(module, tmp_path, monkeypatch):
    """The recipe's module, loaded as a plugin, registers a strategy whose own hook is the recipe's
    point (a score, a select or a loss); its test module, as written, passes."""
    files = cookbook_files()
    for name in (f"{module}.py", f"test_{module}.py"):
        (tmp_path / name).write_text(files[name], encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        plugin = importlib.import_module(module)
        registry = Registry(make_plugins(load="", extra=(plugin,)))
        (name,) = [n for n, e in registry.strategies.entries.items() if e.plugin.name == module]
        cls = registry.strategies.get(name).obj
        own = {hook for hook in ("score", "pick", "select", "label", "weight", "loss")
               if getattr(vars(cls).get(hook), "__module__", None) == module}
        assert own == {RECIPES[module]}, own
        sslzoo._contract.registry.reset_default_registry(registry)
        tests = importlib.import_module(f"test_{module}")
        ran = [name for name, test in vars(tests).items() if name.startswith("test_") and callable(test)]
        assert ran
        for test in ran:
            getattr(tests, test)()
    finally:
        for name in (module, f"test_{module}"):
            sys.modules.pop(name, None)


def test_the_slip_the_cookbook_warns_of_is_caught_by_the_contract(tmp_path, monkeypatch):
    """k-center returning its positions in the pool instead of ids fails the contract, as the page says."""
    right = "return candidates[torch.tensor(chosen, dtype=torch.long, device=candidates.device)]"
    source = cookbook_files()["kcenter.py"]
    assert right in source
    (tmp_path / "kcenter_slip.py").write_text(source.replace(right, "return torch.tensor(chosen)"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry = Registry(make_plugins(load="", extra=(importlib.import_module("kcenter_slip"),)))
        with pytest.raises(AssertionError, match="round 1: select returns positions in its candidates, not global ids"):
            check_strategy("kcenter_cover", registry)
    finally:
        sys.modules.pop("kcenter_slip", None)
