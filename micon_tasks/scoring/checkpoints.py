"""The ``checkpoints`` scoring kind (MICON-Bench): Evaluation-by-Checkpoint case scores and aggregation.

Deterministic and judge-agnostic. Two rules differ on purpose from the authors' scripts:
every case counts (a judge error scores as a fail, a missing image scores 0) and every failure is
counted and reported, so a reader can see whether failures moved a number (``score`` vs
``score_clean``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from micon_tasks.scoring.base import ScoringKind
from micon_tasks.scoring.common import bootstrap_stderr, check_unique_cases, mean, mean_stderr, task_seed
from micon_tasks.types import CaseScore, Checkpoint, JudgeResult

__all__ = [
    "HARD_CAP",
    "STORY_DIMENSION_WEIGHT",
    "STORY_ANSWER_SET_WEIGHT",
    "score_case",
    "aggregate",
    "aggregate_benchmark",
    "bootstrap_stderr",
    "dimension_order",
    "CheckpointsKind",
]

HARD_CAP = 0.4  # a failed hard checkpoint caps the dimension it affects at this pass rate
STORY_DIMENSION_WEIGHT = 40.0  # story case = 40 x mean dimension score (0..1) ...
STORY_ANSWER_SET_WEIGHT = 6.0  # ... + 6 x answer-set score (0..10)


def dimension_order(checkpoints: Sequence[Checkpoint]) -> list[str]:
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
    hard_cap: float = HARD_CAP,
) -> CaseScore:
    """Score one case from its judge verdicts.

    ``result`` None means the case never reached the judge (generation failed, image missing):
    ``failure_reason`` must then say why, and the case scores 0 with that reason. A verdict in
    ``error`` (or a checkpoint with no verdict) counts as a fail and makes the case not clean; for
    the story task an unreadable answer-set score counts 0 and is one more error.
    ``CaseScore.reason`` is set only for cases that never reached the judge. ``hard_cap`` is the pass rate
    a failed hard checkpoint caps its dimension at (the task card's ``scoring.hard_cap``).
    """
    if not checkpoints:
        raise ValueError(f"case {case_id!r}: the checkpoint set is empty")
    dims = dimension_order(checkpoints)
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
        dimensions[d] = min(rate, hard_cap) if d in capped else rate
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

    # verdicts read from an unambiguous non-standard encoding ("1", "pass"): readable, but counted
    n_salvaged = sum(1 for v in result.verdicts if getattr(v, "salvaged", False))
    n_salvaged += int(bool(story and (result.details or {}).get("answer_set_salvaged")))
    return CaseScore(
        case_id=case_id,
        score=score,
        dimensions=dimensions,
        n_checkpoint_errors=n_errors,
        clean=n_errors == 0,
        answer_set_score=answer_set_score,
        reason=None,
        extra={"n_salvaged": n_salvaged},
    )


def _summarise(
    task: str, cases: Sequence[CaseScore], dims: Sequence[str] | None, iters: int, seed: int
) -> dict[str, Any]:
    check_unique_cases(task, cases)
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
        dim_means[d] = mean(vals)
    scores = [c.score for c in cases]
    clean = [c.score for c in cases if c.clean]
    return {
        "score": mean(scores),
        "stderr": bootstrap_stderr(scores, iters=iters, seed=task_seed(seed, task)),
        "n_cases": len(cases),
        "n_cases_clean": len(clean),
        "n_checkpoint_errors": sum(c.n_checkpoint_errors for c in cases),
        "n_salvaged": sum(int((c.extra or {}).get("n_salvaged", 0)) for c in cases),
        "n_failed": sum(1 for c in cases if c.failed),
        "score_clean": mean(clean),
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
    return {"tasks": tasks, "benchmark": aggregate_benchmark(tasks, scores)}


def aggregate_benchmark(tasks: Mapping[str, dict[str, Any]], scores: Mapping[str, Sequence[CaseScore]]) -> dict[str, Any]:
    """The benchmark figures (``avg``, ``macro_avg``, clean variants, stderrs, counts, dimensions) from the
    per-task summaries and their case scores."""
    all_cases = [c for cases in scores.values() for c in cases]
    n_total = len(all_cases)
    scored = {t: r for t, r in tasks.items() if r["n_cases"]}
    task_scores = [r["score"] for r in scored.values()]
    clean_task_scores = [r["score_clean"] for r in scored.values() if r["score_clean"] is not None]

    avg_stderr = None
    macro_stderr = None
    if scored and n_total:
        avg_stderr = math.sqrt(sum((r["n_cases"] / n_total) ** 2 * r["stderr"] ** 2 for r in scored.values()))
        macro_stderr = mean_stderr([r["stderr"] for r in scored.values()])

    bench_dims: dict[str, float] = {}
    dim_weights: dict[str, int] = {}
    for r in scored.values():
        for d, m in r["dimensions"].items():
            if m is None:
                continue
            bench_dims[d] = bench_dims.get(d, 0.0) + m * r["n_cases"]
            dim_weights[d] = dim_weights.get(d, 0) + r["n_cases"]

    return {
        "avg": mean([c.score for c in all_cases]),
        "avg_stderr": avg_stderr,
        "macro_avg": mean(task_scores),
        "macro_avg_stderr": macro_stderr,
        "avg_clean": mean([c.score for c in all_cases if c.clean]),
        # Mean of per-task clean scores; a task with no clean case is left out (and says so in n_tasks_clean).
        "macro_avg_clean": mean(clean_task_scores),
        "n_tasks": len(scored),
        "n_tasks_clean": len(clean_task_scores),
        "n_cases": n_total,
        "n_cases_clean": sum(r["n_cases_clean"] for r in tasks.values()),
        "n_checkpoint_errors": sum(r["n_checkpoint_errors"] for r in tasks.values()),
        "n_salvaged": sum(r.get("n_salvaged", 0) for r in tasks.values()),
        "n_failed": sum(r["n_failed"] for r in tasks.values()),
        "dimensions": {d: bench_dims[d] / dim_weights[d] for d in sorted(bench_dims)},
    }


class CheckpointsKind(ScoringKind):
    """MICON-Bench: pass/fail checkpoints per dimension, hard caps, the story hybrid (PROTOCOL 4)."""

    name = "checkpoints"

    def score_case(self, task: Any, result: JudgeResult | None, *, case_id: str,
                   failure_reason: str | None = None) -> CaseScore:
        scoring = task.config.scoring
        return score_case(task.checkpoints, result, case_id=case_id, story=scoring.story_hybrid,
                          failure_reason=failure_reason, hard_cap=scoring.hard_cap)

    def summarise_task(self, task: Any, scores: list[CaseScore], *, seed: int) -> dict[str, Any]:
        return _summarise(task.name, scores, dimension_order(task.checkpoints), 1000, seed)

    def summarise_suite(self, suite: dict[str, Any], blocks: dict[str, dict[str, Any]],
                        scores: dict[str, list[CaseScore]], *, seed: int) -> dict[str, Any]:
        bench = aggregate_benchmark(blocks, scores)
        names = list(blocks)
        titles = suite.get("columns") or {}
        return {
            "kind": self.name,
            "title": suite.get("title", suite.get("group")),
            "tasks": names,
            "headline": {"name": "avg", "value": bench["avg"], "stderr": bench["avg_stderr"]},
            "views": {
                "macro_avg": {"value": bench["macro_avg"], "stderr": bench["macro_avg_stderr"]},
                "avg_clean": {"value": bench["avg_clean"]},
                "macro_avg_clean": {"value": bench["macro_avg_clean"]},
            },
            "counts": {k: bench[k] for k in ("n_tasks", "n_cases", "n_cases_clean", "n_checkpoint_errors", "n_salvaged",
                                             "n_failed")},
            "dimensions": bench["dimensions"],
            "table": {
                "columns": [*(titles.get(n, n) for n in names), "Avg", "Macro avg"],
                "rows": [[*(blocks[n]["score"] for n in names), bench["avg"], bench["macro_avg"]]],
            },
        }

    def markdown(self, suite_block: dict[str, Any], *, model: str) -> str:
        from micon_tasks.runner.report import suite_table  # the one markdown table helper

        return suite_table(suite_block, model=model)
