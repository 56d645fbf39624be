"""Why a publish stopped. (The shared errors module belongs to the foundation; these are publish-only.)"""

from __future__ import annotations

from micon_tasks.errors import MiconError

__all__ = ["PublishError", "PublishRefused"]


class PublishError(MiconError):
    """The publish could not be completed (round-trip mismatch, no token, the Hub refused, ...)."""


class PublishRefused(PublishError):
    """The raw data has problems; nothing was written or uploaded. ``problems`` lists every one."""

    def __init__(self, problems: list) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"publish refused: {len(self.problems)} problem(s) in the raw data, nothing was uploaded:\n{lines}")
