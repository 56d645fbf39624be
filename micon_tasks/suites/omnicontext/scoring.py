"""The ``rubric`` scoring kind: named 0-10 criteria per item, combined by the card's formula (OmniContext).

Rules (they differ on purpose from the authors' scripts, which skip a missing image and put a random score
in place of an unreadable reply):
- an item's overall is ``sqrt(PF x SC)`` when every criterion was read; an item with an unreadable
  criterion, or with no image to judge, scores overall 0 in the headline figures, is counted, and is left
  out of the ``clean`` variants;
- a criterion's mean is over the items where that criterion was read (``n_read`` says how many);
- the suite's headline is the unweighted mean over task types (macro), as the authors' "Average"; MICON's
  six-column view and its own mean are reported beside it, labelled.
"""

from __future__ import annotations

import math
import re
from typing import Any

from micon_tasks.scoring.base import ScoringKind
from micon_tasks.scoring.common import bootstrap_stderr, check_unique_cases, mean, mean_stderr, task_seed
from micon_tasks.suites.omnicontext.options import SCALE, RubricOptions
from micon_tasks.types import CaseScore, JudgeResult

__all__ = ["RubricKind", "macro"]

BOOTSTRAP_ITERS = 1000


def macro(values: list[float | None], stderrs: list[float | None] | None = None) -> tuple[float | None, float | None]:
    """(unweighted mean of the present values, its standard error from the parts' errors)."""
    errs_in = list(stderrs) if stderrs is not None else [None] * len(values)
    present = [(v, e) for v, e in zip(values, errs_in) if v is not None]
    if not present:
        return None, None
    value = sum(v for v, _ in present) / len(present)
    return value, mean_stderr([e for _, e in present])


