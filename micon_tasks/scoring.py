"""Evaluation-by-Checkpoint arithmetic: case scores and their aggregation (PROTOCOL 4).

Deterministic and judge-agnostic. Two rules differ on purpose from the authors' scripts:
every case counts (a judge error scores as a fail, a missing image scores 0) and every failure is
counted and reported, so a reader can see whether failures moved a number (``score`` vs
``score_clean``).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from micon_tasks.types import CaseScore, Checkpoint, JudgeResult

__all__ = [
    "HARD_CAP",
    "STORY_DIMENSION_WEIGHT",
    "STORY_ANSWER_SET_WEIGHT",
    "score_case",
    "aggregate",
    "bootstrap_stderr",
]

HARD_CAP = 0.4  # a failed hard checkpoint caps the dimension it affects at this pass rate
STORY_DIMENSION_WEIGHT = 40.0  # story case = 40 x mean dimension score (0..1) ...
STORY_ANSWER_SET_WEIGHT = 6.0  # ... + 6 x answer-set score (0..10)


def _dimensions_of(checkpoints: Sequence[Checkpoint]) -> list[str]:
    """The task's dimensions in first-seen order (A, B, C, ... as the checkpoint set lists them)."""
    out: list[str] = []
    for cp in checkpoints:
        if cp.dimension not in out:
            out.append(cp.dimension)
    return out


def score_case(
    checkpoints: Sequence[Checkpoint],
    result: JudgeResult | None,
    *,
    case_id: str,
    story: bool,
    failure_reason: str | None = None,
) -> CaseScore:
    """Score one case from its judge verdicts.

    ``result`` None means the case never reached the judge (generation failed, image missing):
    ``failure_reason`` must then say why, and the case scores 0 with that reason. A verdict in
    ``error`` (or a checkpoint with no verdict) counts as a fail and makes the case not clean; for
    the story task an unreadable answer-set score counts 0 and is one more error.
    ``CaseScore.reason`` is set only for cases that never reached the judge.
    """
    if not checkpoints:
        raise ValueError(f"case {case_id!r}: the checkpoint set is empty")
    dims = _dimensions_of(checkpoints)
    ids = [cp.id for cp in checkpoints]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"case {case_id!r}: checkpoint ids repeat in the checkpoint set: {dup}")
    for cp in checkpoints:
        if cp.hard and cp.caps is not None and cp.caps not in dims:
            raise ValueError(
                f"case {case_id!r}, checkpoint {cp.id!r}: caps dimension {cp.caps!r}, "
                f"which has no checkpoint in this set (dimensions {dims})"
            )

    if result is None:
        if not failure_reason:
            raise ValueError(
                f"case {case_id!r}: no judge result and no failure_reason; a case that was not judged "
                "must say why (e.g. 'missing image: ...')"
            )
        return CaseScore(
            case_id=case_id,
            score=0.0,
            dimensions={d: 0.0 for d in dims},
            n_checkpoint_errors=0,
            clean=False,
            answer_set_score=None,
            reason=failure_reason,
        )

    known = set(ids)
    by_id: dict[str, str] = {}
    for v in result.verdicts:
        if v.checkpoint_id not in known:
            raise ValueError(
                f"case {case_id!r}: the judge returned a verdict for {v.checkpoint_id!r}, "
                "which is not in the task's checkpoint set"
            )
        if v.checkpoint_id in by_id:
            raise ValueError(f"case {case_id!r}: two verdicts for checkpoint {v.checkpoint_id!r}")
        if v.status not in ("pass", "fail", "error"):
            raise ValueError(f"case {case_id!r}, checkpoint {v.checkpoint_id!r}: unknown verdict status {v.status!r}")
        by_id[v.checkpoint_id] = v.status

    n_errors = 0
    passed = {d: 0 for d in dims}
    total = {d: 0 for d in dims}
    capped: set[str] = set()
    for cp in checkpoints:
        status = by_id.get(cp.id, "error")  # a checkpoint with no verdict is an error, never dropped
        if status == "error":
            n_errors += 1
        total[cp.dimension] += 1
        if status == "pass":
            passed[cp.dimension] += 1
        elif cp.hard:
            capped.add(cp.caps or cp.dimension)
    dimensions = {}
    for d in dims:
        rate = passed[d] / total[d]
        dimensions[d] = min(rate, HARD_CAP) if d in capped else rate
    mean_dim = sum(dimensions.values()) / len(dimensions)

    answer_set_score: float | None = None
    if story:
        readable = result.answer_set_status != "error" and result.answer_set_score is not None
        if readable:
            answer_set_score = float(result.answer_set_score)  # type: ignore[arg-type]
            if not 0.0 <= answer_set_score <= 10.0 or math.isnan(answer_set_score):
                raise ValueError(f"case {case_id!r}: answer-set score {answer_set_score} is outside 0..10")
        else:
            n_errors += 1
        score = STORY_DIMENSION_WEIGHT * mean_dim + STORY_ANSWER_SET_WEIGHT * (answer_set_score or 0.0)
    else:
        score = 100.0 * mean_dim

    return CaseScore(
        case_id=case_id,
        score=score,
        dimensions=dimensions,
        n_checkpoint_errors=n_errors,
        clean=n_errors == 0,
        answer_set_score=answer_set_score,
        reason=None,
    )


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


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


