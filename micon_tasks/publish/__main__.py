"""``python -m micon_tasks.publish --raw DIR --repo-id ORG/NAME [...]`` (same as ``micon publish``)."""

from __future__ import annotations

import sys

from micon_tasks.publish.cli import main

if __name__ == "__main__":
    sys.exit(main())
