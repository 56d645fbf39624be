"""Per-forward DAR state carried in context variables, so the op stays a pure function.

Why contextvars: the attention hooks are called deep inside a model with no way to pass extra arguments.
The caller (or a forward pre-hook on a diffusers transformer) sets *where the references are* for the
current forward; attention hooks read it. Context variables are thread- and task-local and are reset
by token, so nested or concurrent forwards cannot leak state into each other.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import DARConfig

__all__ = ["ForwardState", "references", "denoising_step", "current_state", "current_layer", "current_step"]


@dataclass(frozen=True)
class ForwardState:
    """What the attention hooks need for one forward: reference keys, generated queries, config, step.

    Masks are in the attention's key/query coordinates. ``ref_mask`` rows that must be left alone
    (e.g. the unconditional CFG branch) are all False. ``query_mask``/``ref_ids`` may be None.
    A forward hooked through a layout (:mod:`dar.routing`) also carries its ``placement`` (the layout's
    :class:`~dar.layouts.Placement`: branch, step index, whether conditional, grids) and its ``hook`` (the
    installation, whose ``layout`` holds ``outside_layers`` and ``strict``); those are read there, not
    copied here. The fields here are what the placement becomes for the attention calls (masks moved to
    the device and cut to the conditional rows, the effective step, the forward's pass-through reason).
    """

    config: DARConfig | None
    ref_mask: torch.Tensor
    query_mask: torch.Tensor | None = None
    ref_ids: torch.Tensor | None = None
    cond_rows: torch.Tensor | None = None
    step: float | None = None
    sampled: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, compare=False)
    has_refs: bool = True  # whether ref_mask has any True (computed on the CPU by the hook)
    stats: Any = field(default=None, compare=False, repr=False)  # the enabling handle's DARStats
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # per-shape masks, reused by layers
    reason: str | None = None  # pass-through reason for every call of this forward (set by dar.routing)
    placement: Any = field(default=None, compare=False, repr=False)  # the layout's Placement (dar.routing)
    hook: Any = field(default=None, compare=False, repr=False)  # the installation (layout, reuse cache, maps)


_STATE: ContextVar[ForwardState | None] = ContextVar("dar_forward_state", default=None)
_LAYER: ContextVar[int | None] = ContextVar("dar_layer_index", default=None)
_STEP: ContextVar[float | None] = ContextVar("dar_step_fraction", default=None)


def current_state() -> ForwardState | None:
    return _STATE.get()


def current_layer() -> int | None:
    return _LAYER.get()


def current_step() -> float | None:
    """The step fraction set by :func:`denoising_step` (None outside one)."""
    return _STEP.get()


def _bool_rows(name: str, value: torch.Tensor | None, dims: tuple[int, ...]) -> torch.Tensor | None:
    if value is None:
        return None
    value = torch.as_tensor(value)
    if value.dtype != torch.bool or value.dim() not in dims:
        raise ValueError(f"dar.references: {name} must be a bool tensor with {' or '.join(map(str, dims))} dims, "
                         f"got dtype {value.dtype} and shape {tuple(value.shape)}")
    return value


@contextlib.contextmanager
def references(ref_mask: torch.Tensor, query_mask: torch.Tensor | None = None, ref_ids: torch.Tensor | None = None,
               cond_rows: torch.Tensor | None = None, config: DARConfig | None = None) -> Iterator[ForwardState]:
    """Say where the reference-image keys are for the forwards run inside this block (transformers models and
    hand-written generation loops).

    ``ref_mask`` bool (Lk,) or (B, Lk) in absolute key positions: with a KV cache it is cut or padded with
    False to each call's key length, so the positions stay valid as the cache grows. ``query_mask`` bool
    (Lq,) or (B, Lq) marks the generated-image queries of a call of that query length, or, when longer,
    absolute positions of which the last Lq (the current queries) are used; None samples every query.
    ``ref_ids`` (ints, like ``ref_mask``) enables ``normalize="per_ref"``. ``cond_rows`` bool (B,) marks the
    conditional CFG rows (needed when ``cfg_branches="cond"``). ``config`` is used only by models that
    were not given one through ``dar.enable``.
    """
    ref = _bool_rows("ref_mask", ref_mask, (1, 2))
    state = ForwardState(config=config, ref_mask=ref, query_mask=_bool_rows("query_mask", query_mask, (1, 2)),
                         ref_ids=None if ref_ids is None else torch.as_tensor(ref_ids),
                         cond_rows=_bool_rows("cond_rows", cond_rows, (1,)), step=None)
    token = _STATE.set(state)
    try:
        yield state
    finally:
        _STATE.reset(token)


@contextlib.contextmanager
def denoising_step(fraction: float) -> Iterator[None]:
    """Declare the current denoising step as a fraction i/N of the schedule (for custom loops; pipelines
    hooked by ``dar.enable`` read it from their scheduler)."""
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"dar.denoising_step: fraction must be within [0, 1], got {fraction!r}")
    token = _STEP.set(float(fraction))
    try:
        yield
    finally:
        _STEP.reset(token)


@contextlib.contextmanager
def _scoped(var: ContextVar, value) -> Iterator[None]:
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
