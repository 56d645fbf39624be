"""The one shape every stage has: select this rank's cases, skip those with a current record, process the
rest in chunks, append one record per case. Generation and judging differ only in the hooks below.

Why one skeleton: resuming, sharding, progress and "a kill loses at most the chunk in flight" are the
same rules for every stage; written once they cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from micon_tasks.runner.distributed import Dist
from micon_tasks.runner.inputs import release_rows
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.records import RecordWriter

__all__ = ["Stage", "StageStats", "run_stage", "chunks"]

log = logging.getLogger(__name__)


@dataclass
class StageStats:
    """What a stage did on this rank: cases it had to do, cases done, calls made, cases with problems."""

    todo: int = 0
    done: int = 0
    calls: int = 0
    problems: int = 0  # generation failures, or cases with judge errors


class Stage(Protocol):
    """The hooks of one stage. ``name`` is the shard prefix (``generate`` / ``judge``)."""

    name: str
    unit: str

    def todo(self, task: Any, shard: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """The (index, case id) pairs of ``shard`` that have no current record for this stage."""

    def start(self) -> int:
        """Load what the stage needs (the adapter, the judge) once there is work; return the chunk size."""

    def process(self, task: Any, chunk: list[tuple[int, str]], writer: RecordWriter, stats: StageStats) -> None:
        """Do the chunk and append one record per case to ``writer``."""

    def flush(self) -> None:
        """Wait for background work that writes this task's records (before its record file closes)."""

    def finish(self) -> None:
        """Release what ``start`` loaded (also after an error)."""


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    size = max(1, size)  # a size below one still makes progress (it yielded empty chunks)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_stage(stage: Stage, dist: Dist, layout: Layout, tasks: dict[str, Any],
              selected: dict[str, list[tuple[int, str]]], *, progress: bool = True) -> StageStats:
    """Run ``stage`` over this rank's share of ``selected`` (task name -> [(index, case id)])."""
    stats = StageStats()
    plan = []
    for name, task in tasks.items():
        todo = stage.todo(task, dist.shard(selected[name]))
        if todo:
            plan.append((task, todo))
        stats.todo += len(todo)
    if not stats.todo:
        log.info("%s: every selected case already has a current record; nothing to do", stage.name)
        return stats

    from tqdm.auto import tqdm

    size = stage.start()
    label = stage.name if dist.world_size == 1 else f"{stage.name} [rank {dist.rank}/{dist.world_size}]"
    bar = tqdm(total=stats.todo, desc=label, unit=stage.unit, disable=not progress, dynamic_ncols=True)
    try:
        for task, todo in plan:
            with RecordWriter(layout.shard(stage.name, task.name, dist.rank)) as writer:
                per_task = getattr(stage, "chunk_size", None)  # e.g. each judge's own concurrency
                parts = list(chunks(todo, per_task(task) if per_task is not None else size))
                prefetch = getattr(stage, "prefetch", None)
                if prefetch is not None and parts:
                    prefetch(task, parts[0])  # every chunk through prefetch, in order (rows are read forwards)
                for n, chunk in enumerate(parts):
                    if prefetch is not None and n + 1 < len(parts):
                        prefetch(task, parts[n + 1])  # e.g. decode the next chunk while this one runs
                    stage.process(task, chunk, writer, stats)
                    stats.calls += 1
                    stats.done += len(chunk)
                    bar.update(len(chunk))
                stage.flush()
            release_rows(task)  # its readers' last batch of rows (about 80 MB of images at full size)
    finally:
        bar.close()
        stage.finish()
    return stats
