"""DAR for diffusers transformers: a reversible hook for OmniGen, QwenImage(Edit Plus), FLUX.2 (klein)
and FLUX.1 (Kontext).

How it works, and why this way:
* A forward pre-hook on the transformer reads the call's keyword arguments, locates the reference and
  generated-image tokens in the joint attention sequence (one small "layout" function per family), and
  puts a :class:`~dar.context.ForwardState` in a context variable; a forward hook (always called, also
  on errors) removes it.
* Pre/post hooks on each attention module set the current layer index (for ``DARConfig.layers``).
* The attention call itself is routed by replacing one name in the model's own module for the duration:
  ``dispatch_attention_fn`` (Flux, Flux2, QwenImage) or ``F`` (OmniGen calls
  ``F.scaled_dot_product_attention`` directly). The router computes DAR's key weights and calls the
  *original* function with the scaled keys, so the configured attention backend, GQA and mask handling
  are untouched; calls it cannot place (no state, other key length, e.g. FLUX.2's ref-only KV passes)
  go straight through. Attention processors are never replaced, so user processors survive.
* Every call inside a hooked forward is counted in the handle's :class:`~dar.stats.DARStats`, as
  rebalanced or as passed through with its reason, so a caller can tell when DAR reached nothing.
"""

from __future__ import annotations

import inspect
import sys
import threading
import types
from collections.abc import Callable

import torch

from .config import DARConfig
from .context import _LAYER, _STATE, ForwardState, current_step
from .op import _to_device, dar_weights, sample_query_positions
from .stats import DARStats

__all__ = ["install", "supported_models", "layout_for"]

