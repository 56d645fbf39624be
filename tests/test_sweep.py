"""``micon dar-sweep``: grid parsing and checking, and a sweep on the sample with a tiny diffusers adapter and a
loopback judge (each combination an ordinary, resumable run folder; sweep.json and sweep.md)."""

from __future__ import annotations

import json

import pytest
from fake_judge_server import FakeJudgeServer

from micon_tasks.cli import main
from micon_tasks.errors import ConfigError
from micon_tasks.sweep import combinations, markdown, parse_grid


def test_parse_grid_and_combinations():
    grid = parse_grid(["gamma=0.1,0.2", "tau_high=0.6,0.7", "thresholds=quantile"])
    assert grid == {"gamma": [0.1, 0.2], "tau_high": [0.6, 0.7], "thresholds": ["quantile"]}
    combos = combinations(grid, {"record_maps": True})
    assert len(combos) == 4 and combos[0] == {"record_maps": True, "gamma": 0.1, "tau_high": 0.6, "thresholds": "quantile"}
    for bad, match in ((["gama=0.1"], "not a DAR setting"), (["gamma"], "name=value1"), ([], "at least one"),
                       (["gamma=0.1", "gamma=0.2"], "twice")):
        with pytest.raises(ConfigError, match=match):
            parse_grid(bad)
    with pytest.raises(ConfigError, match="'tau_low': 0.7.*not a valid DAR setting"):
        combinations({"tau_low": [0.2, 0.7]})  # 0.7 is not below the default tau_high


def test_markdown_table():
    summary = {"model": "m", "tasks": ["t"], "grid": {"gamma": [0.1]}, "base_dar_args": {},
               "runs": [{"run": "m", "dar": None, "tasks": {"t": {"score": 0.5}}, "benchmark": {"avg": 0.5, "n_failed": 0}},
                        {"run": "m__dar_1", "dar": {"gamma": 0.1}, "tasks": {"t": {"score": 0.25}},
                         "benchmark": {"avg": 0.25, "n_failed": 1}}]}
    text = markdown(summary)
    assert "| run | gamma | avg | n_failed | t |" in text
    assert "| m | off | 0.5000 | 0 | 0.5000 |" in text and "| m__dar_1 | 0.1000 | 0.2500 | 1 | 0.2500 |" in text


@pytest.mark.slow
def test_dar_sweep_on_the_sample(tmp_path, capsys):
    pytest.importorskip("diffusers", reason="the diffusers extra is not installed")
    from micon_tasks.testing import tiny_pipelines as tp

    tp.tiny_omnigen(tmp_path / "pipe")
    margs = (f"pretrained={tmp_path / 'pipe'},device=cpu,dtype=float32,height=32,width=32,steps=2,"
             "guidance_scale=2.0,max_input_image_size=32,local_files_only=true")
    out = tmp_path / "sweep"
    with FakeJudgeServer() as server:
        argv = ["dar-sweep", "--model", "omnigen", "--model_args", margs, "--tasks", "object_composition",
                "--limit", "1", "--source", "sample", "--grid", "gamma=0.1,0.2", "--grid", "tau_high=0.6",
                "--dar_args", "record_maps=false", "--judge", "openai",
                "--judge_args", f"base_url={server.base_url},model=fake-judge,max_retries=0",
                "--output_path", str(out), "--no_progress"]
        assert main(argv) == 0, capsys.readouterr().err
        first_requests = len(server.requests)
        summary = json.loads((out / "sweep.json").read_text())
        assert [r["run"] for r in summary["runs"]] == ["omnigen", "omnigen__dar_1", "omnigen__dar_2"]
        assert summary["runs"][0]["dar"] is None
        assert [r["dar"] for r in summary["runs"][1:]] == [{"record_maps": False, "gamma": g, "tau_high": 0.6}
                                                             for g in (0.1, 0.2)]
        for r in summary["runs"]:
            folder = out / r["run"]
            results = json.loads((folder / "results.json").read_text())
            assert results["dar"] == (None if r["dar"] is None else {**results["dar"], **r["dar"]})
            assert r["tasks"]["object_composition"]["n_cases"] == 1 and r["benchmark"]["avg"] is not None
            rec = json.loads((folder / "samples_object_composition.jsonl").read_text().splitlines()[0])
            assert (rec["dar_stats"] is None) == (r["dar"] is None)
        images = {r["run"]: (out / r["run"] / "images").rglob("*.png") for r in summary["runs"]}
        assert len({next(p).read_bytes() for p in images.values()}) == 3  # each setting its own image
        assert "| omnigen__dar_2 | 0.2000 | 0.6000 |" in (out / "sweep.md").read_text()
        assert main(argv) == 0  # resumable: every run is complete, nothing is generated or judged again
        assert len(server.requests) == first_requests
