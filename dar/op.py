"""The DAR op: a pure function with torch's SDPA signature plus the reference-key mask.

Why this shape: hooks for transformers, diffusers and hand-written generation loops all end at a
``(B, H, L, D)`` attention call, so one pure function serves them all. DAR's analysis looks only at m
sampled queries (an m x Lk score block per head, never Lq x Lk), derives one weight per key, scales the
reference key vectors by it (which multiplies those keys' logits), and finishes with ONE fused
``scaled_dot_product_attention`` call for every query.

Deliberate edge cases (also in docs/dar.md):
* gamma == 0: the exact SDPA call on the caller's tensors (bit-identical output).
* a row with no reference keys, no selectable queries, or all-equal reference scores (max == min, which
  includes a single reference key) gets w = 1 everywhere: there is nothing to rebalance.
* fewer selectable queries than m: all of them are used.
* a sampled query whose every key is masked contributes nothing (its probabilities count as 0).
* thresholds are inclusive: r^ >= tau_high boosts, r^ <= tau_low damps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .compiled import analysis
from .config import DARConfig

__all__ = ["dar_attention", "dar_weights", "sample_query_positions", "rebalance_weights"]

_sdpa = F.scaled_dot_product_attention  # module-level so tests can observe the one fused call


def _rows(mask: torch.Tensor | None, batch: int, length: int, name: str, kinds: tuple[str, ...]) -> torch.Tensor | None:
    """Validate a per-row mask/id tensor of shape (L,), (1, L) or (B, L) and broadcast it to (B, L)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"dar_attention: {name} must be a torch.Tensor, got {type(mask).__name__}")
    if ("bool" in kinds and mask.dtype == torch.bool) or ("int" in kinds and not mask.dtype.is_floating_point
                                                           and not mask.dtype.is_complex and mask.dtype != torch.bool):
        pass
    else:
        raise TypeError(f"dar_attention: {name} must have a {' or '.join(kinds)} dtype, got {mask.dtype}")
    if mask.dim() == 1:
        mask = mask.unsqueeze(0)
    if mask.dim() != 2 or mask.shape[-1] != length or mask.shape[0] not in (1, batch):
        raise ValueError(f"dar_attention: {name} must have shape ({length},) or ({batch}, {length}), "
                         f"got {tuple(mask.shape)}")
    return mask.expand(batch, length)


