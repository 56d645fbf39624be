"""Plain records passed between tasks, adapters, judges and the runner.

Kept free of heavy imports (no torch, no datasets) so any module can use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DIMENSIONS: dict[str, str] = {
    "A": "Instruction Following",
    "B": "Identity/Fidelity",
    "C": "Structure/Geometry",
    "D": "Cross-Reference Consistency",
    "E": "Causality/Temporal",
    "F": "Text Grounding",
    "G": "Overall Usability",
}

# "pass"/"fail" answer a checkpoint; "scored" means a number was read (a rubric criterion, a metric entry:
# see ``Verdict.value``); "error" means nothing could be read, and is never a pass or a number.
VerdictStatus = Literal["pass", "fail", "scored", "error"]


@dataclass(frozen=True)
class Checkpoint:
    """One pass/fail question of a task's checkpoint set (PROTOCOL 3).

    ``caps`` names the dimension that a failed hard checkpoint caps at 0.4 (None when not hard).
    """

    id: str
    dimension: str
    question: str
    hard: bool = False
    caps: str | None = None


@dataclass(frozen=True)
class AnswerSet:
    """The story task's answer set: what a plausible next frame shows, and what it must not."""

    background_summary: str
    positive_candidates: tuple[str, ...]
    negative_candidates: tuple[str, ...]


@dataclass
class Case:
    """One benchmark case: the references (RA, RB, RC order), the instruction and what judges it."""

    task: str
    case_id: str
    refs: list[Any]  # PIL.Image.Image, decoded lazily by datasets
    ref_roles: list[str]
    prompt: str
    goal: str = ""
    constraints_hard: list[str] = field(default_factory=list)
    constraints_soft: list[str] = field(default_factory=list)
    answer_set: AnswerSet | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """A judge's answer for one checkpoint (or rubric criterion, or metric entry: ``checkpoint_id`` then
    names it and ``value`` holds the number). ``error`` means it could not be read: never a pass.
    ``salvaged`` marks an answer read from an unambiguous but non-standard encoding (``"1"``, ``"pass"``)."""

    checkpoint_id: str
    status: VerdictStatus
    raw: str | None = None
    rationale: str | None = None
    error: str | None = None
    value: float | None = None
    salvaged: bool = False


@dataclass
class JudgeResult:
    """Everything a judge says about one generated image."""

    verdicts: list[Verdict]
    answer_set_score: float | None = None  # story task only, 0..10
    # story only: "pass" = a score was read, "error" = none could be (never a stand-in value)
    answer_set_status: VerdictStatus | None = None
    raw: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)  # who judged, how (never a key)
    details: dict[str, Any] = field(default_factory=dict)  # what the reply said beyond the verdicts


@dataclass
class CaseScore:
    """A case's score with its named parts and what went wrong on the way.

    ``dimensions`` holds the scoring kind's parts: MICON's dimension pass rates (A..G), a rubric's criterion
    scores, a metric suite's per-case metric means. ``n_checkpoint_errors`` counts the parts that could not
    be read (checkpoints, criteria, metric entries)."""

    case_id: str
    score: float  # 0..100
    dimensions: dict[str, float]  # letter -> 0..1 after caps
    n_checkpoint_errors: int = 0
    clean: bool = True
    answer_set_score: float | None = None
    reason: str | None = None  # set only when no image reached the judge, e.g. "generation failed: refused"
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific numbers (pooled sums, n_salvaged, ...)

    @property
    def failed(self) -> bool:
        """True when the case never reached the judge (generation failure or missing image)."""
        return self.reason is not None
