"""``python -m micon_tasks`` (also ``accelerate launch -m micon_tasks run ...`` and ``torchrun -m``)."""

from __future__ import annotations

import sys

from micon_tasks.cli import main

if __name__ == "__main__":
    sys.exit(main())
