"""Data parallelism on the CPU: ``torchrun --nproc-per-node 2`` (gloo) gives the same samples as one
process, byte for byte apart from timings; a rank that fails fails the whole job without a hang."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import test_runner_helpers as h
from fake_judge_server import FakeJudgeServer

from micon_tasks.cli import main

TORCHRUN = str(Path(h.PYTHON).parent / "torchrun")
TASKS = ["object_composition", "story_generation", "component_transfer"]
MODEL = "test_seeded"  # its images depend on the case seed: a seed that depended on sharding would show


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(out: Path, base_url: str) -> list[str]:
    return ["run", "--model", MODEL, "--tasks", *TASKS, "--limit", "3", "--source", "sample",
            "--judge", "openai", "--judge_args", f"base_url={base_url},model=fake,concurrency=2,max_retries=0",
            "--output_path", str(out), "--no_progress", "--verbosity", "WARNING"]


def _torchrun(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(_port()),
           "--no-python", h.PYTHON, "-c", h.RUNNER_ENTRY, *args]
    return subprocess.run(cmd, cwd=h.ROOT, env=env, capture_output=True, timeout=timeout)


def test_two_processes_match_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("MICON_TEST_FAIL_CASES", "story_infer_0002")
    env = h.subprocess_env(MICON_DIST_TIMEOUT="60")
    with FakeJudgeServer(h.varied_reply) as srv:
        assert main(_args(tmp_path / "one", srv.base_url)) == 0  # one process, in this one
        two = _torchrun(_args(tmp_path / "two", srv.base_url), env)
        assert two.returncode == 0, two.stderr.decode()[-3000:]
    d1, d2 = tmp_path / "one" / MODEL, tmp_path / "two" / MODEL
    shards = sorted(p.name for p in (d2 / "shards").glob("*.jsonl"))
    assert any("rank1" in s for s in shards) and any("rank0" in s for s in shards), shards
    assert h.samples_bytes(d1) == h.samples_bytes(d2) and len(h.samples_bytes(d1)) == len(TASKS)
    s1, s2 = (sorted(p.relative_to(d).as_posix() for p in (d / "images").rglob("*.png")) for d in (d1, d2))
    assert s1 == s2 and len(s1) == 3 * len(TASKS) - 1
    assert all((d1 / p).read_bytes() == (d2 / p).read_bytes() for p in s1)
    # only rank 0 printed the table
    assert two.stdout.decode().count("| Object |") == 1


def test_a_failing_rank_fails_the_job_with_its_error(tmp_path):
    """Two ranks started by hand (what a launcher does: RANK, WORLD_SIZE, MASTER_ADDR/PORT); rank 1 has a bug."""
    port = str(_port())
    with FakeJudgeServer(h.varied_reply) as srv:
        procs = [
            subprocess.Popen([h.PYTHON, "-c", h.RUNNER_ENTRY, *_args(tmp_path, srv.base_url)], cwd=h.ROOT,
                             env=h.subprocess_env(MICON_TEST_CRASH_RANK="1", MICON_DIST_TIMEOUT="60", RANK=str(r),
                                                  LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for r in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
    rank0_err, rank1_err = outs[0][1].decode(), outs[1][1].decode()
    assert procs[0].returncode != 0 and procs[1].returncode != 0
    assert "scripted bug on rank 1" in rank1_err and "Traceback" in rank1_err  # a bug keeps its traceback
    assert "rank 1 of 2 failed during generation: RuntimeError: scripted bug on rank 1" in rank0_err  # named, no hang
    assert "Traceback" not in rank0_err
    assert not (tmp_path / MODEL / "results.json").exists()


def test_the_dist_model_depends_on_the_seed():
    """What makes the comparison above meaningful: the same case under another seed is another image."""
    from PIL import Image

    from adapters import load_adapter

    model = load_adapter(MODEL)
    refs = [Image.new("RGB", (20, 20), "red"), Image.new("RGB", (24, 20), "blue")]
    a, b, again = (model.generate(refs, "p", seed=s).tobytes() for s in (1, 2, 1))
    assert a != b and a == again
