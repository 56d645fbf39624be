"""micon-bench: an evaluation harness for MICON-Bench (multi-image context image generation).

The public API is imported lazily so that ``import micon_tasks`` stays cheap (no torch, no datasets).

    from micon_tasks import load_task, list_tasks
    task = load_task("spatial_composition", source="sample")
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

__version__ = "0.1.0"

#: Top-level packages of this distribution besides micon_tasks (the user's layout). ``adapters`` is also
#: the import name of AdapterHub's package: with that one first on the path, ``import adapters`` would
#: silently mix two projects, so the check below stops at once instead.
SIBLING_PACKAGES = ("registry", "adapters", "dar")


class EnvironmentClashError(ImportError):
    """A sibling package of this distribution resolves to a file outside it."""


def _foreign_sibling() -> str | None:
    """Why the environment is unusable (one line), or None: each sibling must sit beside micon_tasks."""
    root = Path(__file__).resolve().parent.parent
    for name in SIBLING_PACKAGES:
        module = sys.modules.get(name)
        if module is not None:
            found = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), None)
        else:
            spec = importlib.util.find_spec(name)
            found = None if spec is None else (spec.origin if spec.has_location else
                                               next(iter(spec.submodule_search_locations or []), None))
        location = Path(found).resolve() if found else None
        if location is None or location.parent.parent != root and location.parent != root:
            return (f"package {name!r} resolves to {found or 'nothing'}, not to micon-bench's own "
                    f"({root / name}); another package of that name (e.g. AdapterHub's 'adapters') comes first on "
                    f"the path: uninstall it or use a separate virtual environment (pip uninstall adapters), "
                    f"and check PYTHONPATH")
    return None


def _stop_in_one_line(kind: type, exc: BaseException, tb: Any, _previous: Any = sys.excepthook) -> None:
    """At the top level (the ``micon`` command) the clash is one line and exit status 2, not a traceback."""
    if isinstance(exc, EnvironmentClashError):
        print(f"micon: error: {exc}", file=sys.stderr)
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(2)
    _previous(kind, exc, tb)


_problem = _foreign_sibling()
if _problem is not None:
    sys.excepthook = _stop_in_one_line
    raise EnvironmentClashError(_problem)

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
