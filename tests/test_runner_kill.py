"""SIGKILL mid-generation and mid-judging, then the same command again: nothing lost, nothing twice.

The CLI runs as a subprocess with a slowed adapter (``MICON_TEST_GEN_DELAY``) and a slowed loopback
judge; it is killed with SIGKILL once some records are on disk, and the final samples must equal a
clean run's byte for byte apart from timings.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import test_runner_helpers as h
from fake_judge_server import FakeJudgeServer

from micon_tasks import evaluate
from micon_tasks.cli import main

TASKS = ["object_composition", "story_generation", "fgbg_composition"]
LIMIT = 4
N = len(TASKS) * LIMIT
FAIL = "object_composition_0003"


class Delay:
    """A responder whose delay the test changes between runs."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, body, seen):
        return h.varied_reply(body, seen, self.seconds)


def _count(folder: Path, stage: str) -> int:
    return sum(len(p.read_bytes().split(b"\n")) - 1 for p in folder.glob(f"shards/{stage}_*.jsonl"))


def _ids(folder: Path, stage: str, *, torn_ok: bool = False) -> list[str]:
    """Case ids of a stage's records; ``torn_ok`` skips a final line cut by a kill (the runner redoes it)."""
    ids = []
    for p in folder.glob(f"shards/{stage}_*.jsonl"):
        lines = p.read_text().split("\n")
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                ids.append(json.loads(line)["case_id"])
            except ValueError:
                if not (torn_ok and i == len(lines) - 1):
                    raise
    return ids


def _requests_per_case(case_id: str) -> int:
    return 2 if case_id.startswith("story_infer") else 1  # the story answer set is a second call


def _args(out: Path, base_url: str) -> list[str]:
    return ["run", "--model", "test_collage", "--tasks", *TASKS, "--limit", str(LIMIT), "--source", "sample",
            "--judge", "openai", "--judge_args", f"base_url={base_url},model=fake,concurrency=2,max_retries=0",
            "--output_path", str(out), "--no_progress", "--verbosity", "WARNING"]


def _cli(out: Path, base_url: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([h.PYTHON, "-c", h.RUNNER_ENTRY, *_args(out, base_url)], cwd=h.ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, folder: Path, stage: str, at_least: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = _count(folder, stage)
        if n >= at_least:
            proc.kill()  # SIGKILL: no handler, no cleanup
            proc.wait(10)
            return n
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended before it could be killed (rc {proc.returncode}): {err.decode()[-2000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no {at_least} {stage} records within {timeout} s")


def test_sigkill_mid_generation_and_mid_judging_then_resume(tmp_path, monkeypatch, capsys):
    delay = Delay()
    with FakeJudgeServer(delay) as srv:
        # the clean reference, in-process
        monkeypatch.setenv("MICON_TEST_FAIL_CASES", FAIL)
        clean_dir = tmp_path / "clean"
        evaluate(model="test_collage", tasks=TASKS, limit=LIMIT, source="sample", judge="openai",
                 judge_args={"base_url": srv.base_url, "model": "fake", "concurrency": 2, "max_retries": 0},
                 output_path=clean_dir, progress=False)
        clean_requests = len(srv.requests)

        out = tmp_path / "killed"
        folder = out / "test_collage"
        calls = tmp_path / "calls.txt"
        env = h.subprocess_env(MICON_TEST_FAIL_CASES=FAIL, MICON_TEST_CALLS_FILE=str(calls), MICON_TEST_GEN_DELAY="0.25")
        # 1. killed while generating
        n_gen = _kill_when(_cli(out, srv.base_url, env), folder, "generate", 3)
        assert 3 <= n_gen < N and _count(folder, "judge") == 0
        # 2. resumed, then killed while judging (the judge now answers slowly)
        delay.seconds = 0.3
        env["MICON_TEST_GEN_DELAY"] = "0"
        n_judge = _kill_when(_cli(out, srv.base_url, env), folder, "judge", 4)
        assert _count(folder, "generate") == N and 4 <= n_judge < N - 1
        judged_at_kill = _ids(folder, "judge", torn_ok=True)
        mark = len(srv.requests)  # the killed process asks nothing more
        # 3. resumed to the end (in this process: the kills are done)
        delay.seconds = 0.0
        monkeypatch.setenv("MICON_TEST_CALLS_FILE", str(calls))
        assert main(_args(out, srv.base_url)) == 0
        assert "| Object |" in capsys.readouterr().out

    # nothing lost, nothing twice: every case once in each stage's records ...
    for stage, expected in (("generate", N), ("judge", N - 1)):  # the refused case is never judged
        ids = _ids(folder, stage)
        assert len(ids) == len(set(ids)) == expected, stage
    # ... at most the one case in flight at the kill was generated twice, and the resumed run asked the judge
    # exactly for the cases without a judge record (one request a case, two for a story case)
    assert N <= len(calls.read_text().splitlines()) <= N + 1
    assert clean_requests == sum(_requests_per_case(c) for c in _ids(folder, "judge"))
    assert len(srv.requests) - mark == clean_requests - sum(_requests_per_case(c) for c in judged_at_kill)
    # and the outcome equals the clean run's, byte for byte apart from timings
    assert h.samples_bytes(folder) == h.samples_bytes(clean_dir / "test_collage")
    assert len(h.samples_bytes(folder)) == len(TASKS)
