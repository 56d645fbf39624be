"""Arithmetic every scoring kind shares: means that tolerate empty lists, seeded bootstrap errors, and the
check that a task's case scores name each case once."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["mean", "mean_stderr", "bootstrap_stderr", "task_seed", "check_unique_cases"]


def mean(values: Sequence[float]) -> float | None:
    """The plain mean, or None for no values (never 0: an empty task has no score)."""
    return sum(values) / len(values) if values else None


def mean_stderr(stderrs: Sequence[float | None]) -> float | None:
    """Standard error of an unweighted mean of independent parts: sqrt(sum of their squared errors) / n.
    None when there is no part or a part's error is unknown."""
    if not stderrs or any(e is None for e in stderrs):
        return None
    return math.sqrt(sum(e * e for e in stderrs)) / len(stderrs)  # type: ignore[operator]


def bootstrap_stderr(values: Sequence[float], *, iters: int = 1000, seed: int = 0) -> float | None:
    """Standard error of the mean by the bootstrap (seeded, so reruns print the same figure)."""
    if not values:
        return None
    if len(values) == 1 or iters <= 1:
        return 0.0
    import numpy as np

    rng = np.random.default_rng(seed)
    arr = np.asarray(values, dtype=float)
    idx = rng.integers(0, len(arr), size=(iters, len(arr)))
    return float(arr[idx].mean(axis=1).std(ddof=1))


def task_seed(seed: int, task: str) -> int:
    """A stable per-task seed (str hash is salted per process; crc32 is not)."""
    return (seed * 1_000_003 + zlib.crc32(task.encode("utf-8"))) % (2**32)


def check_unique_cases(task: str, scores: Iterable[Any]) -> None:
    """Refuse a task's case scores when one case appears twice (a merge or resume gone wrong), naming it."""
    seen: set[str] = set()
    for c in scores:
        if c.case_id in seen:
            raise ValueError(f"task {task!r}: case {c.case_id!r} is scored twice")
        seen.add(c.case_id)
