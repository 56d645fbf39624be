"""The ``micon`` command: listings, validation, and every user-error path (one line, exit 2, no traceback)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import test_runner_helpers as h
from fake_judge_server import FakeJudgeServer
from raw_fixture import edit_card, make_raw

from micon_tasks.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def _err(capsys, argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


def _run(tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--model", "collage", "--tasks", "object_composition", "--limit", "1", "--source", "sample",
            "--output_path", str(tmp_path), "--no_progress", *extra]


def test_ls(capsys):
    assert main(["ls", "tasks"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "spatial_composition  (aliases: spatial_geometric_constraints)" in out and "object_composition" in out
    assert main(["ls", "adapters"]) == 0 and "collage" in capsys.readouterr().out.split()
    assert main(["ls", "judges"]) == 0 and {"hf", "openai"} <= set(capsys.readouterr().out.split())
    assert main(["ls", "groups"]) == 0 and capsys.readouterr().out.startswith("micon: object_composition")


def test_validate_prints_counts(capsys):
    assert main(["validate", "--tasks", "micon", "--source", "sample"]) == 0
    out = capsys.readouterr().out
    assert "story_generation" in out and out.strip().splitlines()[-1].split() == ["total", "30"]


def test_validate_stops_at_the_first_invalid_case(tmp_path, capsys, fresh_cache):
    root = make_raw(tmp_path / "raw")
    edit_card(root, "spatial_composition", "spatial_geometric_constraints_001", generation_prompt=None)
    err = _err(capsys, ["validate", "--tasks", "micon", "--source", str(root)])
    assert "task 'spatial_composition', case 'spatial_geometric_constraints_001', field 'prompt'" in err


def test_validate_reports_include_path_yaml_errors(tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text("task: [unclosed\n")
    assert main(["validate", "--tasks", "object_composition", "--source", "sample", "--include_path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "invalid YAML" in err


@pytest.mark.parametrize("argv_tail, expected", [
    (["--tasks", "object_compositon"], "Unknown task 'object_compositon'. Did you mean 'object_composition'"),
    (["--model", "colage"], "Unknown adapter 'colage'. Did you mean 'collage'"),
    (["--judge", "opnai"], "Unknown judge 'opnai'. Did you mean 'openai'"),
    (["--model_args", "width"], "--model_args: item 1 of 1 is not key=value"),
    (["--model_args", "colour=red"], "adapter 'collage' does not accept 'colour'; accepted arguments: height, width"),
    (["--judge_args", "{bad json"], "--judge_args: not valid JSON"),
    (["--dar"], "adapter 'collage' cannot apply DAR"),
    (["--seed", "x"], None),  # argparse: exit 2 with usage
    (["--limit", "0"], None),
])
def test_user_errors_are_one_line(tmp_path, capsys, argv_tail, expected):
    argv = _run(tmp_path)
    for i in range(0, len(argv_tail), 2):  # replace or add each flag
        flag, value = argv_tail[i], argv_tail[i + 1] if i + 1 < len(argv_tail) else None
        if flag in argv and value is not None:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag] + ([value] if value is not None else [])
    if expected is None:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        return
    assert expected in _err(capsys, argv)


def test_unreachable_judge_prints_the_vllm_command_before_generating(tmp_path, capsys):
    err = _err(capsys, _run(tmp_path, "--judge", "openai", "--judge_args", f"base_url=http://127.0.0.1:{_closed_port()}/v1"))
    assert "does not answer" in err and "vllm serve Qwen/Qwen3-VL-32B-Instruct --tensor-parallel-size" in err
    assert not list(tmp_path.glob("collage/images/*/*.png"))  # failed fast: nothing generated


def test_default_judge_is_the_local_vllm_server(tmp_path, capsys, monkeypatch):
    from micon_tasks.runner import DEFAULT_JUDGE_ARGS

    monkeypatch.setitem(DEFAULT_JUDGE_ARGS, "base_url", f"http://127.0.0.1:{_closed_port()}/v1")
    assert "vllm serve" in _err(capsys, _run(tmp_path))


def test_changed_configuration_and_missing_runs(tmp_path, capsys):
    with FakeJudgeServer(h.varied_reply) as srv:
        jargs = ["--judge", "openai", "--judge_args", f"base_url={srv.base_url},model=fake"]
        assert main(_run(tmp_path, *jargs)) == 0
        out = capsys.readouterr().out
        assert "| Object |" in out and "results.json" in out
        err = _err(capsys, _run(tmp_path, *jargs, "--seed", "3"))
        assert "seed: 0 -> 3" in err and "--overwrite" in err
        assert main(_run(tmp_path, *jargs, "--seed", "3", "--overwrite")) == 0
        capsys.readouterr()
        assert main(["aggregate", str(tmp_path)]) == 0 and "| Object |" in capsys.readouterr().out
    assert "holds no micon run" in _err(capsys, ["judge", str(tmp_path / "nothing")])
    assert "holds no micon run" in _err(capsys, ["aggregate", str(tmp_path / "nothing")])


def test_generate_subcommand_and_bare_flags_mean_run(tmp_path, capsys):
    assert main(["generate", *_run(tmp_path)[1:]]) == 0
    assert "generated 1 cases" in capsys.readouterr().out
    assert (tmp_path / "collage" / "samples_object_composition.jsonl").exists()
    assert "Unknown task" in _err(capsys, ["--model", "collage", "--tasks", "nope", "--output_path", str(tmp_path)])


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    import micon_tasks.runner.pipeline as pipeline

    def broken(cfg):
        raise ZeroDivisionError("a real bug")

    monkeypatch.setattr(pipeline, "_load_tasks", broken)
    with pytest.raises(ZeroDivisionError):
        main(_run(tmp_path, "--predict_only"))


def test_cli_subprocess_user_error_has_no_traceback(tmp_path):
    res = subprocess.run([h.PYTHON, "-m", "micon_tasks", *_run(tmp_path, "--tasks", "nope")], cwd=h.ROOT,
                         env=h.subprocess_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().startswith("micon: error: Unknown task 'nope'") and "Traceback" not in res.stderr


def test_tiny_random_judge_is_built_on_first_use_and_says_its_scores_mean_nothing(tmp_path, capsys, fresh_cache):
    argv = _run(tmp_path, "--judge", "hf", "--judge_args", "pretrained=micon-tiny-random,mode=logits,batch_size=16")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "MEAN NOTHING" in out and "| Object |" in out
    assert (fresh_cache / "models" / "micon-tiny-random" / "config.json").exists()
    assert "MEAN NOTHING" in (tmp_path / "collage" / "results.md").read_text()


# -- the optional publish command (audit 16) ------------------------------------------------------
class _BrokenPublish:
    """A meta-path finder under which ``micon_tasks.publish`` exists but one of its imports is missing."""

    def find_spec(self, name, path=None, target=None):
        if name == "micon_tasks.publish":
            raise ModuleNotFoundError("No module named 'jinja2_missing_dep'", name="jinja2_missing_dep")
        return None


def _forget_publish(monkeypatch):
    import sys

    import micon_tasks

    monkeypatch.delattr(micon_tasks, "publish", raising=False)
    for mod in [m for m in sys.modules if m == "micon_tasks.publish" or m.startswith("micon_tasks.publish.")]:
        monkeypatch.delitem(sys.modules, mod)


def test_a_broken_publish_package_is_reported_not_hidden(monkeypatch):
    import sys

    from micon_tasks.cli import build_parser

    _forget_publish(monkeypatch)
    monkeypatch.setattr(sys, "meta_path", [_BrokenPublish(), *sys.meta_path])
    with pytest.raises(ImportError, match="jinja2_missing_dep"):
        build_parser()


def test_the_cli_works_without_the_publish_package(monkeypatch, capsys):
    import sys

    _forget_publish(monkeypatch)
    monkeypatch.setitem(sys.modules, "micon_tasks.publish", None)  # the module itself is absent
    assert main(["ls", "judges"]) == 0 and "openai" in capsys.readouterr().out.split()


def test_publish_is_a_subcommand_when_installed(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["publish", "--help"])
    assert exc.value.code == 0 and "--repo-id" in capsys.readouterr().out


# -- secrets never echoed (audit 1) ---------------------------------------------------------------
SECRET = "sk-LEAKED-3f9a1c77"


def test_judge_with_a_secret_is_refused_without_echoing_it(tmp_path, capsys):
    with FakeJudgeServer(h.varied_reply) as srv:
        assert main(_run(tmp_path, "--judge", "openai", "--judge_args", f"base_url={srv.base_url},model=fake")) == 0
        before = (tmp_path / "collage" / "run_config.json").read_bytes()
        capsys.readouterr()
        for jargs in (f"base_url={srv.base_url},model=fake,api_key={SECRET}",
                      f"base_url={srv.base_url}?key={SECRET},model=fake",
                      f"base_url={srv.base_url},model=other,access_key={SECRET}"):
            assert main(["judge", str(tmp_path), "--judge", "openai", "--judge_args", jargs]) == 2
            captured = capsys.readouterr()
            assert SECRET not in captured.err + captured.out
            assert "environment" in captured.err and "Traceback" not in captured.err
            # the same through --judge_args alone (keeping the recorded judge)
            assert main(["judge", str(tmp_path), "--judge_args", jargs]) == 2
            captured = capsys.readouterr()
            assert SECRET not in captured.err + captured.out and "environment" in captured.err
        for argv in (_run(tmp_path, "--judge", "openai", "--judge_args", f"base_url={srv.base_url},model=fake,token={SECRET}"),
                     ["generate", *_run(tmp_path, "--model_args", f"width=48,auth={SECRET}")[1:]]):
            assert main(argv) == 2
            captured = capsys.readouterr()
            assert SECRET not in captured.err + captured.out and "environment" in captured.err
    assert (tmp_path / "collage" / "run_config.json").read_bytes() == before  # nothing written
    assert SECRET not in "".join(p.read_text(errors="replace") for p in (tmp_path / "collage").rglob("*.json*"))


def test_version_prints_and_exits(capsys):
    import micon_tasks

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"micon {micon_tasks.__version__}"


def test_weights_that_cannot_load_are_one_line_and_verbose_shows_the_rest(tmp_path, capsys):
    """Issue 11 item 33: a diffusers adapter whose weights cannot load ends in one line; --verbose adds the traceback."""
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "model_index.json").write_text('{"_class_name": "OmniGenPipeline", "transformer": ["nowhere", "Nothing"]}')
    args = ["generate", "--model", "omnigen", "--model_args", f"pretrained={weights},device=cpu", "--tasks",
            "fgbg_composition", "--limit", "1", "--source", "sample", "--output_path", str(tmp_path / "out"), "--no_progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("micon: error:") == 1 and "cannot load the weights" in err and "Traceback" not in err
    assert main([*args, "--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("micon: error:")
