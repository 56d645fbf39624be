"""An open registry of model layouts: where a model's reference tokens are and which attention it calls.

Why a registry: every model family puts its reference-image tokens somewhere else in its joint attention
sequence and calls attention through a different function (diffusers' ``dispatch_attention_fn``, a
module's ``F.scaled_dot_product_attention``, UNO's RoPE ``apply_rope``, BAGEL's ``flash_attn_varlen_func``).
That knowledge is all a family contributes, as a :class:`ModelLayout` subclass registered under the
model's class name (as diffusers keeps per-model block metadata). Everything else, the wrapping of the
attention function, the layer/step/branch scope, the counting, the maps and the weight reuse, lives once
in :mod:`dar.routing`. diffusers pipelines register theirs in :mod:`dar.diffusers_hooks`; the
upstream-code adapters (OmniGen2, BAGEL, UNO) register theirs in their own modules.

This module imports no torch, so an adapter can register a layout at import time and stay light.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["ModelLayout", "Placement", "Route", "StepCounter", "register_layout", "find_layout", "layout_for",
           "registered_layouts", "coord_grid"]

_LOCK = threading.Lock()
_LAYOUTS: dict[str, type[ModelLayout]] = {}
_BUILTINS = ("dar.diffusers_hooks",)  # modules that register the built-in layouts, imported on first lookup
_loaded = False


@dataclass(frozen=True)
class Route:
    """One module-level name the layout's attention goes through, and how to wrap it.

    ``router(original) -> replacement``; :mod:`dar.routing` has the wrappers for the common conventions
    (``functional_router`` for a module's ``F``, ``dispatch_router`` for diffusers' dispatcher)."""

    module: str
    attribute: str
    router: Callable[[Callable], Any]


@dataclass
class Placement:
    """Where the tokens are in one forward, in the attention call's key/query coordinates (CPU tensors).

    ``ref_mask`` bool (B, Lk), ``query_mask`` bool (B, Lq) (the generated-image queries), ``ref_ids`` ints
    (B, Lk) naming each reference (-1 elsewhere). ``step`` is the fraction i/N of the denoising schedule
    (None: unknown), ``step_index`` the integer step (for ``reuse_steps``), ``branch`` the guidance
    branch's position within the step, ``conditional`` whether this forward is the conditional branch.
    ``reason``: a pass-through reason for every call of this forward (e.g. BAGEL's ``cache_update``).
    ``grids``: reference id -> (rows, cols) of its tokens (row-major), for the maps; ``map_ids`` (like
    ``ref_ids``) picks the tokens the maps use when they differ; ``maps_unavailable`` says why a layout
    cannot give a grid. ``map_row`` is the batch row the maps read (the conditional one; None: this
    forward feeds no map). ``cond_rows`` bool (B,): the conditional rows, for ``cfg_branches="cond"`` in
    layouts that mask rows instead of declaring whole forwards unconditional (diffusers pipelines).
    """

    ref_mask: Any
    query_mask: Any
    ref_ids: Any = None
    step: float | None = None
    step_index: int | None = None
    branch: int = 0
    conditional: bool = True
    reason: str | None = None
    grids: dict[int, tuple[int, int]] = field(default_factory=dict)
    map_ids: Any = None
    maps_unavailable: str | None = None
    map_row: int | None = 0
    cond_rows: Any = None


class ModelLayout:
    """What one model family contributes to DAR. Subclass, register, and ``dar.enable`` does the rest.

    Class attributes: ``routes`` (the attention functions to wrap), ``outside_layers`` (the pass-through
    reason for calls made outside :meth:`attention_modules`, e.g. OmniGen2's refiners; None: such calls
    have no layer index and are scoped like any other), ``strict`` (a call whose key length differs from
    the located sequence raises instead of passing as ``other_sequence``; for layouts where every routed
    call must be the joint sequence).
    Instances are made per ``dar.enable(model, config, **options)``; ``options`` are the layout's own
    (e.g. the number of denoising steps of an upstream loop).
    """

    routes: ClassVar[tuple[Route, ...]] = ()
    outside_layers: ClassVar[str | None] = None
    strict: ClassVar[bool] = False

    def __init__(self, model: Any, config: Any, *, scheduler: Any = None, **options: Any):
        if options:
            raise TypeError(f"dar.enable: {type(model).__name__} takes no layout options, got {sorted(options)}")
        self.model, self.config, self.scheduler = model, config, scheduler

    def hooked_module(self) -> Any:
        """The module whose forward :meth:`locate` reads (default: the model given to ``dar.enable``)."""
        return self.model

    def attention_modules(self) -> list[Any]:
        """The attention modules in layer order; the position is the index ``DARConfig.layers`` uses."""
        raise NotImplementedError

    def locate(self, call: dict[str, Any]) -> Placement:
        """The placement for one forward of :meth:`hooked_module`, from its bound call arguments."""
        raise NotImplementedError

    def setup(self) -> Callable[[], None] | None:
        """Anything else to change while enabled (e.g. processors); returns the function that undoes it."""
        return None

    def get_routes(self) -> tuple[Route, ...]:
        return self.routes


class StepCounter:
    """(step index, branch index within the step) from the timesteps a model is called with.

    Pipelines call their model once per guidance branch at each timestep, in a fixed order; a new timestep
    value starts a new step."""

    def __init__(self) -> None:
        self.step, self.branch, self._last = -1, -1, None

    def see(self, t: float) -> tuple[int, int]:
        if self._last is None or t != self._last:
            self.step, self.branch, self._last = self.step + 1, 0, t
        else:
            self.branch += 1
        return self.step, self.branch


def coord_grid(rows: Any, cols: Any) -> tuple[int, int] | None:
    """(rows, cols) of a reference's token grid from each token's row and column coordinate (1-D tensors,
    tokens row-major), or None when the tokens do not fill a rectangle."""
    if len(rows) == 0:
        return None
    shape = (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1)
    return shape if shape[0] * shape[1] == len(rows) else None


def register_layout(*class_names: str, override: bool = False) -> Callable[[type[ModelLayout]], type[ModelLayout]]:
    """Class decorator: ``@register_layout("OmniGenTransformer2DModel")`` makes ``dar.enable`` accept
    models of that class (matched along the MRO by ``module.QualName`` or by the bare class name, so the
    model's library need not be imported; qualified names keep generic class names such as ``Flux`` apart)."""

    def decorate(cls: type[ModelLayout]) -> type[ModelLayout]:
        if not (isinstance(cls, type) and issubclass(cls, ModelLayout)):
            raise TypeError(f"register_layout: {cls!r} is not a ModelLayout subclass")
        with _LOCK:
            for name in class_names:
                if name in _LAYOUTS and _LAYOUTS[name] is not cls and not override:
                    raise ValueError(f"register_layout: {name!r} already has the layout {_LAYOUTS[name].__name__}")
                _LAYOUTS[name] = cls
        return cls

    return decorate


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        import importlib

        for module in _BUILTINS:
            importlib.import_module(module)
        _loaded = True


def find_layout(model: Any, *, builtins: bool = True) -> type[ModelLayout] | None:
    """The layout registered for ``model``'s class or a base class (None when there is none)."""
    if builtins:
        _load_builtins()
    for cls in type(model).__mro__:
        for name in (f"{cls.__module__}.{cls.__qualname__}", cls.__name__):
            if name in _LAYOUTS:
                return _LAYOUTS[name]
    return None


def layout_for(model: Any) -> type[ModelLayout]:
    layout = find_layout(model)
    if layout is None:
        raise TypeError(f"dar.enable: no DAR layout for {type(model).__name__}; registered: "
                        f"{', '.join(registered_layouts())} (register one with dar.layouts.register_layout, "
                        "or call dar.dar_attention directly)")
    return layout


def registered_layouts() -> list[str]:
    _load_builtins()
    return sorted(_LAYOUTS)
