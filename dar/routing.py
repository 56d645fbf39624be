"""The DAR routing core: one place that wraps attention, scopes it, weights the keys and counts.

Why one core: a model family only knows where its reference tokens are and which attention function it
calls (a :class:`dar.layouts.ModelLayout`). The rest is the same for every model and lives here:

* a forward pre-hook on the layout's module asks the layout for the :class:`~dar.layouts.Placement` of
  this forward and puts a :class:`~dar.context.ForwardState` in a context variable (a forward hook,
  always called, removes it); pre/post hooks on the attention modules set the layer index;
* each of the layout's :class:`~dar.layouts.Route` s replaces one module-level name for the duration
  (reference-counted); the wrapper asks :func:`key_weights` for DAR's weights, scales the key vectors
  and calls the *original* function, so the model's own attention backend, GQA and masks are kept;
* :func:`key_weights` decides whether the call is DAR's (scope options, sequence, references), counts
  it in the handle's :class:`~dar.stats.DARStats`, reuses weights across steps (``reuse_steps``) and
  feeds the attention maps (``record_maps``).

Calls outside a hooked forward (another model of the same class, or a forward under ``dar.references``
alone, which is :mod:`dar.hf`'s) pass straight through, uncounted.
Order of the pass-through reasons: a call outside the hooked attention modules (the layout's
``outside_layers``); a forward-level reason (``no_reference_keys`` when the forward holds no reference
token, a layout's own such as ``cache_update``); a call-level reason (``causal``); the scope options
(branch, layer, step); ``other_sequence``; ``no_reference_keys`` when the branch option masked every
reference row.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

import torch

from .config import DARConfig
from .context import _LAYER, _STATE, ForwardState, current_step
from .layouts import ModelLayout
from .op import _to_device, dar_weights, sample_query_positions
from .stats import DARStats

__all__ = ["key_weights", "pass_through", "functional_router", "dispatch_router", "install", "Installation"]


def _count(state: ForwardState | None, reason: str) -> None:
    if state is not None and state.stats is not None:
        state.stats.add_passed(reason)


def pass_through(reason: str) -> None:
    """Count a call a router leaves alone for a call option DAR does not handle (inside a hooked forward)."""
    _count(_STATE.get(), reason)


def key_weights(query: torch.Tensor, key: torch.Tensor, *, attn_mask: torch.Tensor | None = None,
                scale: float | None = None, is_causal: bool = False,
                call_reason: str | None = None) -> torch.Tensor | None:
    """DAR key weights (B, Lk) for one attention call with SDPA-layout (B, H, L, D) query and key, or None
    when DAR leaves the call alone (the reason is counted). ``call_reason``: a router's own reason."""
    state = _STATE.get()
    if state is None or state.config is None or state.hook is None:
        return None  # outside a forward hooked through a layout: not ours to count
    hook: Installation = state.hook
    config, layout, place, layer = state.config, hook.layout, state.placement, _LAYER.get()
    if layer is None and layout.outside_layers:
        reason = layout.outside_layers
    else:
        reason = state.reason or call_reason or config.exclusion(layer=layer, step=state.step,
                                                                 conditional=place.conditional)
    batch, length_k = query.shape[0], key.shape[2]
    if reason is None:
        if state.ref_mask.shape != (batch, length_k) or state.query_mask.shape[-1] != query.shape[2]:
            if layout.strict:
                raise RuntimeError(f"{type(layout).__name__} DAR: attention layer {layer} has {length_k} keys and "
                                   f"{query.shape[2]} queries, but the layout located {state.ref_mask.shape[-1]} "
                                   f"and {state.query_mask.shape[-1]}; the upstream code changed")
            reason = "other_sequence"  # not the joint sequence (e.g. FLUX.2's ref-only KV passes)
        elif not state.has_refs:
            reason = "no_reference_keys"  # every reference row masked by cfg_branches="cond": w would be 1
    if reason is not None:
        _count(state, reason)
        return None
    slot = cached = None
    if config.reuse_steps > 1 and place.step_index is not None:
        slot = (layer, place.branch, batch, length_k)
        cached = hook.reused.get(slot)
        if cached is not None and not 0 <= place.step_index - cached[0] < config.reuse_steps:
            cached = None
    if cached is not None:
        w, r_hat = cached[1], cached[2]
    else:
        w, r_hat = dar_weights(query, key, state.ref_mask, config, attn_mask=attn_mask, scale=scale,
                               is_causal=is_causal, query_mask=state.query_mask, ref_ids=state.ref_ids,
                               sampled=state.sampled)
        if slot is not None:
            hook.reused[slot] = (place.step_index, w, r_hat)
    if state.stats is not None:
        state.stats.add_rebalanced()
    if hook.maps is not None:
        hook.maps.add(state, layer, w, r_hat)
    return w


