"""Scoring: each task card names a scoring kind (``scoring.kind``); the kind scores cases and summarises
tasks and suites. Built in: ``checkpoints`` (MICON-Bench, Evaluation-by-Checkpoint). Suites add theirs by
registering a :class:`ScoringKind` instance in ``registry.scoring_kinds``.

The checkpoint arithmetic is re-exported here (``from micon_tasks.scoring import score_case, aggregate``).
"""

from __future__ import annotations

from micon_tasks.scoring import checkpoints
from micon_tasks.scoring.base import ScoringKind
from micon_tasks.scoring.checkpoints import *  # noqa: F403 - the checkpoint arithmetic, re-exported
from micon_tasks.scoring.common import bootstrap_stderr, mean, mean_stderr, task_seed
from registry import scoring_kinds

__all__ = ["ScoringKind", "bootstrap_stderr", "mean", "mean_stderr", "task_seed", "get_kind", *checkpoints.__all__]

scoring_kinds.add("checkpoints", checkpoints.CheckpointsKind())


def get_kind(name: str) -> ScoringKind:
    """The registered scoring kind ``name`` (an unknown name lists the known ones)."""
    return scoring_kinds.get(name)
