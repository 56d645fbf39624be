"""``dar.enable`` / ``dar.disable``: one entry point that picks the right hook for the object given.

Why dispatch on the type here: users (and the adapters) hold a transformers model, a diffusers pipeline,
a bare diffusers transformer or an upstream model, and should not need to know which integration applies:
a model with a registered layout (dar.layouts) goes to dar.routing, other transformers models to dar.hf. Libraries are
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
    ``maps`` (a :class:`dar.maps.MapRecorder`, with ``DARConfig(record_maps=True)`` on a layout-hooked
    model; else None) holds the attention maps recorded while enabled.
    """

    def __init__(self, target: object, config: DARConfig, undo: Callable[[], None], stats: DARStats, maps=None):
        self.target, self.config, self._undo, self.stats, self.maps = target, config, undo, stats, maps

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


def enable(target: object, config: DARConfig | None = None, **options) -> DARHandle:
    """Route ``target``'s attention through DAR until :func:`disable` (or the end of the ``with`` block).

    ``target``: a model with a registered layout (:mod:`dar.layouts`: the diffusers transformers, and the
    upstream models whose adapters register one; ``options`` go to that layout), a diffusers pipeline
    whose ``transformer`` has one, or a transformers ``PreTrainedModel`` (the language model's attention;
    say where the references are with ``dar.references``). A bare transformer needs
    ``dar.denoising_step`` for the step options.
    """
    config = DARConfig() if config is None else config
    if not isinstance(config, DARConfig):
        raise TypeError(f"dar.enable: config must be a DARConfig, got {type(config).__name__}")
    with _LOCK:
        if target in _ACTIVE:
            raise RuntimeError(f"dar.enable: DAR is already enabled on this {type(target).__name__}; "
                               "call dar.disable first")
        stats, maps = DARStats(), None
        layout = _layout(target, config, options)
        if layout is not None:
            from .routing import install as install_layout

            undo, installation = install_layout(layout, config, stats)
            maps = installation.maps
        elif _is_instance(target, "transformers", "PreTrainedModel"):
            if options:
                raise TypeError(f"dar.enable: transformers models take no layout options, got {sorted(options)}")
            from .hf import install

            undo = install(target, config, stats)
        else:
            raise TypeError(f"dar.enable: expected a transformers PreTrainedModel, a diffusers pipeline or a "
                            f"diffusers transformer, got {type(target).__name__}")
        handle = DARHandle(target, config, undo, stats, maps)
        _ACTIVE[target] = handle
        return handle


def _layout(target: object, config: DARConfig, options: dict):
    """The registered layout that hooks ``target`` (a pipeline's transformer), or None for other models."""
    from .layouts import find_layout, layout_for

    if _is_instance(target, "diffusers", "DiffusionPipeline"):
        transformer = getattr(target, "transformer", None)
        if transformer is None:
            raise TypeError(f"dar.enable: {type(target).__name__} has no 'transformer' component to hook")
        return layout_for(transformer)(transformer, config, scheduler=getattr(target, "scheduler", None), **options)
    cls = find_layout(target)
    if cls is None and _is_instance(target, "diffusers", "ModelMixin"):
        cls = layout_for(target)  # raises: no layout for this diffusers model
    return None if cls is None else cls(target, config, **options)


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
