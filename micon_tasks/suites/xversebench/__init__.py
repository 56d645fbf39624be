"""XVerseBench (bytedance/XVerse) as a suite: tasks ``xversebench_single`` / ``xversebench_multi`` (group
``xversebench``), the ``metrics`` scoring kind, the metric judges and ``micon prepare xversebench``.

Importing this package registers the kind (the task cards name it) and the judges; the task index reads
the cards beside this file (``xversebench_single.yaml``, ``xversebench_multi.yaml``, group ``xversebench.yaml``).
No model library is imported here; every metric model loads on first use. See docs/xversebench.md.
"""

from __future__ import annotations

import registry
from micon_tasks.suites.xversebench import judges  # noqa: F401 - registers them
from micon_tasks.suites.xversebench.kind import MetricsKind
from micon_tasks.suites.xversebench.prepare import add_cli  # noqa: F401 - `micon prepare xversebench`

registry.scoring_kinds.add("metrics", MetricsKind())