Layout = Callable[[torch.nn.Module, dict], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


# ----------------------------------------------------------------------------- layouts (TINY_MODELS.md 2.3)
def _omnigen_layout(model, args):
    """[condition tokens (refs written over their placeholders) | time token | output latents]."""
    latents, input_ids = args["hidden_states"], args["input_ids"]
    batch, patch = latents.shape[0], model.config.patch_size
    n_out = (latents.shape[-2] // patch) * (latents.shape[-1] // patch)
    length = (input_ids.shape[1] + 1 if input_ids is not None else 1) + n_out
    ref = torch.zeros(batch, length, dtype=torch.bool)
    ids = torch.full((batch, length), -1, dtype=torch.long)
    for row, spans in (args.get("input_image_sizes") or {}).items():
        for k, (start, end) in enumerate(spans):
            ref[row, start:end] = True
            ids[row, start:end] = k
    query = torch.zeros(batch, length, dtype=torch.bool)
    query[:, length - n_out:] = True
    return ref, query, ids


def _qwen_layout(model, args):
    """[text | output latents | ref 1 latents | ref 2 ...], sizes from ``img_shapes``."""
    latents, text = args["hidden_states"], args["encoder_hidden_states"]
    batch, n_text = latents.shape[0], text.shape[1]
    length = n_text + latents.shape[1]
    shapes = args.get("img_shapes") or []
    ref = torch.zeros(batch, length, dtype=torch.bool)
    query = torch.zeros(batch, length, dtype=torch.bool)
    ids = torch.full((batch, length), -1, dtype=torch.long)
    for row in range(batch):
        row_shapes = shapes[row] if row < len(shapes) else shapes[-1]
        if row_shapes and isinstance(row_shapes[0], int):  # a single (f, h, w): no references
            row_shapes = [row_shapes]
        offset = n_text
        for k, (frames, height, width) in enumerate(row_shapes):
            n = frames * height * width
            if k == 0:
                query[row, offset:offset + n] = True
            else:
                ref[row, offset:offset + n] = True
                ids[row, offset:offset + n] = k - 1
            offset += n
    return ref, query, ids


def _flux_layout(model, args):
    """[text | output latents | ref latents]; ``img_ids[..., 0]`` is 0 for output tokens and a per-reference
    time/index coordinate for reference tokens (Kontext: 1; FLUX.2: 10, 20, ...)."""
    latents, text, img_ids = args["hidden_states"], args["encoder_hidden_states"], args["img_ids"]
    batch, n_text = latents.shape[0], text.shape[1]
    coord = img_ids[..., 0]
    if coord.dim() == 1:
        coord = coord.unsqueeze(0)
    coord = coord.expand(batch, -1).cpu()
    is_ref = coord != 0
    pad = torch.zeros(batch, n_text, dtype=torch.bool)
    ref = torch.cat([pad, is_ref], dim=1)
    query = torch.cat([pad, ~is_ref], dim=1)
    ids = torch.cat([torch.full((batch, n_text), -1, dtype=torch.long), coord.round().long()], dim=1)
    return ref, query, ids


_FAMILIES: dict[str, tuple[Layout, str, bool]] = {
    # class name: (layout, routed module attribute, CFG branches batched in one forward)
    "OmniGenTransformer2DModel": (_omnigen_layout, "F", True),
    "QwenImageTransformer2DModel": (_qwen_layout, "dispatch_attention_fn", False),
    "Flux2Transformer2DModel": (_flux_layout, "dispatch_attention_fn", False),
    "FluxTransformer2DModel": (_flux_layout, "dispatch_attention_fn", False),
}


def supported_models() -> list[str]:
    return sorted(_FAMILIES)


def layout_for(model: torch.nn.Module) -> tuple[Layout, str, bool]:
    for cls in type(model).__mro__:
        if cls.__name__ in _FAMILIES:
            return _FAMILIES[cls.__name__]
    raise TypeError(f"dar.enable: no DAR layout for {type(model).__name__}; supported diffusers transformers: "
                    f"{', '.join(supported_models())} (other models can call dar.dar_attention directly)")


# ----------------------------------------------------------------------------- routing
def _weights(state: ForwardState | None, query_bhsd: torch.Tensor, key_bhsd: torch.Tensor, attn_mask, scale,
             is_causal) -> torch.Tensor | None:
    """DAR key weights (B, Lk) for this attention call, or None when DAR does not apply to it (the reason is
    counted in the hook's :class:`~dar.stats.DARStats`)."""
    if state is None or state.config is None:
        return None  # outside a hooked forward (another model of the same class): not ours to count
    config, stats = state.config, state.stats
    reason = config.exclusion(layer=_LAYER.get(), step=state.step)
    if reason is None:
        batch, _, length_q, _ = query_bhsd.shape
        if state.ref_mask.shape != (batch, key_bhsd.shape[2]) or state.query_mask.shape[-1] != length_q:
            reason = "other_sequence"  # not the joint sequence (e.g. ref-only KV-cache attention)
        elif not state.has_refs:
            reason = "no_reference_keys"  # e.g. the unconditional branch with cfg_branches="cond": w would be 1
    if reason is not None:
        if stats is not None:
            stats.add_passed(reason)
        return None
    w, _ = dar_weights(query_bhsd, key_bhsd, state.ref_mask, config, attn_mask=attn_mask, scale=scale,
                       is_causal=is_causal, query_mask=state.query_mask, ref_ids=state.ref_ids, sampled=state.sampled)
    if stats is not None:
        stats.add_rebalanced()
    return w


def _unsupported(state: ForwardState | None, reason: str) -> None:
    """Count a call passed through for a call option DAR does not handle (only inside a hooked forward)."""
    if state is not None and state.stats is not None:
        state.stats.add_passed(reason)


def _dispatch_router(original: Callable) -> Callable:
    """Wraps diffusers' ``dispatch_attention_fn`` (BSHD tensors)."""
    signature = inspect.signature(original)

    def dar_dispatch_attention_fn(query, key, value, *args, **kwargs):
        bound = signature.bind(query, key, value, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        state = _STATE.get()
        if a.get("dropout_p"):
            _unsupported(state, "dropout")
        elif a.get("parallel_config") is not None:
            _unsupported(state, "context_parallel")
        elif a.get("attention_kwargs"):
            _unsupported(state, "attention_kwargs")
        else:
            w = _weights(state, query.transpose(1, 2), key.transpose(1, 2), a.get("attn_mask"), a.get("scale"),
                         bool(a.get("is_causal")))
            if w is not None:
                key = key * w.to(key.dtype)[:, :, None, None]
        return original(query, key, value, *args, **kwargs)

    dar_dispatch_attention_fn.__wrapped__ = original
    return dar_dispatch_attention_fn


def _functional_router(original_module) -> types.ModuleType:
    """Stands in for ``torch.nn.functional`` in a model module that calls SDPA directly (BHSD tensors)."""

    def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                     **kwargs):
        state = _STATE.get()
        if dropout_p:
            _unsupported(state, "dropout")
        else:
            w = _weights(state, query, key, attn_mask, scale, is_causal)
            if w is not None:
                key = key * w.to(key.dtype)[:, None, :, None]
        return original_module.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                                            dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                                                            **kwargs)

    class _Functional(types.ModuleType):
        def __getattr__(self, name):
            return getattr(original_module, name)

    proxy = _Functional("dar_functional_proxy")
    proxy.scaled_dot_product_attention = scaled_dot_product_attention
    return proxy


_PATCH_LOCK = threading.Lock()
_PATCHES: dict[tuple[str, str], list] = {}  # (module, attribute) -> [original, reference count]


def _patch(module_name: str, attribute: str) -> Callable[[], None]:
    """Route one module-level name through DAR (reference-counted, so nested enables compose)."""
    module = sys.modules[module_name]
    with _PATCH_LOCK:
        entry = _PATCHES.get((module_name, attribute))
        if entry is None:
            original = getattr(module, attribute)
            router = _functional_router(original) if attribute == "F" else _dispatch_router(original)
            setattr(module, attribute, router)
            entry = _PATCHES[(module_name, attribute)] = [original, 0]
        entry[1] += 1

    def unpatch() -> None:
        with _PATCH_LOCK:
            entry[1] -= 1
            if entry[1] == 0:
                setattr(module, attribute, entry[0])
                del _PATCHES[(module_name, attribute)]

    return unpatch


# ----------------------------------------------------------------------------- the transformer hook
def _scheduler_step(scheduler) -> tuple[float | None, tuple]:
    """(fraction i/N of the schedule, a key identifying the step) from a diffusers scheduler."""
    timesteps = getattr(scheduler, "timesteps", None)
    if scheduler is None or timesteps is None or len(timesteps) == 0:
        return None, (None,)
    index = getattr(scheduler, "step_index", None)
    index = 0 if index is None else int(index)
    return index / len(timesteps), (id(timesteps), index)


class _TransformerHook:
    def __init__(self, model: torch.nn.Module, config: DARConfig, scheduler=None, stats: DARStats | None = None):
        self.model, self.config, self.scheduler = model, config, scheduler
        self.stats = stats
        self.layout, self.attribute, self.batched_cfg = layout_for(model)
        self.signature = inspect.signature(model.forward)
        self._local = threading.local()
        self.last_step_key, self.calls_in_step = None, 0

    def _cond_rows(self, ref: torch.Tensor, step_key) -> torch.Tensor:
        batch = ref.shape[0]
        if self.batched_cfg:
            # OmniGen stacks [cond rows | negative-text rows (no refs) | image-CFG rows]: the conditional rows
            # are those before the first row without references.
            no_ref = (~ref.any(dim=1)).nonzero()
            first = int(no_ref[0]) if len(no_ref) else batch
            return torch.arange(batch) < first
        # Separate forwards per branch: the first call of a denoising step is the conditional one.
        if step_key != self.last_step_key or step_key == (None,):
            self.last_step_key, self.calls_in_step = step_key, 0
        self.calls_in_step += 1
        return torch.full((batch,), self.calls_in_step == 1)

    def pre(self, module, args, kwargs):
        bound = self.signature.bind_partial(*args, **kwargs).arguments
        ref, query, ids = self.layout(module, bound)
        fraction, step_key = _scheduler_step(self.scheduler)
        step = current_step() if current_step() is not None else fraction
        if self.config.cfg_branches == "cond":
            ref = ref & self._cond_rows(ref, step_key)[:, None]
        if self.stats is not None:
            self.stats.add_forward()
        # Everything DAR needs per layer is placed on the device and sampled once per forward (no syncs later).
        device = bound["hidden_states"].device
        sampled = sample_query_positions(query, query.shape[0], query.shape[1], self.config, device)
        state = ForwardState(config=self.config, ref_mask=_to_device(ref, device), query_mask=query,
                             ref_ids=_to_device(ids, device), step=step, sampled=sampled,
                             has_refs=bool(ref.any()), stats=self.stats)  # ref is still on the CPU: no sync
        _stack(self._local).append(_STATE.set(state))

    def post(self, module, args, kwargs, output):
        tokens = _stack(self._local)
        if tokens:
            _STATE.reset(tokens.pop())


def _attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Attention modules in module order; their position is the layer index of ``DARConfig.layers``."""
    return [m for m in model.modules() if hasattr(m, "processor") and hasattr(m, "set_processor")]


def install(model: torch.nn.Module, config: DARConfig, scheduler=None,
            stats: DARStats | None = None) -> Callable[[], None]:
    """Hook DAR into a supported diffusers transformer; returns the function that undoes everything.

    ``stats`` receives the count of attention calls rebalanced and passed through (see :mod:`dar.stats`)."""
    hook = _TransformerHook(model, config, scheduler, stats)
    undo: list[Callable[[], None]] = []
    try:
        undo.append(_patch(type(model).__module__, hook.attribute))
        handles = [model.register_forward_pre_hook(hook.pre, with_kwargs=True),
                   model.register_forward_hook(hook.post, with_kwargs=True, always_call=True)]
        for index, attention in enumerate(_attention_modules(model)):
            handles.append(attention.register_forward_pre_hook(_layer_enter(index)))
            handles.append(attention.register_forward_hook(_layer_exit, always_call=True))
        undo.extend(h.remove for h in handles)
    except BaseException:
        for fn in reversed(undo):
            fn()
        raise

    def uninstall() -> None:
        for fn in reversed(undo):
            fn()

    return uninstall


_LAYER_LOCAL = threading.local()


def _stack(local: threading.local) -> list:
    """A per-thread stack of context-variable tokens (hooks run in the thread of the forward)."""
    if not hasattr(local, "tokens"):
        local.tokens = []
    return local.tokens


def _layer_enter(index: int):
    def enter(module, args):
        _stack(_LAYER_LOCAL).append(_LAYER.set(index))

    return enter


def _layer_exit(module, args, output):
    tokens = _stack(_LAYER_LOCAL)
    if tokens:
        _LAYER.reset(tokens.pop())
