"""Third-party suites evaluated beside MICON-Bench (XVerseBench, ...), one sub-package each.

A suite brings its own tasks, data preparation, judges and scoring kind; importing this package imports
every suite, which registers them (the registries list it among their built-ins).
"""

from __future__ import annotations

from micon_tasks.suites import (
    omnicontext,  # noqa: F401 - registers the OmniContext suite
    xversebench,  # noqa: F401 - registers the XVerseBench suite
)
