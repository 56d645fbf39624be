"""Memory must not grow with the number of cases (issue 16): a run streams cases and images and never holds
the decoded benchmark. A 60-case run's peak RSS may exceed a 12-case run's by far less than what holding the
48 extra cases' images would cost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_runner_helpers as h
from fake_judge_server import FakeJudgeServer

sys.path.insert(0, str(h.ROOT / "benchmarks"))
from synthetic_benchmark import build  # noqa: E402

SIZE = 640  # reference side: 1.2 MB decoded each; generated images are the same size


def _peak_rss_mb(args: list[str], env: dict[str, str]) -> float:
    proc = subprocess.Popen([h.PYTHON, "-c", h.RUNNER_ENTRY, *args], cwd=h.ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()[-2000:]
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_cases(tmp_path):
    # concurrency=2: a judge call carries 2 cases (one more chunk is read ahead), fewer than either run has, so what
    # the chunks hold is the same
    # in both runs and only memory that grows with the case count can make the difference.
    data = build(tmp_path / "data", fraction=0.06, size=SIZE, workers=2)  # 64 cases, 10 per task or more
    refs = {p.stem.rsplit("_", 1)[0]: 0 for p in data.glob("*/refs/*.png")}
    for p in data.glob("*/refs/*.png"):
        refs[p.stem.rsplit("_", 1)[0]] += 1
    rss = {}
    with FakeJudgeServer() as server:
        for limit in (2, 10):
            env = h.subprocess_env(MICON_CACHE_DIR=str(tmp_path / "cache"))
            args = ["run", "--model", "collage", "--model_args", f"width={SIZE},height={SIZE}", "--tasks", "micon",
                    "--source", str(data), "--limit", str(limit), "--output_path", str(tmp_path / f"out{limit}"),
                    "--judge", "openai", "--judge_args", f"base_url={server.base_url},model=fake,concurrency=2",
                    "--no_progress", "--verbosity", "WARNING"]
            _peak_rss_mb(["validate", "--tasks", "micon", "--source", str(data)], env)  # convert once, outside
            rss[limit] = _peak_rss_mb(args, env)
    n_small, n_large = 6 * 2, sum(min(10, n) for n in _cases_per_task(data).values())
    extra_refs = sorted(refs.values())[: n_large - n_small]  # a lower bound on the extra cases' references
    held_mb = (sum(extra_refs) + (n_large - n_small)) * SIZE * SIZE * 3 / 2**20  # references + generated images
    assert held_mb > 100, "the test must be able to see images being held"
    growth = rss[10] - rss[2]
    assert growth < 0.5 * held_mb, (f"peak RSS grew by {growth:.0f} MB from {n_small} to {n_large} cases; holding their "
                                    f"images would cost about {held_mb:.0f} MB")


def _cases_per_task(data: Path) -> dict[str, int]:
    return {folder.name: sum(1 for _ in folder.glob("cases/*.yaml")) for folder in data.iterdir() if folder.is_dir()}


def test_row_reader_release_drops_its_batch_and_reads_again(tmp_path):
    import datasets

    from micon_tasks.data.rows import RowReader

    datasets.Dataset.from_dict({"x": list(range(10))}).save_to_disk(str(tmp_path / "ds"), max_shard_size="1KB")
    reader = RowReader(datasets.load_from_disk(str(tmp_path / "ds")))
    assert reader.row(7)["x"] == 7 and reader._batch is not None
    reader.release()
    assert reader._batch is None and reader.row(3)["x"] == 3


class _RecordingStage:
    """A stage that does nothing but note, in ``events``, each chunk it is handed (chunks of 2 cases)."""

    name, unit = "judge", "case"

    def __init__(self, events: list):
        self.events = events

    def todo(self, task, shard):
        return shard

    def start(self):
        return 2

    def prefetch(self, task, chunk):
        self.events.append(("prefetch", task.name, chunk[0][0]))

    def process(self, task, chunk, writer, stats):
        self.events.append(("process", task.name, chunk[0][0]))

    def flush(self):
        pass

    def finish(self):
        pass


def _run_recorded(tmp_path, tasks: dict, selected: dict, events: list) -> None:
    from micon_tasks.runner.distributed import Dist
    from micon_tasks.runner.layout import Layout
    from micon_tasks.runner.stages import run_stage

    run_stage(_RecordingStage(events), Dist(), Layout(tmp_path), tasks, selected, progress=False)


def test_a_finished_task_releases_its_rows(tmp_path):
    """Each task's row readers keep their last batch (about 80 MB of images at full size): the stage skeleton
    drops them when the task is done, before the next task starts."""
    events: list = []

    class FakeTask:
        def __init__(self, name: str):
            self.name = name

        def release_rows(self) -> None:
            events.append(("release", self.name))

    tasks = {n: FakeTask(n) for n in ("a", "b")}
    _run_recorded(tmp_path, tasks, {"a": [(0, "a0")], "b": [(0, "b0")]}, events)
    assert [e for e in events if e[0] != "prefetch"] == [("process", "a", 0), ("release", "a"), ("process", "b", 0),
                                                         ("release", "b")]


def test_case_inputs_never_keep_their_task_alive():
    """The per-task input digests live in a cache keyed weakly by the task; holding the task strongly from
    the digests made every task ever loaded (and its dataset) live as long as the process."""
    import gc
    import weakref

    from micon_tasks.runner.inputs import case_inputs

    class FakeTask:
        name = "t"

    task = FakeTask()
    assert case_inputs(task).task is task
    alive = weakref.ref(task)
    del task
    gc.collect()
    assert alive() is None


def test_every_chunk_is_prefetched_in_order_one_ahead(tmp_path):
    """Rows are read forwards (a step back re-reads the Arrow file from its start): the skeleton hands every
    chunk to ``prefetch`` in order, the next one before the current one is processed."""
    events: list = []

    class FakeTask:
        name = "a"

    _run_recorded(tmp_path, {"a": FakeTask()}, {"a": [(i, f"c{i}") for i in range(5)]}, events)
    assert [(e[0], e[2]) for e in events] == [("prefetch", 0), ("prefetch", 2), ("process", 0), ("prefetch", 4),
                                              ("process", 2), ("process", 4)]


def test_generation_reads_each_tasks_rows_once_and_in_order(tmp_path, monkeypatch):
    """The generation stage decodes references in a pool of threads, but its rows must still be read forwards:
    pool threads that raced for rows stepped back past a batch, and the reader read the Arrow file again from
    its start (ten times the reads of the rows a run needs, growing with the benchmark)."""
    import threading
    import time

    from micon_tasks.runner import evaluate
    from micon_tasks.runner import generate as generate_mod
    from micon_tasks.task import Task

    monkeypatch.setattr(generate_mod, "cpu_cores", lambda: 4)  # a pool wide enough to race
    read: dict[str, list[int]] = {}
    lock = threading.Lock()
    real = Task.lazy_case

    def lazy_case(self, index):
        time.sleep(((-index) % 4) * 0.005)  # a later case may reach its row first, as a pre-empted thread lets it
        with lock:
            read.setdefault(self.name, []).append(index)
        return real(self, index)

    monkeypatch.setattr(Task, "lazy_case", lazy_case)
    evaluate(model="test_collage", tasks=["object_composition", "spatial_composition"], source="sample",
             output_path=tmp_path, predict_only=True, batch_size=4, progress=False)
    assert read and all(indices == sorted(set(indices)) for indices in read.values()), read


def test_case_input_digests_are_kept_on_disk_and_read_back(tmp_path, monkeypatch):
    """A resume must not read and hash every case's references again: the digests one run computed are kept
    beside the converted dataset, and a new process (a new task object) takes them from there."""
    import pytest

    from micon_tasks.data.rows import RowReader
    from micon_tasks.runner.inputs import case_inputs
    from micon_tasks.task import load_task

    monkeypatch.setenv("MICON_CACHE_DIR", str(tmp_path))
    task = load_task("object_composition", source="sample")
    want = {cid: (case_inputs(task).generation_sha256(cid), case_inputs(task).judge_sha256(cid)) for cid in task.case_ids}
    case_inputs(task).persist()
    assert len(list((tmp_path / "inputs").glob("*.json"))) == 1

    again = load_task("object_composition", source="sample")
    monkeypatch.setattr(RowReader, "row", lambda self, index: pytest.fail(f"row {index} was read again"))
    got = {cid: (case_inputs(again).generation_sha256(cid), case_inputs(again).judge_sha256(cid)) for cid in again.case_ids}
    assert got == want and all(all(pair) for pair in want.values())
    assert [p.name for p in (tmp_path / "inputs").iterdir()] == [next((tmp_path / "inputs").glob("*.json")).name]


def test_chunks_cover_every_item_once_whatever_the_size():
    from micon_tasks.runner.stages import chunks

    items = list(range(5))
    for size in (0, 1, 2, 5, 9):
        parts = list(chunks(items, size))
        assert [x for part in parts for x in part] == items and all(parts), (size, parts)
