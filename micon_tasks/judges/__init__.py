"""Judges: a vision-language model answers each checkpoint of a case pass/fail (PROTOCOL 5).

Backends register themselves with ``registry.register_judge`` when imported here; none of them
imports torch, transformers or openai at import time.

    from micon_tasks import load_judge
    judge = load_judge("openai", "base_url=http://localhost:8000/v1,concurrency=32")
    results = judge.judge_batch(requests)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from micon_tasks.argstr import build_with_args
from micon_tasks.judges import hf_judge, openai_judge  # noqa: F401 - registers the backends
from micon_tasks.judges.base import Completion, Judge, JudgeRequest, error_result
from micon_tasks.judges.parser import PARSER_VERSION

__all__ = ["Judge", "JudgeRequest", "Completion", "load_judge", "error_result", "PARSER_VERSION"]


def load_judge(name: str, args: str | Mapping[str, Any] | None = None, **kwargs: Any) -> Judge:
    """Build a registered judge from ``judge_args`` (``"k=v,k2=v2"``, JSON or a mapping) plus kwargs."""
    import registry

    cls = registry.get_judge(name)
    return build_with_args(cls, args, kind="judge", name=name, **kwargs)
