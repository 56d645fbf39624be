"""micon-bench: an evaluation harness for MICON-Bench (multi-image context image generation).

The public API is imported lazily so that ``import micon_tasks`` stays cheap (no torch, no datasets).

    from micon_tasks import load_task, list_tasks
    task = load_task("spatial_composition", source="sample")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_task": "micon_tasks.task",
    "Task": "micon_tasks.task",
    "TaskConfig": "micon_tasks.task",
    "list_tasks": "micon_tasks.task",
    "Case": "micon_tasks.types",
    "Checkpoint": "micon_tasks.types",
    "AnswerSet": "micon_tasks.types",
    "Verdict": "micon_tasks.types",
    "JudgeResult": "micon_tasks.types",
    "CaseScore": "micon_tasks.types",
    "load_judge": "micon_tasks.judges",
    "evaluate": "micon_tasks.runner",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'micon_tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
