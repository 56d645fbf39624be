"""One judge per suite (issue 13): ``--judge micon=openai,per_suite_probe=openai`` sends each suite's cases to its own judge,
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
    (folder / "variant.yaml").write_text("task: fgbg_per_suite_probe\nclass: fgbg_composition\n")
    (folder / "mine.yaml").write_text("group: per_suite_probe\nsuite: {kind: checkpoints, title: Probe}\ntask: [fgbg_per_suite_probe]\n")
    return folder


def test_each_suite_goes_to_its_own_judge(tmp_path, capsys):
    cards = _suite_folder(tmp_path)
    with FakeJudgeServer() as a, FakeJudgeServer() as b:
        code = main(["run", "--model", "test_collage", "--tasks", "object_composition,fgbg_per_suite_probe", "--limit", "2",
                     "--source", "sample", "--include_path", str(cards), "--output_path", str(tmp_path / "out"),
                     "--judge", "micon=openai,per_suite_probe=openai",
                     "--judge_args", f"micon=base_url={a.base_url},micon=model=judge-a,per_suite_probe=base_url={b.base_url},"
                                     f"per_suite_probe=model=judge-b,micon=reask=0,per_suite_probe=reask=0", "--no_progress"])
        assert code == 0, capsys.readouterr().err
        assert len(a.requests) == 2 and len(b.requests) == 2  # two cases each, each to its own server
    res = json.loads((tmp_path / "out" / "test_collage" / "results.json").read_text())
    assert res["judge"]["micon"]["model"] == "judge-a" and res["judge"]["per_suite_probe"]["model"] == "judge-b"
    assert set(res["suites"]) == {"micon", "per_suite_probe"} and res["suites"]["per_suite_probe"]["tasks"] == ["fgbg_per_suite_probe"]


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


@pytest.mark.slow
def test_micon_and_xversebench_in_one_run_each_with_its_judge(tmp_path, monkeypatch):
    """The issue's case: MICON's checkpoints need a VLM judge, XVerseBench's metrics their own judges."""
    from micon_tasks.suites.xversebench.testing import build_tiny_dino, build_tiny_siglip, save_random_aes_head

    monkeypatch.setenv("MICON_CACHE_DIR", str(tmp_path / "cache"))
    save_random_aes_head(tmp_path / "head.pth")
    xverse = {"device": "cpu", "vqa": "hf", "vqa_args": "pretrained=micon-tiny-random;mode=logits;device=cpu",
              "face_weights": "micon-random", "face_units": "1-1-1-1", "face_detector": "micon-stub",
              "detector": "micon-stub", "segmenter": "micon-stub", "dino": str(build_tiny_dino(tmp_path / "dino")),
              "siglip": str(build_tiny_siglip(tmp_path / "siglip")), "aes_head": str(tmp_path / "head.pth"),
              "aes_dtype": "float32"}
    base = ["run", "--model", "test_collage", "--tasks", "fgbg_composition,xversebench_single", "--limit", "1",
            "--source", "sample", "--output_path", str(tmp_path / "out"), "--no_progress"]
    assert main([*base, "--judge", "openai"]) == 2  # one judge that cannot score metrics: refused up front
    with FakeJudgeServer() as server:
        args = json.dumps({"micon": {"base_url": server.base_url, "model": "fake", "reask": 0}, "xversebench": xverse})
        assert main([*base, "--judge", "micon=openai,xversebench=xversebench", "--judge_args", args]) == 0
        assert len(server.requests) == 1  # only the MICON case went to the VLM judge
    res = json.loads((tmp_path / "out" / "test_collage" / "results.json").read_text())
    assert set(res["suites"]) == {"micon", "xversebench"}
    assert res["results"]["fgbg_composition"]["n_cases"] == 1 and res["results"]["xversebench_single"]["n_cases"] == 1
    assert res["benchmark"]["n_cases"] == 1  # MICON's keys cover MICON's tasks only
    assert res["judge"]["xversebench"]["backend"] != res["judge"]["micon"]["backend"]
