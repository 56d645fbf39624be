"""One judge per suite (issue 13): ``--judge micon=openai,mine=openai`` sends each suite's cases to its own judge,
records both judges, and refuses a task no judge covers, in one line."""

from __future__ import annotations

import json

import pytest
import test_runner_helpers as h  # noqa: F401 - registers test_collage
from fake_judge_server import FakeJudgeServer

from micon_tasks.cli import main
from micon_tasks.errors import ConfigError
from micon_tasks.runner.config import per_suite_args


def _suite_folder(tmp_path):
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "variant.yaml").write_text("task: fgbg_again\nclass: fgbg_composition\n")
    (folder / "mine.yaml").write_text("group: mine\nsuite: {kind: checkpoints, title: Mine}\ntask: [fgbg_again]\n")
    return folder


def test_each_suite_goes_to_its_own_judge(tmp_path, capsys):
    cards = _suite_folder(tmp_path)
    with FakeJudgeServer() as a, FakeJudgeServer() as b:
        code = main(["run", "--model", "test_collage", "--tasks", "object_composition,fgbg_again", "--limit", "2",
                     "--source", "sample", "--include_path", str(cards), "--output_path", str(tmp_path / "out"),
                     "--judge", "micon=openai,mine=openai",
                     "--judge_args", f"micon=base_url={a.base_url},micon=model=judge-a,mine=base_url={b.base_url},"
                                     f"mine=model=judge-b,micon=reask=0,mine=reask=0", "--no_progress"])
        assert code == 0, capsys.readouterr().err
        assert len(a.requests) == 2 and len(b.requests) == 2  # two cases each, each to its own server
    res = json.loads((tmp_path / "out" / "test_collage" / "results.json").read_text())
    assert res["judge"]["micon"]["model"] == "judge-a" and res["judge"]["mine"]["model"] == "judge-b"
    assert set(res["suites"]) == {"micon", "mine"} and res["suites"]["mine"]["tasks"] == ["fgbg_again"]


def test_a_task_without_a_judge_is_refused_in_one_line(tmp_path, capsys):
    code = main(["run", "--model", "test_collage", "--tasks", "object_composition,fgbg_composition", "--limit", "1",
                 "--source", "sample", "--output_path", str(tmp_path), "--judge", "elsewhere=openai", "--no_progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("micon: error:") == 1 and "has no judge in --judge" in err


def test_per_suite_args_forms():
    assert per_suite_args("a=x=1,b=y=z,a=w=2", ["a", "b"]) == {"a": {"x": 1, "w": 2}, "b": {"y": "z"}}
    assert per_suite_args('{"a": {"x": 1}}', ["a"]) == {"a": {"x": 1}}
    with pytest.raises(ConfigError, match="not a suite"):
        per_suite_args("c=x=1", ["a"])
    with pytest.raises(ConfigError, match="item 1 is not suite=key=value"):
        per_suite_args("x=1", ["a"])
