"""Model adapters: one small class per model, so the harness can run any model on any task.

    from adapters import load_adapter
    model = load_adapter("omnigen", "pretrained=Shitao/OmniGen-v1-diffusers,dtype=bfloat16,steps=50")
    image = model.generate(case.refs, case.prompt, dar=True, seed=0)

Adding a model: subclass :class:`ModelAdapter`, write ``_generate``, decorate with
``@register_adapter("my_model")`` (docs/adapters.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.base import (
    DARNotSupportedError,
    GenerationError,
    GenerationRequest,
    ModelAdapter,
    resolve_dar,
    seed_everything,
)
from registry import get_adapter, list_adapters, register_adapter

__all__ = [
    "ModelAdapter",
    "GenerationError",
    "GenerationRequest",
    "DARNotSupportedError",
    "load_adapter",
    "register_adapter",
    "list_adapters",
    "resolve_dar",
    "seed_everything",
]


def load_adapter(name: str, args: str | Mapping[str, Any] | None = None, **kwargs: Any) -> ModelAdapter:
    """Build a registered adapter from an lm-eval style ``"k=v,k2=v2"`` string and/or keyword arguments.

    Values in the string are coerced (int, float, bool, None); keyword arguments win over the string;
    an unknown argument raises ``ConfigError`` listing the accepted ones.
    """
    from micon_tasks.argstr import build_with_args

    cls = get_adapter(name)
    return build_with_args(cls, args, kind="adapter", name=name, **kwargs)
