"""The task index (micon_tasks/index.py): built-in cards bound to the public classes, include_path folders
(built-in cards named by include:, variants that merge, reading a folder twice), plugin folders of cards,
strict YAML in task cards, and the card's scoring settings reaching the scorer."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from test_registry import _install_plugin

import micon_tasks.tasks as builtin
import registry
from micon_tasks.cli import main
from micon_tasks.errors import ConfigError
from micon_tasks.index import include_path, task_index
from micon_tasks.task import load_task
from micon_tasks.types import Case, JudgeResult, Verdict


@pytest.fixture
def folder(tmp_path):
    """A folder of user cards whose tasks and groups are forgotten after the test."""
    inc = tmp_path / "cards"
    inc.mkdir()
    yield inc
    for file in sorted(inc.rglob("*.yaml")):
        task_index()._forget(file.resolve())


def _case(task) -> Case:
    return Case(task=task.name, case_id="c1", refs=[], ref_roles=[], prompt="p")


def test_the_six_public_classes_are_the_registered_tasks():
    for name, cls in [("object_composition", builtin.ObjectComposition), ("spatial_geometric_constraints", builtin.SpatialComposition),
                      ("attribute_disentanglement", builtin.AttributeDisentanglement),
                      ("component_transfer", builtin.ComponentTransfer), ("fgbg_composition", builtin.FgBgComposition),
                      ("story_infer", builtin.StoryGeneration)]:
        assert registry.get_task(name) is cls
        assert task_index().is_builtin(cls.config.source_file)
    assert registry.suites.get("micon")["tasks"][0] == "object_composition"


def test_include_may_name_a_built_in_card(folder):
    (folder / "my_spatial.yaml").write_text("task: my_spatial\ninclude: spatial_composition.yaml\ndescription: mine\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the built-in card's aliases must not clash: names are never inherited
        report = include_path(folder)
    assert report.tasks == ["my_spatial"] and not report.errors
    t = load_task("my_spatial", source="sample")
    assert t.config.official_folder == "spatial_geometric_constraints" and t.config.description == "mine"
    assert len(t.checkpoints) == 16 and len(t) == 5 and isinstance(t, builtin.SpatialComposition)
    assert registry.get_task("spatial_composition").config.description != "mine"  # the built-in is untouched


def test_reading_a_folder_twice_sees_edits_and_never_clashes_with_itself(folder):
    card = folder / "variant.yaml"
    card.write_text("task: variant_a\nclass: object_composition\ndescription: first\n")
    (folder / "group.yaml").write_text("group: mine\ntask: [variant_a]\n")
    include_path(folder)
    card.write_text("task: variant_a\nclass: object_composition\ndescription: second\naliases: [va]\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = include_path(folder)
    assert report.tasks == ["variant_a"] and report.groups == ["mine"]
    assert registry.get_task("va").config.description == "second"
    card.write_text("task: variant_b\nclass: object_composition\n")  # renamed: the old name goes
    include_path(folder)
    assert "variant_a" not in registry.tasks and "va" not in registry.tasks and "variant_b" in registry.tasks


def test_a_variant_names_a_task_defined_later_in_the_same_folder(folder):
    (folder / "a_variant.yaml").write_text("task: a_variant\nclass: z_base\n")
    (folder / "z_base.yaml").write_text("task: z_base\ninclude: object_composition.yaml\n")
    report = include_path(folder)
    assert sorted(report.tasks) == ["a_variant", "z_base"] and not report.errors


def test_story_variant_overriding_only_hard_cap_keeps_the_story_hybrid(folder):
    (folder / "story_nocap.yaml").write_text("task: story_nocap\nclass: story_generation\nscoring: {hard_cap: 0.0}\n")
    include_path(folder)
    cfg = registry.get_task("story_nocap").config
    assert cfg.scoring.story_hybrid is True and cfg.scoring.hard_cap == 0.0
    task = registry.get_task("story_nocap")(source="sample")
    verdicts = [Verdict(cp.id, "pass") for cp in task.checkpoints]
    score = task.score_case(_case(task), JudgeResult(verdicts, answer_set_score=4.0, answer_set_status="pass"))
    assert score.score == pytest.approx(40 * 1.0 + 6 * 4.0)  # the hybrid: 64.0, not 100 x mean


def test_the_cards_hard_cap_reaches_the_scorer(folder):
    rows = "\n".join(f"  - {{id: A_check_{i}, question: 'q{i}?'{', hard: true' if i == 1 else ''}}}" for i in range(1, 21))
    (folder / "capped.yaml").write_text(
        f"task: capped_09\nofficial_folder: object_composition\nscoring: {{hard_cap: 0.9}}\ncheckpoints:\n{rows}\n"
        "  - {id: B_check_1, question: 'b?', hard: true}\n  - {id: B_check_2, question: 'b2?'}\n")
    include_path(folder)
    task = registry.get_task("capped_09")(source="sample")
    # A: the hard A_check_1 fails, 19/20 = 0.95 pass -> min(0.95, 0.9); B: 1/2 = 0.5 stays under the cap
    verdicts = [Verdict(cp.id, "fail" if cp.id in ("A_check_1", "B_check_1") else "pass") for cp in task.checkpoints]
    score = task.score_case(_case(task), JudgeResult(verdicts))
    assert score.dimensions == pytest.approx({"A": 0.9, "B": 0.5})


def test_an_alias_bomb_in_a_task_card_is_refused_naming_the_card(folder):
    (folder / "bomb.yaml").write_text(
        "task: bomb\ninclude: object_composition.yaml\n"
        "a0: &a0 [lol, lol, lol]\na1: &a1 [*a0, *a0, *a0]\ndescription: [*a1, *a1]\n")
    with pytest.warns(UserWarning, match="bomb.yaml"):
        report = include_path(folder)
    assert report.tasks == [] and "alias" in report.errors[0][1] and report.errors[0][0].endswith("bomb.yaml")


def test_a_repeated_key_in_a_task_card_is_refused(folder):
    (folder / "twice.yaml").write_text("task: twice\ninclude: object_composition.yaml\ndescription: a\ndescription: b\n")
    with pytest.warns(UserWarning, match="twice.yaml"):
        report = include_path(folder)
    assert report.tasks == [] and "'description' is repeated" in report.errors[0][1]


def test_an_unknown_include_names_where_it_looked(tmp_path):
    from micon_tasks.config import read_yaml

    (tmp_path / "t.yaml").write_text("task: t\ninclude: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="include 'nowhere.yaml' is neither beside the card nor a built-in card"):
        read_yaml(tmp_path / "t.yaml", search=task_index().builtin_folders())


def test_ls_tasks_lists_an_include_path(folder, capsys):
    (folder / "listed.yaml").write_text("task: listed_variant\nclass: fgbg_composition\n")
    assert main(["ls", "tasks", "--include_path", str(folder)]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert "listed_variant" in names and "story_generation" in names
    (folder / "broken.yaml").write_text("task: [unclosed\n")
    assert main(["ls", "tasks", "--include_path", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.yaml" in err[0] and err[0].startswith("micon: error:")


def test_a_plugin_may_ship_a_folder_of_cards(tmp_path, monkeypatch):
    cards = tmp_path / "plugin_cards"
    cards.mkdir()
    (cards / "plugged.yaml").write_text("task: plugged_task\nclass: component_transfer\n")
    site = _install_plugin(tmp_path, "micon_cards_plugin", f"from pathlib import Path\nCARDS = Path({str(cards)!r})\n",
                           "[micon.tasks]\ncards = micon_cards_plugin:CARDS\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        registry.tasks.reload_plugins()
        assert registry.get_task("plugged_task").config.official_folder == "local_element_transfer"
    finally:
        task_index()._forget((cards / "plugged.yaml").resolve())
    assert "plugged_task" not in registry.tasks


def test_group_files_are_read_after_tasks_and_suites_register(folder):
    (folder / "a_suite.yaml").write_text("group: tiny_suite\nsuite: {kind: checkpoints, title: Tiny}\ntask: [tiny_task]\n")
    (folder / "b_task.yaml").write_text("task: tiny_task\nclass: object_composition\n")
    report = include_path(folder)
    assert report.groups == ["tiny_suite"] and registry.suites.get("tiny_suite")["title"] == "Tiny"
    assert registry.expand_task_names("tiny_suite") == ["tiny_task"]
    assert Path(registry.tasks.source("tiny_task")).name == "b_task.yaml"


SUITE_INIT = '''
from micon_tasks.scoring import CheckpointsKind
from registry import scoring_kinds

class TinyKind(CheckpointsKind):
    name = "tiny_kind"

scoring_kinds.add("tiny_kind", TinyKind())  # on import: the cards below name it
'''
SUITE_TASKS = '''
from micon_tasks.task import Task

class TinyLoader(Task):
    """Shared by both cards of the suite."""
'''
SUITE_CARD = """task: {name}
class: fake_suites.tiny.tasks:TinyLoader
official_folder: object_composition
scoring: {{kind: tiny_kind}}
checkpoints: [{{id: A_check_1, question: q}}]
"""


def test_a_suite_package_brings_its_cards(tmp_path):
    """A suite sub-package of a card package: imported before its cards are read (its scoring kind is
    there), a class named by two cards is subclassed per card, and deeper folders are not cards."""
    import os
    import subprocess
    import sys

    suite = tmp_path / "fake_suites" / "tiny"
    (suite / "sample" / "cases").mkdir(parents=True)
    (tmp_path / "fake_suites" / "__init__.py").write_text("")
    (suite / "__init__.py").write_text(SUITE_INIT)
    (suite / "tasks.py").write_text(SUITE_TASKS)
    for name in ("tiny_a", "tiny_b"):
        (suite / f"{name}.yaml").write_text(SUITE_CARD.format(name=name))
    (suite / "tiny.yaml").write_text("group: tiny\nsuite: {kind: tiny_kind, title: Tiny}\ntask: [tiny_a, tiny_b]\n")
    (suite / "sample" / "cases" / "case_1.yaml").write_text("case_id: case_1\nprompt: not a task card\n")
    code = (
        "import micon_tasks.index as ix, registry; ix.BUILTIN_CARD_PACKAGES.append('fake_suites');"
        "from fake_suites.tiny.tasks import TinyLoader;"
        "a, b = registry.get_task('tiny_a'), registry.get_task('tiny_b');"
        "print(a is not TinyLoader and b is not TinyLoader and issubclass(a, TinyLoader) and issubclass(b, TinyLoader),"
        " a.config.scoring.kind, registry.expand_task_names('tiny'), registry.suites.get('tiny')['title'],"
        " ix.task_index().is_builtin(a.config.source_file))"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[1]}"}
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "tiny_kind", "['tiny_a',", "'tiny_b']", "Tiny", "True"]