def sample_query_positions(query_mask: torch.Tensor | None, batch: int, length: int, config: DARConfig,
                           device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Pick up to ``config.num_queries`` query positions per row among those ``query_mask`` selects.

    Returns ``(positions, valid)``, both ``(B, M)`` with M = min(m, most selectable queries in a row);
    ``valid`` is False for padding slots of rows with fewer candidates. With n candidates and n > m,
    "strided" takes candidate ranks ((2i + 1) * n) // (2m), i < m (evenly spaced, centred); "random" takes
    ``torch.randperm(n, generator)[:m]`` (sorted), one row after another from a single CPU generator
    seeded with ``config.seed`` (global RNG when seed is None). With n <= m every candidate is taken.
    The work happens on the CPU (pass ``query_mask`` there to avoid a device sync); results go to ``device``.
    """
    qm = _rows(query_mask, batch, length, "query_mask", ("bool",))
    if qm is None and config.sampling == "strided":  # every query selectable: computed on the device, no copies
        m = min(config.num_queries, length)
        step = torch.arange(m, device=device)
        positions = step if length <= config.num_queries else (step * 2 + 1) * length // (2 * m)
        return positions.expand(batch, m), torch.ones(batch, m, dtype=torch.bool, device=device)
    qm = torch.ones(batch, length, dtype=torch.bool) if qm is None else qm.cpu()
    counts = qm.sum(dim=1).tolist()
    m = config.num_queries
    width = min(m, max(counts, default=0))
    ranks = torch.zeros(batch, width, dtype=torch.long)
    valid = torch.zeros(batch, width, dtype=torch.bool)
    generator = None
    if config.sampling == "random" and config.seed is not None:
        generator = torch.Generator(device="cpu").manual_seed(config.seed)
    for b, n in enumerate(counts):
        if n == 0:
            continue
        if n <= m:
            chosen = torch.arange(n)
        elif config.sampling == "strided":
            chosen = (torch.arange(m) * 2 + 1) * n // (2 * m)
        else:
            chosen = torch.randperm(n, generator=generator)[:m].sort().values
        ranks[b, : chosen.numel()] = chosen
        valid[b, : chosen.numel()] = True
    # rank j -> position of the (j + 1)-th selectable query in the row
    csum = qm.long().cumsum(dim=1)
    positions = torch.searchsorted(csum, ranks + 1).clamp_(max=max(length - 1, 0))
    return _to_device(positions, device), _to_device(valid, device)


def _to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Host -> device copy that does not wait for queued kernels (pinned, non-blocking) on CUDA."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _sampled_bias(attn_mask: torch.Tensor | None, is_causal: bool, positions: torch.Tensor, heads: int,
                  length_k: int) -> torch.Tensor | None:
    """Additive float32 bias (B', Hm, M, Lk) for the sampled query rows only, from SDPA's mask semantics."""
    batch, width = positions.shape
    bias = None
    if attn_mask is not None:
        am = attn_mask
        while am.dim() < 4:
            am = am.unsqueeze(0)
        if am.dim() != 4 or am.shape[1] not in (1, heads) or am.shape[-1] not in (1, length_k):
            raise ValueError(f"dar_attention: attn_mask of shape {tuple(attn_mask.shape)} does not broadcast "
                             f"to (B, H, Lq, Lk) with H={heads}, Lk={length_k}")
        if am.shape[2] != 1:  # per-query rows: keep only the sampled ones
            if am.shape[0] == 1:
                am = am[0][:, positions].permute(1, 0, 2, 3)
            else:
                am = am[torch.arange(batch, device=am.device)[:, None], :, positions].permute(0, 2, 1, 3)
        if am.dtype == torch.bool:
            bias = torch.zeros(am.shape, dtype=torch.float32, device=am.device).masked_fill_(~am, float("-inf"))
        else:
            bias = am.float()
    if is_causal:  # SDPA's is_causal is aligned top-left: query i sees keys j <= i
        keys = torch.arange(length_k, device=positions.device)
        causal = torch.zeros(batch, 1, width, length_k, dtype=torch.float32, device=positions.device)
        causal.masked_fill_(keys[None, None, None, :] > positions[:, None, :, None], float("-inf"))
        bias = causal if bias is None else bias + causal
    return bias


def rebalance_weights(scores: torch.Tensor, ref_mask: torch.Tensor, config: DARConfig,
                      ref_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """From per-key attention mass ``scores`` (B, Lk) to ``(w, r_hat)``, both (B, Lk) float32.

    r_hat is the min-max normalised score over a row's reference keys (all jointly, or per reference id
    with ``normalize="per_ref"``); it is NaN for non-reference keys and for groups whose max equals their
    min. w is 1 + gamma where r_hat >= tau_high, 1 - gamma where r_hat <= tau_low, and 1 elsewhere; with
    ``thresholds="quantile"`` the two thresholds come from each group's own ranks (see
    :func:`_quantile_thresholds`).
    """
    scores = scores.float()
    if config.normalize == "per_ref":
        if ref_ids is None:
            raise ValueError("dar_attention: normalize='per_ref' needs ref_ids (which reference each key belongs to)")
        uniq = torch.unique(ref_ids[ref_mask])
        groups = torch.searchsorted(uniq, ref_ids.contiguous()).clamp_(max=max(uniq.numel() - 1, 0))
        n_groups = max(uniq.numel(), 1)
    else:
        groups = torch.zeros_like(ref_mask, dtype=torch.long)
        n_groups = 1
    batch = scores.shape[0]
    flat = groups + torch.arange(batch, device=groups.device)[:, None] * n_groups
    inf = torch.tensor(float("inf"), device=scores.device)
    lows = torch.full((batch * n_groups,), float("inf"), device=scores.device)
    highs = torch.full((batch * n_groups,), float("-inf"), device=scores.device)
    lows.scatter_reduce_(0, flat.flatten(), torch.where(ref_mask, scores, inf).flatten(), "amin")
    highs.scatter_reduce_(0, flat.flatten(), torch.where(ref_mask, scores, -inf).flatten(), "amax")
    low = lows.view(batch, n_groups).gather(1, groups)
    high = highs.view(batch, n_groups).gather(1, groups)
    span = high - low
    defined = ref_mask & (span > 0)
    r_hat = torch.where(defined, (scores - low) / torch.where(defined, span, 1.0), float("nan"))
    if config.thresholds == "quantile":
        high, low = _quantile_thresholds(r_hat, defined, flat, batch * n_groups, config)
        boost, damp = r_hat >= high, r_hat <= low
        boost, damp = boost & ~damp, damp & ~boost  # a key meeting both (ties) is left alone
    else:
        boost, damp = r_hat >= config.tau_high, r_hat <= config.tau_low
    w = torch.ones_like(scores)
    w = torch.where(defined & boost, 1.0 + config.gamma, w)
    w = torch.where(defined & damp, 1.0 - config.gamma, w)
    return w, r_hat


def _quantile_thresholds(r_hat: torch.Tensor, defined: torch.Tensor, flat: torch.Tensor, n_groups: int,
                         config: DARConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-key thresholds (B, Lk) of ``thresholds="quantile"``: in a group of n defined keys, boost those at
    or above the floor(q_high * n)-th largest r^ and damp those at or below the floor(q_low * n)-th smallest
    (inclusive, so ties at a threshold move together; a count of 0 boosts or damps nothing)."""
    n = torch.zeros(n_groups, device=r_hat.device).scatter_add_(0, flat.flatten(), defined.flatten().float())
    # sort every key by (group, r^) once; undefined keys go to the end of the order
    key = torch.where(defined, r_hat, torch.inf).double() + flat.double() * 4.0  # r^ in [0, 1]: groups apart
    order = key.flatten().argsort()
    ranked = r_hat.flatten()[order]
    start = torch.zeros(n_groups, dtype=torch.long, device=r_hat.device)
    start[1:] = n.long().cumsum(0)[:-1]
    k_high, k_low = (n.double() * config.q_high).floor().long(), (n.double() * config.q_low).floor().long()
    size = ranked.numel()
    high = torch.where(k_high > 0, ranked[(start + n.long() - k_high).clamp(0, size - 1)], torch.inf)
    low = torch.where(k_low > 0, ranked[(start + k_low - 1).clamp(0, size - 1)], -torch.inf)
    return high.gather(0, flat.flatten()).view_as(r_hat), low.gather(0, flat.flatten()).view_as(r_hat)


