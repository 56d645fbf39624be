"""The scoring-kind contract: how a task's card says its cases are scored and its results summarised.

Why kinds: MICON scores pass/fail checkpoints, OmniContext 0-10 rubric criteria, XVerseBench pooled
metrics. The runner, the cache, aggregation and results.md stay free of suite names: they ask the task's
kind (``scoring.kind`` in its card) to score a case, summarise a task and summarise a suite (a group card
with a ``suite:`` block). One instance per kind is registered in ``registry.scoring_kinds``.
"""

from __future__ import annotations

from typing import Any

from micon_tasks.scoring.common import mean
from micon_tasks.types import CaseScore, JudgeResult

__all__ = ["ScoringKind"]


class ScoringKind:
    """Base class of the scoring kinds; subclasses implement every method."""

    name: str = ""
    #: True: a judge sees one generated image per request, and a case with several images (``num_images``)
    #: is scored by ``combine_images``; False: one request carries all of a case's images (pooled metrics).
    per_image: bool = True

    def check_options(self, options: dict[str, Any], *, task: str) -> None:
        """Refuse card settings this kind does not understand (a ConfigError naming the task and key)."""
        if options:
            from micon_tasks.errors import ConfigError

            raise ConfigError(f"task {task!r}, field 'scoring': kind {self.name!r} takes no {sorted(options)}")

    def score_case(self, task: Any, result: JudgeResult | None, *, case_id: str,
                   failure_reason: str | None = None) -> CaseScore:
        """One case's score; ``result`` None means no image reached the judge (``failure_reason`` says why)."""
        raise NotImplementedError

    def combine_images(self, scores: list[CaseScore]) -> CaseScore:
        """One case's score from the scores of its images: the mean of each number, errors summed; clean only
        when every image is."""
        if len(scores) == 1:
            return scores[0]
        first = scores[0]
        parts = {k: mean([s.dimensions[k] for s in scores]) for k in first.dimensions}
        answers = [s.answer_set_score for s in scores if s.answer_set_score is not None]
        return CaseScore(case_id=first.case_id, score=mean([s.score for s in scores]), dimensions=parts,
                         n_checkpoint_errors=sum(s.n_checkpoint_errors for s in scores),
                         clean=all(s.clean for s in scores), answer_set_score=mean(answers) if answers else None,
                         reason=first.reason, extra={**first.extra, "n_images": len(scores)})

    def summarise_task(self, task: Any, scores: list[CaseScore], *, seed: int) -> dict[str, Any]:
        """The task's block in results.json (``results.<task>``)."""
        raise NotImplementedError

    def summarise_suite(self, suite: dict[str, Any], blocks: dict[str, dict[str, Any]],
                        scores: dict[str, list[CaseScore]], *, seed: int) -> dict[str, Any]:
        """The suite's block in results.json (``suites.<group>``): headline, views, counts and a table."""
        raise NotImplementedError

    def markdown(self, suite_block: dict[str, Any], *, model: str) -> str:
        """The suite's part of results.md."""
        raise NotImplementedError
