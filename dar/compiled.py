"""DAR's analysis as one ``torch.compile``d function, with the eager function as reference and fallback.

Why: eager, the analysis is a chain of some 60 small kernels (gather, casts, one m x Lk product, the
softmax pieces, min/max, thresholds); on a GPU their launches cost more host time than the arithmetic.
Compiled, the same Python function (``dar.op.eager_analysis``) becomes a few fused kernels with static
shapes per layer layout (``dynamic=False``: a model's layers share a few shapes), and the call still
makes no host-device sync. ``DARConfig.compile``: "auto" compiles on CUDA only, True everywhere, False
never. When compiling or running the compiled graph fails (no C++ compiler, no Triton, an unsupported
op), the failure is warned about once, the eager function answers, and compiling is not tried again in
this process.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import torch

from .config import DARConfig

__all__ = ["analysis", "reset", "broken"]

_LOCK = threading.Lock()
_compiled: Callable | None = None  # the guarded compiled analysis, built once per process
_broken: str | None = None  # why compiling failed in this process


def broken() -> str | None:
    """Why the compiled analysis is off in this process (None while it is usable)."""
    return _broken


def reset() -> None:
    """Forget the compiled function and any failure (tests; a process whose toolchain changed)."""
    global _compiled, _broken
    with _LOCK:
        _compiled, _broken = None, None


def _wants(config: DARConfig, device: torch.device) -> bool:
    if config.compile is False or _broken is not None:
        return False
    return config.compile is True or device.type == "cuda"


def _build() -> Callable:
    """``torch.compile`` of the eager analysis, wrapped to fall back to it (and say why, once) on failure.

    Built once: the config and the device only decide *whether* it is used; torch's own cache, keyed by
    the guards on the arguments, holds the graphs per shape and config."""
    from .op import eager_analysis

    compiled = torch.compile(eager_analysis, dynamic=False)

    def run(*args):
        global _broken
        try:
            return compiled(*args)
        except Exception as exc:  # noqa: BLE001  (any compiler failure: fall back, say so once)
            with _LOCK:
                first = _broken is None
                _broken = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if first:
                warnings.warn(f"dar: the compiled analysis failed ({_broken}); using the eager one from now on",
                              RuntimeWarning, stacklevel=2)
            return eager_analysis(*args)

    return run


def analysis(config: DARConfig, device: torch.device) -> Callable:
    """The analysis function for this config and device: compiled when asked and working, else eager."""
    global _compiled
    if not _wants(config, torch.device(device)):
        from .op import eager_analysis

        return eager_analysis
    run = _compiled
    if run is None:
        with _LOCK:
            if _compiled is None:
                _compiled = _build()
            run = _compiled
    return run
