"""OmniContext (OmniGen2) as a suite: eight rubric-scored tasks, the ``omnicontext`` group, the ``rubric``
scoring kind and the ``rubric`` judge request kind. Importing this package registers all four; nothing
heavy (datasets, torch) is imported until a task loads its data. See docs/omnicontext.md.
"""

from __future__ import annotations

from micon_tasks.suites.omnicontext.scoring import RubricKind
from registry import scoring_kinds

scoring_kinds.add("rubric", RubricKind())  # before the cards below are read: they name this kind

from micon_tasks.suites.omnicontext import requests  # noqa: E402,F401 - registers the judge request kind
from micon_tasks.suites.omnicontext.tasks import TASK_NAMES, OmniContextTask  # noqa: E402

__all__ = ["RubricKind", "OmniContextTask", "TASK_NAMES"]
