"""Dynamic Attention Rebalancing (DAR): a training-free, inference-time attention fix for multi-image
generation (MICON-Bench, PROTOCOL.md section 7), usable in any transformers or diffusers model.

    from dar import DARConfig, dar_attention           # the pure op, (B, H, L, D) like torch's SDPA
    import dar
    with dar.enable(pipe_or_model, DARConfig(gamma=0.15)) as handle:
        image = pipe(...)                              # attention restored on exit, also on errors
    handle.stats.rebalanced                            # attention calls DAR reached (0: it did nothing)

See docs/dar.md for the formula, the options and their defaults, and the hooks.
"""

from __future__ import annotations

from .config import DARConfig
from .stats import DARStats

__all__ = ["DARConfig", "DARStats", "dar_attention", "enable", "disable", "references", "denoising_step"]


def __getattr__(name: str):
    # The op and the hooks import torch; keep ``import dar`` (and dar.layouts) light until they are needed.
    if name == "dar_attention":
        from .op import dar_attention

        return dar_attention
    if name in ("enable", "disable"):
        from . import hooks

        return getattr(hooks, name)
    if name in ("references", "denoising_step"):
        from . import context

        return getattr(context, name)
    raise AttributeError(f"module 'dar' has no attribute {name!r}")