class RubricKind(ScoringKind):
    """Criteria scored 0..10 by a VLM judge, one request each; see the module docstring for the rules."""

    name = "rubric"

    def check_options(self, options: dict[str, Any], *, task: str) -> None:
        RubricOptions.from_options(options, task=task)

    def score_case(self, task: Any, result: JudgeResult | None, *, case_id: str,
                   failure_reason: str | None = None) -> CaseScore:
        opts = RubricOptions.from_options(task.config.scoring.options, task=task.name)
        if result is None:
            if not failure_reason:
                raise ValueError(f"task {task.name!r}, case {case_id!r}: no judge result and no failure_reason")
            return CaseScore(case_id=case_id, score=0.0, dimensions={}, n_checkpoint_errors=0, clean=False,
                             reason=failure_reason, extra={"criterion_errors": [], "n_salvaged": 0})
        by_name: dict[str, Any] = {}
        for v in result.verdicts:
            if v.checkpoint_id not in opts.names:
                raise ValueError(f"task {task.name!r}, case {case_id!r}: a verdict for {v.checkpoint_id!r}, which is "
                                 f"not one of the criteria {opts.names}")
            if v.checkpoint_id in by_name:
                raise ValueError(f"task {task.name!r}, case {case_id!r}: two verdicts for {v.checkpoint_id!r}")
            by_name[v.checkpoint_id] = v
        values: dict[str, float] = {}
        errors: list[str] = []
        lo, hi = SCALE
        for n in opts.names:
            v = by_name.get(n)  # a criterion without a verdict is an error, never dropped
            ok = (v is not None and v.status == "scored" and isinstance(v.value, (int, float))
                  and not isinstance(v.value, bool) and math.isfinite(v.value) and lo <= v.value <= hi)
            if ok:
                values[n] = float(v.value)
            else:
                errors.append(n)
        score = opts.combined([values[n] for n in opts.names]) if not errors else 0.0
        extra = {"criterion_errors": errors, "n_salvaged": sum(1 for v in by_name.values() if v.salvaged),
                 "judge_model": (result.details or {}).get("judge_model")}
        return CaseScore(case_id=case_id, score=score, dimensions=values, n_checkpoint_errors=len(errors),
                         clean=not errors, extra=extra)

    def combine_images(self, scores: list[CaseScore]) -> CaseScore:
        """Several images of one item (a card with ``num_images`` > 1): the mean overall, each criterion's mean
        over the images where it was read, every unreadable criterion counted; clean only if every image is."""
        if len(scores) == 1:
            return scores[0]
        first = scores[0]
        names = list(dict.fromkeys(n for s in scores for n in s.dimensions))
        parts = {n: mean([s.dimensions[n] for s in scores if n in s.dimensions]) for n in names}
        return CaseScore(case_id=first.case_id, score=mean([s.score for s in scores]), dimensions=parts,
                         n_checkpoint_errors=sum(s.n_checkpoint_errors for s in scores), clean=all(s.clean for s in scores),
                         reason=next((s.reason for s in scores if s.reason), None),
                         extra={"criterion_errors": sorted({n for s in scores for n in s.extra.get("criterion_errors", [])}),
                                "n_salvaged": sum(s.extra.get("n_salvaged", 0) for s in scores),
                                "judge_model": first.extra.get("judge_model"), "n_images": len(scores)})

    def summarise_task(self, task: Any, scores: list[CaseScore], *, seed: int) -> dict[str, Any]:
        opts = RubricOptions.from_options(task.config.scoring.options, task=task.name)
        check_unique_cases(task.name, scores)
        overall = [c.score for c in scores]
        clean = [c.score for c in scores if c.clean]
        criteria = {}
        for n in opts.names:
            vals = [c.dimensions[n] for c in scores if n in c.dimensions]
            criteria[n] = {"mean": mean(vals), "stderr": bootstrap_stderr(vals, iters=BOOTSTRAP_ITERS,
                                                                          seed=task_seed(seed, f"{task.name}/{n}")),
                           "n_read": len(vals),
                           "n_errors": sum(1 for c in scores if n in (c.extra or {}).get("criterion_errors", []))}
        filtered = getattr(task, "filtered", None) or {}
        return {
            "score": mean(overall),
            "stderr": bootstrap_stderr(overall, iters=BOOTSTRAP_ITERS, seed=task_seed(seed, task.name)),
            "n_cases": len(scores),
            "n_cases_clean": len(clean),
            "n_checkpoint_errors": sum(c.n_checkpoint_errors for c in scores),
            "n_failed": sum(1 for c in scores if c.failed),
            "n_salvaged": sum((c.extra or {}).get("n_salvaged", 0) for c in scores),
            "n_filtered": int(filtered.get("n_filtered", 0)),
            "score_clean": mean(clean),
            "dimensions": {n: criteria[n]["mean"] for n in opts.names},
            "criteria": criteria,
            "task_type": getattr(task, "task_type", None),
            "judge_models": sorted({m for c in scores if (m := (c.extra or {}).get("judge_model"))}),
        }

    def summarise_suite(self, suite: dict[str, Any], blocks: dict[str, dict[str, Any]],
                        scores: dict[str, list[CaseScore]], *, seed: int) -> dict[str, Any]:
        order = [t for t in suite.get("tasks", []) if t in blocks] + [t for t in blocks if t not in suite.get("tasks", [])]
        scored = [t for t in order if blocks[t]["n_cases"]]
        titles = suite.get("columns") or {}
        head, head_err = macro([blocks[t]["score"] for t in scored], [blocks[t]["stderr"] for t in scored])
        crit_names = list(dict.fromkeys(n for t in order for n in blocks[t]["criteria"]))
        view6 = suite.get("micon_view") or {}
        six = {title: blocks[t]["score"] if t in blocks and blocks[t]["n_cases"] else None for t, title in view6.items()}
        six_mean, six_err = macro([blocks[t]["score"] if t in scored else None for t in view6],
                                  [blocks[t]["stderr"] if t in scored else None for t in view6])
        all_scores = [c.score for t in order for c in scores.get(t, [])]
        used = sorted({m for t in order for m in blocks[t].get("judge_models", [])})
        reference = suite.get("reference_judge")
        return {
            "kind": self.name,
            "title": suite.get("title", suite.get("group")),
            "tasks": order,
            "headline": {"name": "overall_macro", "value": head, "stderr": head_err,
                         "label": f"overall, unweighted mean over the {len(scored)} task types scored "
                                  f"(of {len(suite.get('tasks', order))}): the authors' Average"},
            "views": {
                "overall_macro_clean": {"value": macro([blocks[t]["score_clean"] for t in scored])[0],
                                        "label": "the same over clean items only (every criterion read)"},
                **{f"{n}_macro": {"value": macro([blocks[t]["criteria"].get(n, {}).get("mean") for t in scored])[0],
                                  "label": f"{n}, unweighted mean over task types of the items where {n} was read"}
                   for n in crit_names},
                "overall_micro": {"value": mean(all_scores), "label": "overall, mean over all items"},
                "micon_view": {"label": "MICON-Bench's six columns (no Char+Obj types); its own mean is not the "
                                        "authors' Average", "columns": six, "mean": six_mean, "stderr": six_err,
                               "n_columns": sum(v is not None for v in six.values())},
            },
            "counts": {
                "n_tasks": len(scored), "n_tasks_expected": len(suite.get("tasks", order)),
                "missing_tasks": [t for t in suite.get("tasks", []) if t not in scored],
                **{k: sum(blocks[t][k] for t in order) for k in ("n_cases", "n_cases_clean", "n_checkpoint_errors",
                                                                 "n_failed", "n_salvaged", "n_filtered")},
            },
            "per_type": {t: {"title": titles.get(t, t), "overall": blocks[t]["score"], "stderr": blocks[t]["stderr"],
                             "overall_clean": blocks[t]["score_clean"],
                             **{n: blocks[t]["criteria"].get(n, {}).get("mean") for n in crit_names},
                             **{f"{n}_errors": blocks[t]["criteria"].get(n, {}).get("n_errors", 0) for n in crit_names},
                             **{k: blocks[t][k] for k in ("n_cases", "n_cases_clean", "n_failed", "n_salvaged",
                                                          "n_filtered")}} for t in order},
            "criteria": crit_names,
            "judge": {"reference": reference, "used": used,
                      "comparable": bool(used) and all(same_judge(m, reference) for m in used)},
            "table": {"columns": [*(titles.get(t, t) for t in order), "Avg"],
                      "rows": [[*(blocks[t]["score"] for t in order), head]]},
        }

    def markdown(self, suite_block: dict[str, Any], *, model: str) -> str:
        from micon_tasks.suites.omnicontext.report import rubric_markdown

        return rubric_markdown(suite_block, model=model)


def same_judge(model: str | None, reference: str | None) -> bool:
    """Whether a judge model id is the reference judge (``gpt-4.1`` or a dated snapshot ``gpt-4.1-2025-04-14``)."""
    if not model or not reference:
        return False
    m, r = model.strip().lower().rsplit("/", 1)[-1], reference.strip().lower()
    return m == r or re.fullmatch(re.escape(r) + r"-\d{4}-\d{2}-\d{2}", m) is not None
