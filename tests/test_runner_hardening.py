"""Failures an adversarial review found in the runner (issue 11): two processes on one folder, a file where
the output folder should be, a full disk, a lone surrogate in a record. Each ends in one clear line and loses
nothing already computed."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import test_runner_helpers as h

from micon_tasks.cli import main
from micon_tasks.runner.records import RecordWriter, read_records


def _micon(out: Path, *extra: str, env: dict[str, str]) -> subprocess.Popen:
    args = ["generate", "--model", "test_collage", "--tasks", "fgbg_composition", "--source", "sample",
            "--output_path", str(out), "--no_progress", "--verbosity", "WARNING", *extra]
    return subprocess.Popen([h.PYTHON, "-c", h.RUNNER_ENTRY, *args], cwd=h.ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _records(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("shards/generate_*.jsonl")) for r in read_records(p)]


@pytest.mark.slow
def test_a_second_process_on_the_same_folder_is_refused_and_a_killed_holder_blocks_nothing(tmp_path):
    env = h.subprocess_env(MICON_TEST_GEN_DELAY="1.5")
    first = _micon(tmp_path, env=env)
    folder = tmp_path / "test_collage"
    deadline = time.monotonic() + 60
    while not _records(folder) and time.monotonic() < deadline:  # the first one is working (it holds the lock)
        time.sleep(0.1)
    assert _records(folder), "the first process never wrote a record"
    second = _micon(tmp_path, env=h.subprocess_env())
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2
    lines = [x for x in err.strip().splitlines() if x.startswith("micon: error:")]
    assert len(lines) == 1 and str(folder) in lines[0] and f"pid {first.pid}" in lines[0], err
    assert "Traceback" not in err

    first.send_signal(signal.SIGKILL)  # a stale lock: the kernel released it with its holder
    first.wait(timeout=30)
    done_before = {r["case_id"] for r in _records(folder)}
    third = _micon(tmp_path, env=h.subprocess_env())
    _, err = third.communicate(timeout=120)
    assert third.returncode == 0, err
    ids = [r["case_id"] for r in _records(folder)]
    assert len(ids) == len(set(ids)) == 5 and done_before <= set(ids)  # resumed: nothing lost, nothing twice


def test_output_path_that_is_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    code = main(["generate", "--model", "test_collage", "--tasks", "fgbg_composition", "--source", "sample",
                 "--output_path", str(blocker), "--no_progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("micon: error:") == 1 and "is a file" in err and "Traceback" not in err


def test_full_disk_is_one_line_and_the_resume_loses_nothing(tmp_path, capsys, monkeypatch):
    args = ["generate", "--model", "test_collage", "--tasks", "fgbg_composition", "--source", "sample",
            "--output_path", str(tmp_path), "--no_progress"]
    real_append = RecordWriter.append
    written = []

    def append(self, record):
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        written.append(record["case_id"])
        real_append(self, record)

    monkeypatch.setattr(RecordWriter, "append", append)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("micon: error:") == 1 and "No space left on device" in err
    assert "run the same command again" in err and "Traceback" not in err
    monkeypatch.setattr(RecordWriter, "append", real_append)
    assert main(args) == 0
    ids = [r["case_id"] for r in _records(tmp_path / "test_collage")]
    assert len(ids) == len(set(ids)) == 5 and set(written) <= set(ids)


def test_a_lone_surrogate_is_written_escaped_and_reads_back(tmp_path):
    path = tmp_path / "r.jsonl"
    with RecordWriter(path) as w:
        w.append({"case_id": "c", "raw": "bad \udc80 byte"})
    assert b"\\udc80" in path.read_bytes()
    assert read_records(path) == [{"case_id": "c", "raw": "bad \udc80 byte"}]
    json.loads(path.read_text("utf-8"))  # the file is valid UTF-8 JSON


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask_like_any_file(tmp_path, umask):
    """Results, images and run files are meant to be shared like any file the user makes: the process umask
    decides their mode (a private temporary file must not leave them 0600)."""
    import os

    from micon_tasks.runner.records import atomic_write_bytes

    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
        atomic_write_bytes(tmp_path / "f.bin", b"yz")  # replacing a file gives the same mode
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").read_bytes() == b"yz"
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temporary file left behind
