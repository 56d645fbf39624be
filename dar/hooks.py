"""``dar.enable`` / ``dar.disable``: one entry point that picks the right hook for the object given.

Why dispatch on the type here: users (and the adapters) hold a transformers model, a diffusers pipeline
or a bare diffusers transformer, and should not need to know which integration applies. Libraries are
only consulted when already imported (an object of theirs exists), so this module imports neither.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable

from .config import DARConfig
from .stats import DARStats

__all__ = ["enable", "disable", "is_enabled"]

_LOCK = threading.Lock()
_ACTIVE: weakref.WeakKeyDictionary[object, DARHandle] = weakref.WeakKeyDictionary()


class DARHandle:
    """What :func:`enable` returns: a context manager that calls :func:`disable` on exit (also on errors).

    ``stats`` (:class:`~dar.stats.DARStats`) counts the attention calls DAR rebalanced while enabled and
    those it passed through, by reason; ``stats.rebalanced == 0`` after a generation means DAR did nothing.
    """

    def __init__(self, target: object, config: DARConfig, undo: Callable[[], None], stats: DARStats):
        self.target, self.config, self._undo, self.stats = target, config, undo, stats

    def __enter__(self) -> DARHandle:
        return self

    def __exit__(self, *exc) -> None:
        disable(self.target)

    def __repr__(self) -> str:
        return f"DARHandle({type(self.target).__name__}, {self.config}, {self.stats})"


def _is_instance(obj: object, module: str, name: str) -> bool:
    lib = sys.modules.get(module)
    cls = getattr(lib, name, None) if lib is not None else None
    return isinstance(cls, type) and isinstance(obj, cls)


def enable(target: object, config: DARConfig | None = None) -> DARHandle:
    """Route ``target``'s attention through DAR until :func:`disable` (or the end of the ``with`` block).

    ``target``: a transformers ``PreTrainedModel`` (the language model's attention; say where the
    references are with ``dar.references``), a diffusers pipeline with a supported ``transformer``, or
    such a transformer itself (then the step options need ``dar.denoising_step``).
    """
    config = DARConfig() if config is None else config
    if not isinstance(config, DARConfig):
        raise TypeError(f"dar.enable: config must be a DARConfig, got {type(config).__name__}")
    with _LOCK:
        if target in _ACTIVE:
            raise RuntimeError(f"dar.enable: DAR is already enabled on this {type(target).__name__}; "
                               "call dar.disable first")
        stats = DARStats()
        if _is_instance(target, "transformers", "PreTrainedModel"):
            from .hf import install

            undo = install(target, config, stats)
        elif _is_instance(target, "diffusers", "DiffusionPipeline"):
            transformer = getattr(target, "transformer", None)
            if transformer is None:
                raise TypeError(f"dar.enable: {type(target).__name__} has no 'transformer' component to hook")
            from .diffusers_hooks import install

            undo = install(transformer, config, scheduler=getattr(target, "scheduler", None), stats=stats)
        elif _is_instance(target, "diffusers", "ModelMixin"):
            from .diffusers_hooks import install

            undo = install(target, config, stats=stats)
        else:
            raise TypeError(f"dar.enable: expected a transformers PreTrainedModel, a diffusers pipeline or a "
                            f"diffusers transformer, got {type(target).__name__}")
        handle = DARHandle(target, config, undo, stats)
        _ACTIVE[target] = handle
        return handle


def disable(target: object) -> bool:
    """Restore ``target``'s original attention; returns False when DAR was not enabled on it."""
    with _LOCK:
        handle = _ACTIVE.pop(target, None)
    if handle is None:
        return False
    handle._undo()
    return True


def is_enabled(target: object) -> bool:
    return target in _ACTIVE