def _check_shapes(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor | None) -> None:
    if query.dim() != 4 or key.dim() != 4 or (value is not None and value.dim() != 4):
        raise ValueError("dar_attention: query, key and value must be 4-D (B, H, L, D) tensors, got shapes "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {None if value is None else tuple(value.shape)}")
    batch, heads, _, dim = query.shape
    if key.shape[0] != batch or key.shape[3] != dim or (value is not None and (
            value.shape[0] != batch or value.shape[1] != key.shape[1] or value.shape[2] != key.shape[2])):
        raise ValueError(f"dar_attention: incompatible shapes query {tuple(query.shape)}, key {tuple(key.shape)}, "
                         f"value {None if value is None else tuple(value.shape)}")
    if heads % key.shape[1]:
        raise ValueError(f"dar_attention: query heads ({heads}) must be a multiple of key/value heads ({key.shape[1]})")


def dar_weights(query: torch.Tensor, key: torch.Tensor, ref_mask: torch.Tensor, config: DARConfig = DARConfig(), *,
                attn_mask: torch.Tensor | None = None, scale: float | None = None, is_causal: bool = False,
                query_mask: torch.Tensor | None = None, ref_ids: torch.Tensor | None = None,
                sampled: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """DAR's analysis alone: the per-key weights ``w`` and normalised scores ``r_hat``, both (B, Lk) float32.

    Hooks use this to scale the key vectors themselves and then call the library's own attention
    function (keeping its backend, GQA and mask handling); :func:`dar_attention` is this plus one SDPA.
    Arguments as for :func:`dar_attention`; ``sampled`` may carry :func:`sample_query_positions`' result
    for this query length (hooks compute it once per forward and reuse it in every layer). With gamma == 0
    every weight is exactly 1.
    """
    if not isinstance(config, DARConfig):
        raise TypeError(f"dar_attention: config must be a DARConfig, got {type(config).__name__}")
    _check_shapes(query, key, None)
    if attn_mask is not None and is_causal:
        raise ValueError("dar_attention: pass either attn_mask or is_causal=True, not both (as for SDPA)")
    batch, heads, length_q, dim = query.shape
    length_k = key.shape[2]
    ref = _rows(ref_mask, batch, length_k, "ref_mask", ("bool",))
    if ref is None:
        raise ValueError("dar_attention: ref_mask is required (use torch.zeros(Lk, dtype=torch.bool) for none)")
    ids = _rows(ref_ids, batch, length_k, "ref_ids", ("int",))
    if config.normalize == "per_ref" and ids is None:
        raise ValueError("dar_attention: normalize='per_ref' needs ref_ids (which reference each key belongs to)")
    ref = ref if ref.device == query.device else _to_device(ref, query.device)
    if config.gamma == 0.0 and not config.record_maps:  # record_maps: the scores are wanted, the weights stay 1
        ones = torch.ones(batch, length_k, dtype=torch.float32, device=query.device)
        return ones, torch.full_like(ones, float("nan"))
    if sampled is None:
        sampled = sample_query_positions(query_mask, batch, length_q, config, query.device)
    positions, valid = sampled
    if positions.shape[0] != batch or valid.shape != positions.shape:
        raise ValueError(f"dar_attention: sampled positions of shape {tuple(positions.shape)} do not match batch {batch}")
    ids = None if ids is None else _to_device(ids, query.device)
    # (no "any reference key?" shortcut on accelerators: it would cost a device sync per layer)
    if positions.shape[1] > 0 and (ref.device.type != "cpu" or bool(ref.any())):
        factor = dim ** -0.5 if scale is None else scale
        bias = _sampled_bias(attn_mask, is_causal, positions, heads, length_k)  # (B', Hm, M, Lk)
        bias = None if bias is None else bias.to(query.device)
        return analysis(config, query.device)(query, key, positions, valid, bias, factor, ref, ids, config)
    # nothing to analyse (no sampled query, or no reference key on the CPU): scores 0 give w = 1 and r^ = NaN
    scores = torch.zeros(batch, length_k, dtype=torch.float32, device=query.device)
    return rebalance_weights(scores, ref, config, ids)


def _scores(query: torch.Tensor, key: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor,
            bias: torch.Tensor | None, factor: float) -> torch.Tensor:
    """r: the sampled queries' softmax probabilities summed over queries and heads, per key (B, Lk) float32."""
    batch, heads, _, dim = query.shape
    kv_heads, length_k = key.shape[1], key.shape[2]
    width, groups = positions.shape[1], heads // kv_heads
    picked = query.gather(2, positions[:, None, :, None].expand(batch, heads, width, dim))
    picked = (picked.float() * factor).reshape(batch, kv_heads, groups * width, dim)  # row g*M + i
    # The only score block, m x Lk per head, laid out (B, Hkv, Lk, G*M): keys on rows is the faster
    # product on the CPU, and every reduction below is over keys (dim -2) or rows (dim -1).
    logits = key.float() @ picked.transpose(-1, -2)
    if bias is not None:
        if bias.shape[1] == heads:
            bias = bias.reshape(bias.shape[0], kv_heads, groups, width, length_k).permute(0, 1, 4, 2, 3)
        else:
            bias = bias.transpose(-1, -2).unsqueeze(-2).expand(bias.shape[0], 1, length_k, groups, width)
        logits.add_(bias.reshape(bias.shape[0], bias.shape[1], length_k, groups * width))
    # Softmax rows summed over queries and heads, in place: r = sum_rows exp(l - max) / Z. A fully masked
    # row (max = -inf) or a padding slot gets row weight 0, so it contributes nothing.
    top = logits.amax(dim=-2, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    logits.sub_(top).exp_()
    total = logits.sum(dim=-2, keepdim=True)  # (B, Hkv, 1, G*M)
    slots = valid[:, None, None, :].expand(batch, 1, groups, width).reshape(batch, 1, 1, groups * width)
    row_weight = torch.where(total > 0, 1.0 / total, torch.zeros_like(total)) * slots
    return (logits @ row_weight.transpose(-1, -2)).sum(dim=(1, 3))


def eager_analysis(query, key, positions, valid, bias, factor, ref, ids, config) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores, then weights: the eager reference of the compiled analysis (:mod:`dar.compiled`)."""
    return rebalance_weights(_scores(query, key, positions, valid, bias, factor), ref, config, ids)


def dar_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, ref_mask: torch.Tensor,
                  config: DARConfig = DARConfig(), *, attn_mask: torch.Tensor | None = None,
                  scale: float | None = None, is_causal: bool = False, query_mask: torch.Tensor | None = None,
                  ref_ids: torch.Tensor | None = None, return_weights: bool = False):
    """Attention with Dynamic Attention Rebalancing of the reference-image keys.

    Layout is SDPA's: query (B, H, Lq, D), key/value (B, Hkv, Lk, D) with H a multiple of Hkv (GQA).
    ``ref_mask`` bool (B, Lk) or (Lk,) marks reference keys; ``query_mask`` bool (B, Lq) or (Lq,) the
    generated-image queries to sample (default all); ``ref_ids`` ints shaped like ``ref_mask`` name each
    key's reference (needed for ``normalize="per_ref"``). ``attn_mask``, ``scale`` and ``is_causal`` mean
    what they mean for SDPA. Returns the (B, H, Lq, Dv) output, or ``(output, w, r_hat)`` with
    ``return_weights=True`` (see :func:`rebalance_weights`).
    """
    if not isinstance(config, DARConfig):
        raise TypeError(f"dar_attention: config must be a DARConfig, got {type(config).__name__}")
    _check_shapes(query, key, value)
    gqa = query.shape[1] != key.shape[1]
    kwargs = dict(attn_mask=attn_mask, scale=scale, is_causal=is_causal, query_mask=query_mask, ref_ids=ref_ids)
    if config.gamma == 0.0 and not return_weights:
        dar_weights(query, key, ref_mask, config, **kwargs)  # validates the inputs; no analysis at gamma 0
        return _sdpa(query, key, value, attn_mask=attn_mask, is_causal=is_causal, scale=scale, enable_gqa=gqa)
    w, r_hat = dar_weights(query, key, ref_mask, config, **kwargs)
    scaled_key = key * w.to(key.dtype)[:, None, :, None]
    out = _sdpa(query, scaled_key, value, attn_mask=attn_mask, is_causal=is_causal, scale=scale, enable_gqa=gqa)
    return (out, w, r_hat) if return_weights else out
