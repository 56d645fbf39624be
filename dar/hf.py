"""DAR for transformers models: a registered attention implementation named ``"dar"``.

Why both registrations: transformers builds attention masks through ``AttentionMaskInterface`` keyed by the
implementation name; registering only the attention function makes the mask code bail out and every call
then receives ``attention_mask=None`` (padding silently ignored). We register ``sdpa_mask`` under "dar".

The function computes DAR's key weights and then calls transformers' own ``sdpa_attention_forward`` with
the scaled keys, so GQA, mask slicing and causality follow exactly what "sdpa" does. Where the references
are comes from :func:`dar.references` (a context the caller sets around the forward or ``generate``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import torch

from .config import DARConfig
from .context import _LAYER, _scoped, current_state, current_step
from .op import _to_device, dar_weights, sample_query_positions
from .stats import DARStats

__all__ = ["ATTN_IMPLEMENTATION", "register", "install", "dar_sdpa_attention"]

ATTN_IMPLEMENTATION = "dar"
# module -> (config, stats) of the dar.enable that routed it
_TARGETS: weakref.WeakKeyDictionary[torch.nn.Module, tuple[DARConfig, DARStats | None]] = weakref.WeakKeyDictionary()
_REGISTER_LOCK = threading.Lock()
_registered = False


def _fit(rows: torch.Tensor, batch: int, length: int, fill) -> torch.Tensor:
    """Cut or pad (with ``fill``) the last dim to ``length`` and broadcast rows to ``batch``."""
    rows = rows if rows.dim() == 2 else rows.unsqueeze(0)
    if rows.shape[0] not in (1, batch):
        raise ValueError(f"dar.references: masks have {rows.shape[0]} rows but the forward has batch {batch}")
    if rows.shape[1] >= length:
        rows = rows[:, :length]
    else:
        pad = torch.full((rows.shape[0], length - rows.shape[1]), fill, dtype=rows.dtype, device=rows.device)
        rows = torch.cat([rows, pad], dim=1)
    return rows.expand(batch, length)


def _key_weights(module, query, key, attention_mask, kwargs) -> torch.Tensor | None:
    state = current_state()
    config, stats = _TARGETS.get(module, (None, None))

    def passed(reason: str) -> None:
        if stats is not None:
            stats.add_passed(reason)

    if state is None:
        passed("no_references_context")
        return None
    config = config or state.config
    layer = getattr(module, "layer_idx", None)
    if config is None:
        return None
    excluded = config.exclusion(layer=layer, step=current_step())
    if excluded is not None:
        passed(excluded)
        return None
    if (kwargs.get("dropout") or 0.0) > 0.0:
        passed("dropout")
        return None
    batch, _, length_q, _ = query.shape
    length_k = key.shape[2]
    device = query.device
    cache_key = (batch, length_q, length_k, str(device), config)
    if cache_key not in state.cache:  # built once per shape, then reused by every layer
        state.cache[cache_key] = _fit_state(state, config, batch, length_q, length_k, device)
    ref, query_mask, ids, sampled, has_refs = state.cache[cache_key]
    if not has_refs:  # no reference key in this call (e.g. before the references, or cond_rows all False)
        passed("no_reference_keys")
        return None
    mask = attention_mask
    if mask is not None and mask.shape[-1] != length_k:
        mask = mask[..., :length_k]
    causal = kwargs.get("is_causal")
    causal = getattr(module, "is_causal", True) if causal is None else causal
    causal = bool(causal) and mask is None and length_q > 1  # the rule sdpa_attention_forward applies
    with _scoped(_LAYER, layer):
        w, _ = dar_weights(query, key, ref, config, attn_mask=mask, scale=kwargs.get("scaling"), is_causal=causal,
                           query_mask=query_mask, ref_ids=ids, sampled=sampled)
    if stats is not None:
        stats.add_rebalanced()
    return w


def _fit_state(state, config: DARConfig, batch: int, length_q: int, length_k: int, device):
    """The caller's absolute-position masks cut to this call's shape, on the device, plus sampled queries and
    whether any reference key is left (decided on the CPU, so no device sync)."""
    ref = _fit(state.ref_mask.cpu(), batch, length_k, False)
    if config.cfg_branches == "cond":
        if state.cond_rows is None:
            raise ValueError("dar: cfg_branches='cond' needs dar.references(..., cond_rows=<bool (B,)>)")
        ref = ref & state.cond_rows.cpu()[:, None]
    query_mask = state.query_mask
    if query_mask is not None:
        query_mask = query_mask.cpu()
        if query_mask.shape[-1] != length_q:  # absolute positions: the current queries are the last Lq
            query_mask = _fit(query_mask, batch, length_k, False)[:, length_k - length_q:]
    ids = None if state.ref_ids is None else _to_device(_fit(state.ref_ids.cpu(), batch, length_k, -1), device)
    sampled = sample_query_positions(query_mask, batch, length_q, config, device)
    return _to_device(ref.contiguous(), device), query_mask, ids, sampled, bool(ref.any())


def dar_sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                       attention_mask: torch.Tensor | None, **kwargs):
    """The ``AttentionInterface`` function: DAR-scaled keys, then transformers' SDPA path."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    w = _key_weights(module, query, key, attention_mask, kwargs)
    if w is not None:
        key = key * w.to(key.dtype)[:, None, :, None]
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def register() -> None:
    """Register "dar" with transformers' attention and mask interfaces (idempotent)."""
    global _registered
    with _REGISTER_LOCK:
        if _registered:
            return
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(ATTN_IMPLEMENTATION, dar_sdpa_attention)
        AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
        _registered = True


def _snapshot(config) -> dict:
    """Every (sub-)config's current implementation, in set_attn_implementation's nested dict form."""
    out = {"": config._attn_implementation}
    for name in getattr(config, "sub_configs", {}) or {}:
        sub = getattr(config, name, None)
        if sub is not None:
            out[name] = _snapshot(sub)
    return out


def install(model, config: DARConfig, stats: DARStats | None = None) -> Callable[[], None]:
    """Route the language model's attention of ``model`` through DAR; returns the undo function.

    ``stats`` receives the count of attention calls rebalanced and passed through (see :mod:`dar.stats`)."""
    register()
    before = _snapshot(model.config)
    # Only the language model: the string form would also route vision towers and VQ encoders.
    subs = getattr(model.config, "sub_configs", {}) or {}
    target = {"text_config": ATTN_IMPLEMENTATION} if "text_config" in subs else ATTN_IMPLEMENTATION
    model.set_attn_implementation(target)
    routed = model.config.text_config if isinstance(target, dict) else model.config
    if routed._attn_implementation != ATTN_IMPLEMENTATION:
        model.set_attn_implementation(before)
        raise RuntimeError(f"dar.enable: {type(model).__name__} cannot switch its attention implementation "
                           "(it does not use transformers' AttentionInterface)")
    modules = list(model.modules())
    for m in modules:
        _TARGETS[m] = (config, stats)

    def uninstall() -> None:
        for m in modules:
            _TARGETS.pop(m, None)
        model.set_attn_implementation(before)

    return uninstall
