"""The registry: lookups, aliases, globs, groups, did-you-mean, clashes and entry-point plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import registry
from registry import Registry, UnknownNameError

REPO = str(Path(__file__).resolve().parents[1])

PAPER_ORDER = [
    "object_composition",
    "spatial_composition",
    "attribute_disentanglement",
    "component_transfer",
    "fgbg_composition",
    "story_generation",
]


class TestBasics:
    def test_six_builtin_tasks(self):
        assert set(PAPER_ORDER) <= set(registry.list_tasks())  # other suites add theirs
        micon = [n for n in registry.list_tasks() if Path(registry.tasks.source(n)).parent.name == "tasks"]
        assert micon == sorted(PAPER_ORDER)

    @pytest.mark.parametrize(
        "alias,name",
        [
            ("spatial_geometric_constraints", "spatial_composition"),
            ("attribute_style_decoupling", "attribute_disentanglement"),
            ("local_element_transfer", "component_transfer"),
            ("foreground_background_composition", "fgbg_composition"),
            ("story_infer", "story_generation"),
            ("object_composition", "object_composition"),
        ],
    )
    def test_official_folder_names_are_aliases(self, alias, name):
        assert registry.tasks.canonical(alias) == name
        assert registry.get_task(alias) is registry.get_task(name)

    def test_group_expands_in_paper_order(self):
        assert registry.expand_task_names("micon") == PAPER_ORDER

    def test_globs_lists_and_dedup(self):
        assert registry.list_tasks("*_composition") == ["fgbg_composition", "object_composition", "spatial_composition"]
        assert registry.expand_task_names(["story_infer,object_composition", "object_*"]) == [
            "story_generation",
            "object_composition",
        ]

    def test_unknown_name_suggests_close_names(self):
        with pytest.raises(UnknownNameError) as err:
            registry.get_task("spatial_compositon")
        assert "Did you mean 'spatial_composition'" in str(err.value)
        with pytest.raises(KeyError):  # also a KeyError, as dict users expect
            registry.get_task("nope")
        with pytest.raises(UnknownNameError, match="No task matches"):
            registry.expand_task_names("zzz_*")

    def test_clash_warns_and_builtin_wins_unless_override(self):
        reg = Registry("thing")

        class A: ...

        class B: ...

        reg.add("x", A)
        with pytest.warns(UserWarning, match="clashes"):
            reg.add("x", B)
        assert reg.get("x") is A
        with pytest.warns(UserWarning, match="overridden"):
            reg.add("x", B, override=True)
        assert reg.get("x") is B


PLUGIN_MODULE = '''
from registry import register_task, register_adapter
from micon_tasks.task import MiconTask
from micon_tasks.config import TaskConfig
from adapters.base import ModelAdapter

@register_task("plugin_echo_task", aliases=("echo_alias",))
class EchoTask(MiconTask):
    config = TaskConfig.from_dict({
        "task": "plugin_echo_task", "official_folder": "object_composition",
        "checkpoints": [{"id": "A_check_1", "question": "Is it there?"}]})

@register_adapter("plugin_echo")
class EchoAdapter(ModelAdapter):
    def generate(self, refs, prompt, *, dar=None, seed=None, **kw):
        return refs[0]
'''


def _install_plugin(tmp_path, name: str, module_source: str, entry_points: str):
    """A real (if minimal) installed distribution: a module plus a .dist-info with entry points."""
    site = tmp_path / f"site_{name}"
    site.mkdir()
    (site / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return site


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    site = _install_plugin(
        tmp_path,
        "micon_echo_plugin",
        PLUGIN_MODULE,
        "[micon.tasks]\necho = micon_echo_plugin\n[micon.adapters]\necho = micon_echo_plugin:EchoAdapter\n",
    )
    broken = _install_plugin(
        tmp_path, "micon_broken_plugin", "raise ImportError('missing dependency zzz')\n", "[micon.tasks]\nbroken = micon_broken_plugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(broken))
    yield site, broken
    registry.tasks.remove("plugin_echo_task")
    registry.adapters.remove("plugin_echo")
    sys.modules.pop("micon_echo_plugin", None)


def test_plugin_distribution_adds_task_and_adapter_and_broken_plugin_is_reported(plugin_site):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.tasks.reload_plugins()
        registry.adapters.reload_plugins()
    messages = [str(w.message) for w in caught]
    assert any("micon_broken_plugin" in m and "missing dependency zzz" in m for m in messages), messages
    assert "plugin_echo_task" in registry.list_tasks()
    assert registry.tasks.canonical("echo_alias") == "plugin_echo_task"
    assert "plugin_echo" in registry.list_adapters()
    # the built-ins still work next to the broken plugin
    assert registry.get_task("story_infer").config.task == "story_generation"


def test_plugin_is_found_by_a_fresh_process_and_broken_one_warns(plugin_site):
    site, broken = plugin_site
    code = (
        "import warnings, registry; warnings.simplefilter('always');"
        "print(registry.list_tasks('plugin_*'), registry.list_adapters('plugin_*'), 'story_generation' in registry.list_tasks())"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}:{broken}:{REPO}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "['plugin_echo_task'] ['plugin_echo'] True" in out.stdout
    assert "micon_broken_plugin" in out.stderr
    for kind, name, builtin in (("tasks", "plugin_echo_task", "story_generation"), ("adapters", "plugin_echo", "collage")):
        ls = subprocess.run([sys.executable, "-m", "micon_tasks", "ls", kind], capture_output=True, text=True,
                            env=env, timeout=120)
        assert ls.returncode == 0, ls.stderr
        assert name in ls.stdout.split() and builtin in ls.stdout.split()
        if kind == "tasks":  # the broken plugin sits in the task group: reported, built-ins still listed
            assert "micon_broken_plugin" in ls.stderr and "missing dependency zzz" in ls.stderr


def test_a_broken_builtin_module_fails_the_same_way_on_every_lookup(tmp_path, monkeypatch):
    # registers one name, then fails: before the fix the second lookup saw a silently partial registry
    (tmp_path / "micon_half_builtin.py").write_text(
        "import registry\nregistry.tasks  # noqa\nREG = None\n"
        "def load():\n    REG.add('first', object())\n    raise RuntimeError('card 7 is broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import micon_half_builtin

    reg = Registry("thing", builtins=("micon_half_builtin:load",))
    micon_half_builtin.REG = reg
    messages = []
    for _ in range(3):
        with pytest.raises(registry.RegistryLoadError) as err:
            reg.get("first")
        messages.append(str(err.value))
    with pytest.raises(registry.RegistryLoadError):
        reg.list()
    assert len(set(messages)) == 1
    assert "'micon_half_builtin'" in messages[0] and "card 7 is broken" in messages[0]
    sys.modules.pop("micon_half_builtin", None)


def test_a_broken_builtin_is_one_line_from_the_cli(tmp_path):
    # a suite card folder whose card names a class that does not exist: every command stops with one line
    code = (
        "import sys, micon_tasks.index as ix; ix.BUILTIN_CARD_PACKAGES.append('broken_cards');"
        "from micon_tasks.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    pkg = tmp_path / "broken_cards"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.yaml").write_text("task: bad\nclass: broken_cards:Nope\ncheckpoints: [{id: A_check_1, question: q}]\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO}"}
    for argv in (["ls", "tasks"], ["validate", "--tasks", "micon", "--source", "sample"]):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "micon_tasks.index" in lines[0] and "broken_cards:Nope" in lines[0], out.stderr
