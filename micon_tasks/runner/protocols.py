"""What the runner needs from an adapter and from a judge, as small structural types.

Why Protocols rather than the base classes: the runner accepts any object with these methods (a user's
own judge, a wrapped adapter in a notebook), and the type checker then says exactly which calls cross
the seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from adapters.base import GenerationError, GenerationRequest
from micon_tasks.judges.base import JudgeRequest
from micon_tasks.types import JudgeResult

__all__ = ["Generator", "JudgeBackend"]


@runtime_checkable
class Generator(Protocol):
    """A model adapter as the generation stage uses it (see ``adapters.ModelAdapter``)."""

    name: str
    supports_dar: bool

    def generate_batch(self, requests: Sequence[GenerationRequest], *, dar: Any = None) -> list[Any | GenerationError]:
        """One PIL image or GenerationError per request, in order."""

    def model_info(self) -> dict[str, Any]:
        """What results record about the model (never a secret)."""


@runtime_checkable
class JudgeBackend(Protocol):
    """A judge as the judge stage uses it (see ``micon_tasks.judges.Judge``)."""

    backend: str
    kinds: tuple[str, ...]

    def judge_batch(self, requests: list[JudgeRequest]) -> list[JudgeResult]:
        """One result per request, in order; never raises for one case."""

    def provenance(self) -> dict[str, Any]:
        """Who judged and how (never a secret)."""
