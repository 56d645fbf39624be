"""Third-party suites evaluated beside MICON-Bench (XVerseBench, ...), one sub-package each.

A suite brings its own tasks, data preparation, judges and scoring kind; importing its package
registers them. Nothing here imports a heavy library at import time.
"""

from __future__ import annotations