def _task_seed(seed: int, task: str) -> int:
    # A stable per-task seed (str hash is salted per process; crc32 is not).
    return (seed * 1_000_003 + zlib.crc32(task.encode("utf-8"))) % (2**32)


def _summarise(
    task: str, cases: Sequence[CaseScore], dims: Sequence[str] | None, iters: int, seed: int
) -> dict[str, Any]:
    seen: set[str] = set()
    for c in cases:
        if c.case_id in seen:
            raise ValueError(f"task {task!r}: case {c.case_id!r} is scored twice")
        seen.add(c.case_id)
    if dims is None:
        found: list[str] = []
        for c in cases:
            found.extend(d for d in c.dimensions if d not in found)
        dims = found
    dim_means: dict[str, float | None] = {}
    for d in dims:
        vals = []
        for c in cases:
            if d not in c.dimensions:
                raise ValueError(f"task {task!r}, case {c.case_id!r}: no score for dimension {d!r}")
            vals.append(c.dimensions[d])
        dim_means[d] = _mean(vals)
    scores = [c.score for c in cases]
    clean = [c.score for c in cases if c.clean]
    return {
        "score": _mean(scores),
        "stderr": bootstrap_stderr(scores, iters=iters, seed=_task_seed(seed, task)),
        "n_cases": len(cases),
        "n_cases_clean": len(clean),
        "n_checkpoint_errors": sum(c.n_checkpoint_errors for c in cases),
        "n_failed": sum(1 for c in cases if c.failed),
        "score_clean": _mean(clean),
        "dimensions": dim_means,
    }


def aggregate(
    scores: Mapping[str, Sequence[CaseScore]],
    *,
    task_dimensions: Mapping[str, Sequence[str]] | None = None,
    bootstrap_iters: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Task and benchmark figures from case scores (PROTOCOL 4).

    Returns ``{"tasks": {name: {...}}, "benchmark": {...}}``. Per task: ``score`` (mean case
    score), ``stderr`` (seeded bootstrap), ``n_cases``, ``n_cases_clean``, ``n_checkpoint_errors``,
    ``n_failed``, ``score_clean`` (mean over clean cases only; None when none is clean) and
    ``dimensions`` (mean per dimension, 0..1). The benchmark gives ``avg`` (case-weighted: the
    paper's Avg), ``macro_avg`` (plain mean of task scores), their clean variants and stderrs, the
    summed counts and case-weighted ``dimensions``. ``task_dimensions`` fixes each task's dimension
    order and makes a case lacking one an error.
    """
    tasks: dict[str, dict[str, Any]] = {}
    for task, cases in scores.items():
        dims = list(task_dimensions[task]) if task_dimensions and task in task_dimensions else None
        tasks[task] = _summarise(task, list(cases), dims, bootstrap_iters, seed)

    all_cases = [c for cases in scores.values() for c in cases]
    n_total = len(all_cases)
    scored = {t: r for t, r in tasks.items() if r["n_cases"]}
    task_scores = [r["score"] for r in scored.values()]
    clean_task_scores = [r["score_clean"] for r in scored.values() if r["score_clean"] is not None]

    avg_stderr = None
    macro_stderr = None
    if scored and n_total:
        avg_stderr = math.sqrt(sum((r["n_cases"] / n_total) ** 2 * r["stderr"] ** 2 for r in scored.values()))
        macro_stderr = math.sqrt(sum(r["stderr"] ** 2 for r in scored.values())) / len(scored)

    bench_dims: dict[str, float] = {}
    dim_weights: dict[str, int] = {}
    for r in scored.values():
        for d, m in r["dimensions"].items():
            if m is None:
                continue
            bench_dims[d] = bench_dims.get(d, 0.0) + m * r["n_cases"]
            dim_weights[d] = dim_weights.get(d, 0) + r["n_cases"]

    benchmark = {
        "avg": _mean([c.score for c in all_cases]),
        "avg_stderr": avg_stderr,
        "macro_avg": _mean(task_scores),
        "macro_avg_stderr": macro_stderr,
        "avg_clean": _mean([c.score for c in all_cases if c.clean]),
        # Mean of per-task clean scores; a task with no clean case is left out (and says so in n_tasks_clean).
        "macro_avg_clean": _mean(clean_task_scores),
        "n_tasks": len(scored),
        "n_tasks_clean": len(clean_task_scores),
        "n_cases": n_total,
        "n_cases_clean": sum(r["n_cases_clean"] for r in tasks.values()),
        "n_checkpoint_errors": sum(r["n_checkpoint_errors"] for r in tasks.values()),
        "n_failed": sum(r["n_failed"] for r in tasks.values()),
        "dimensions": {d: bench_dims[d] / dim_weights[d] for d in sorted(bench_dims)},
    }
    return {"tasks": tasks, "benchmark": benchmark}
