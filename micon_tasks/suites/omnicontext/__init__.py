"""OmniContext (OmniGen2) as a suite: eight rubric-scored tasks, the ``omnicontext`` group, the ``rubric``
scoring kind and the ``rubric`` judge request kind. Importing this package registers both kinds; the task
index reads the cards beside it (``omnicontext_*.yaml``, ``omnicontext.yaml``) after importing it. Nothing
heavy (datasets, torch) is imported until a task loads its data. See docs/omnicontext.md.
"""

from __future__ import annotations

from micon_tasks.suites.omnicontext import requests  # noqa: F401 - registers the judge request kind
from micon_tasks.suites.omnicontext.scoring import RubricKind
from micon_tasks.suites.omnicontext.tasks import OmniContextTask
from registry import scoring_kinds

scoring_kinds.add("rubric", RubricKind())

__all__ = ["RubricKind", "OmniContextTask"]