def dispatch_router(original: Callable) -> Callable:
    """Wraps diffusers' ``dispatch_attention_fn`` (BSHD tensors)."""
    signature = inspect.signature(original)

    def dar_dispatch_attention_fn(query, key, value, *args, **kwargs):
        bound = signature.bind(query, key, value, *args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        if a.get("dropout_p"):
            pass_through("dropout")
        elif a.get("parallel_config") is not None:
            pass_through("context_parallel")
        elif a.get("attention_kwargs"):
            pass_through("attention_kwargs")
        else:
            w = key_weights(query.transpose(1, 2), key.transpose(1, 2), attn_mask=a.get("attn_mask"),
                            scale=a.get("scale"), is_causal=bool(a.get("is_causal")))
            if w is not None:
                key = key * w.to(key.dtype)[:, :, None, None]
        return original(query, key, value, *args, **kwargs)

    dar_dispatch_attention_fn.__wrapped__ = original
    return dar_dispatch_attention_fn


def functional_router(original_module: types.ModuleType) -> types.ModuleType:
    """Stands in for ``torch.nn.functional`` in a model module that calls SDPA directly (BHSD tensors)."""

    def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                     **kwargs):
        if dropout_p:
            pass_through("dropout")
        else:
            w = key_weights(query, key, attn_mask=attn_mask, scale=scale, is_causal=is_causal)
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


def _patch(module_name: str, attribute: str, router: Callable[[Any], Any]) -> Callable[[], None]:
    """Route one module-level name through DAR (reference-counted, so nested enables compose)."""
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    with _PATCH_LOCK:
        entry = _PATCHES.get((module_name, attribute))
        if entry is None:
            original = getattr(module, attribute)
            setattr(module, attribute, router(original))
            entry = _PATCHES[(module_name, attribute)] = [original, 0]
        entry[1] += 1

    def unpatch() -> None:
        with _PATCH_LOCK:
            entry[1] -= 1
            if entry[1] == 0:
                setattr(module, attribute, entry[0])
                del _PATCHES[(module_name, attribute)]

    return unpatch


def _first_device(call: dict, module: torch.nn.Module) -> torch.device:
    for value in call.values():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, torch.Tensor):
                return item.device
    return next(module.parameters()).device


class Installation:
    """One ``dar.enable`` of a layout: the per-forward hooks, the reused weights and the map recorder."""

    def __init__(self, layout: ModelLayout, config: DARConfig, stats: DARStats | None):
        self.layout, self.config, self.stats = layout, config, stats
        self.module = layout.hooked_module()
        self.signature = inspect.signature(self.module.forward)
        self._var_keyword = [p.name for p in self.signature.parameters.values() if p.kind is p.VAR_KEYWORD]
        self._local = threading.local()
        self.reused: dict[tuple, tuple] = {}  # (layer, branch, batch, keys) -> (step index, w, r_hat)
        self._last_step: int | None = None
        self.maps = None
        if config.record_maps:
            from .maps import MapRecorder

            self.maps = MapRecorder()

    def pre(self, module, args, kwargs):
        call = dict(self.signature.bind_partial(*args, **kwargs).arguments)
        for name in self._var_keyword:  # forward(self, *args, **kwargs) models: their keywords, flat
            call.update(call.pop(name, {}))
        place = self.layout.locate(call)
        config = self.config
        if place.step_index is not None:
            if self._last_step is not None and place.step_index < self._last_step:
                self.reused.clear()  # the step went back: a new generation, whose image the saved weights are not of
            self._last_step = place.step_index
        if self.stats is not None:
            self.stats.add_forward()
        ref = place.ref_mask
        reason = place.reason or (None if bool(ref.any()) else "no_reference_keys")
        if config.cfg_branches == "cond" and place.cond_rows is not None:
            ref = ref & place.cond_rows[:, None]
        step = current_step() if current_step() is not None else place.step
        # Everything a layer needs goes to the device and is sampled once per forward (no syncs later).
        device = _first_device(call, module)
        sampled = sample_query_positions(place.query_mask, ref.shape[0], place.query_mask.shape[-1], config, device)
        ids = place.ref_ids
        state = ForwardState(config=config, ref_mask=_to_device(ref, device), query_mask=place.query_mask,
                             ref_ids=None if ids is None else _to_device(ids, device), step=step, sampled=sampled,
                             has_refs=bool(ref.any()), stats=self.stats, reason=reason, placement=place, hook=self)
        _stack(self._local).append(_STATE.set(state))

    def post(self, module, args, kwargs, output):
        tokens = _stack(self._local)
        if tokens:
            _STATE.reset(tokens.pop())


def install(layout: ModelLayout, config: DARConfig, stats: DARStats | None = None
            ) -> tuple[Callable[[], None], Installation]:
    """Hook DAR into ``layout``'s model; returns (the function that undoes everything, the installation)."""
    hook = Installation(layout, config, stats)
    undo: list[Callable[[], None]] = []
    try:
        for route in layout.get_routes():
            undo.append(_patch(route.module, route.attribute, route.router))
        extra = layout.setup()
        if extra is not None:
            undo.append(extra)
        handles = [hook.module.register_forward_pre_hook(hook.pre, with_kwargs=True),
                   hook.module.register_forward_hook(hook.post, with_kwargs=True, always_call=True)]
        for index, attention in enumerate(layout.attention_modules()):
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

    return uninstall, hook


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
