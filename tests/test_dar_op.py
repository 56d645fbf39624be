"""DAR op against an independent float64 reference written plainly from PROTOCOL.md section 7.

The reference below shares no code with ``dar.op``: loops over rows, heads, queries and keys, float64,
and its own query sampling from the documented rule.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import dar.op
from dar import DARConfig, dar_attention
from dar.op import rebalance_weights, sample_query_positions


# ----------------------------------------------------------------------------- plain reference
def _keep(attn_mask, is_causal, b, h, i, j):
    """(allowed, additive bias) of query i -> key j, read from an SDPA-style mask."""
    if is_causal:
        return j <= i, 0.0
    if attn_mask is None:
        return True, 0.0
    m = attn_mask
    while m.dim() < 4:
        m = m.unsqueeze(0)
    val = m[b if m.shape[0] > 1 else 0, h if m.shape[1] > 1 else 0, i if m.shape[2] > 1 else 0,
            j if m.shape[3] > 1 else 0]
    if m.dtype == torch.bool:
        return bool(val), 0.0
    return not math.isinf(float(val)), float(val)


def _softmax_row(logits):
    finite = [x for x in logits if x != -math.inf]
    if not finite:
        return None
    top = max(finite)
    ex = [0.0 if x == -math.inf else math.exp(x - top) for x in logits]
    total = sum(ex)
    return [e / total for e in ex]


def reference_dar(q, k, v, ref_mask, cfg, attn_mask=None, scale=None, is_causal=False, query_mask=None,
                  ref_ids=None):
    q, k, v = q.double(), k.double(), v.double()
    B, H, Lq, D = q.shape
    Hk, Lk = k.shape[1], k.shape[2]
    group = H // Hk
    scale = 1 / math.sqrt(D) if scale is None else scale
    ref_mask = ref_mask.expand(B, Lk) if ref_mask.dim() == 2 else ref_mask[None].expand(B, Lk)
    if query_mask is None:
        query_mask = torch.ones(B, Lq, dtype=torch.bool)
    elif query_mask.dim() == 1:
        query_mask = query_mask[None].expand(B, Lq)
    if ref_ids is not None and ref_ids.dim() == 1:
        ref_ids = ref_ids[None].expand(B, Lk)
    gen = torch.Generator().manual_seed(cfg.seed) if cfg.seed is not None else None
    weights = torch.ones(B, Lk, dtype=torch.float64)
    r_hat_all = torch.full((B, Lk), math.nan, dtype=torch.float64)
    out = torch.zeros(B, H, Lq, v.shape[-1], dtype=torch.float64)
    for b in range(B):
        cands = [i for i in range(Lq) if query_mask[b, i]]
        n, m = len(cands), cfg.num_queries
        if n <= m:
            chosen = cands
        elif cfg.sampling == "strided":
            chosen = [cands[((2 * i + 1) * n) // (2 * m)] for i in range(m)]
        else:
            chosen = [cands[int(t)] for t in sorted(torch.randperm(n, generator=gen)[:m].tolist())]
        r = [0.0] * Lk
        for i in chosen:
            for h in range(H):
                logits = []
                for j in range(Lk):
                    ok, bias = _keep(attn_mask, is_causal, b, h, i, j)
                    dot = sum(float(q[b, h, i, d]) * float(k[b, h // group, j, d]) for d in range(D))
                    logits.append(dot * scale + bias if ok else -math.inf)
                probs = _softmax_row(logits)
                if probs is None:
                    continue
                for j in range(Lk):
                    if ref_mask[b, j]:
                        r[j] += probs[j]
        refs = [j for j in range(Lk) if ref_mask[b, j]]
        groups = {}
        for j in refs:
            key = int(ref_ids[b, j]) if cfg.normalize == "per_ref" else 0
            groups.setdefault(key, []).append(j)
        for members in groups.values():
            lo, hi = min(r[j] for j in members), max(r[j] for j in members)
            if hi <= lo:
                continue
            values = {j: (r[j] - lo) / (hi - lo) for j in members}
            t_high, t_low = cfg.tau_high, cfg.tau_low
            if cfg.thresholds == "quantile":  # the k-th largest / smallest of the group, k = floor(q * n)
                ordered, n = sorted(values.values()), len(values)
                k_high, k_low = math.floor(n * cfg.q_high), math.floor(n * cfg.q_low)
                t_high = ordered[n - k_high] if k_high else math.inf
                t_low = ordered[k_low - 1] if k_low else -math.inf
            for j, x in values.items():
                r_hat_all[b, j] = x
                up, down = x >= t_high, x <= t_low
                if up and not down:
                    weights[b, j] = 1 + cfg.gamma
                elif down and not up:
                    weights[b, j] = 1 - cfg.gamma
        for h in range(H):
            for i in range(Lq):
                logits = []
                for j in range(Lk):
                    ok, bias = _keep(attn_mask, is_causal, b, h, i, j)
                    dot = sum(float(q[b, h, i, d]) * float(k[b, h // group, j, d]) for d in range(D))
                    logits.append(float(weights[b, j]) * dot * scale + bias if ok else -math.inf)
                probs = _softmax_row(logits)
                if probs is not None:
                    out[b, h, i] = sum(probs[j] * v[b, h // group, j] for j in range(Lk))
    return out, weights, r_hat_all


# ----------------------------------------------------------------------------- scenarios
def _inputs(seed, B=2, H=4, Hk=4, Lq=12, Lk=20, D=8):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Lq, D, generator=g) * 1.5
    k = torch.randn(B, Hk, Lk, D, generator=g) * 1.5
    v = torch.randn(B, Hk, Lk, D, generator=g)
    return q, k, v


def _two_references(start, split, end, ids=(0, 1)):
    """(ref_mask (Lk,), ref_ids (2, Lk)) for Lk = 20: reference keys [start, end) in both rows, the first
    reference before ``split`` and the second from it, named ``ids``."""
    ref = torch.zeros(20, dtype=torch.bool)
    ref[start:end] = True
    ref_ids = torch.full((2, 20), -1)
    ref_ids[:, start:split], ref_ids[:, split:end] = ids
    return ref, ref_ids


def _scenario(name):
    cfg = DARConfig(num_queries=5)
    kw = {}
    if name == "gqa":
        q, k, v = _inputs(1, H=4, Hk=2)
        ref = torch.zeros(20, dtype=torch.bool)
        ref[4:16] = True
    elif name == "padding":
        q, k, v = _inputs(2, H=2, Hk=1)
        ref = torch.zeros(2, 20, dtype=torch.bool)
        ref[:, 2:14] = True
        keep = torch.ones(2, 1, 1, 20, dtype=torch.bool)
        keep[1, ..., :3] = False  # left padding in row 1, part of it over reference keys
        kw["attn_mask"] = keep
        kw["query_mask"] = torch.arange(12)[None].expand(2, 12) >= torch.tensor([[0], [4]])
    elif name == "causal":
        q, k, v = _inputs(3, Lq=20)
        ref = torch.zeros(2, 20, dtype=torch.bool)
        ref[:, 3:11] = True
        kw["is_causal"] = True
        kw["query_mask"] = torch.arange(20) >= 11
    elif name == "row_spans":
        q, k, v = _inputs(4, B=3, H=2, Hk=2)
        ref = torch.zeros(3, 20, dtype=torch.bool)
        ref[0, 0:6] = True
        ref[1, 8:19] = True  # row 2: no references at all
        qm = torch.ones(3, 12, dtype=torch.bool)
        qm[1, 3:] = False  # row 1: fewer queries than m
        kw["query_mask"] = qm
        kw["scale"] = 0.3
    elif name == "per_ref":
        q, k, v = _inputs(5, H=2, Hk=2)
        ref, kw["ref_ids"] = _two_references(2, 9, 16)
        kw["ref_ids"][1, 2:5] = 7  # three references in row 1, ids need not be contiguous
        cfg = DARConfig(num_queries=5, normalize="per_ref", gamma=0.3)
    elif name == "random":
        q, k, v = _inputs(6, Lq=16)
        ref = torch.zeros(20, dtype=torch.bool)
        ref[5:] = True
        cfg = DARConfig(num_queries=6, sampling="random", seed=123, tau_low=0.4, tau_high=0.6)
    elif name == "float_mask_per_query":
        q, k, v = _inputs(7, H=2, Hk=2)
        ref = torch.zeros(20, dtype=torch.bool)
        ref[6:18] = True
        g = torch.Generator().manual_seed(70)
        bias = torch.randn(2, 2, 12, 20, generator=g)
        bias[torch.rand(2, 2, 12, 20, generator=g) < 0.2] = float("-inf")
        bias[..., 0] = 0.0
        kw["attn_mask"] = bias
    elif name == "gqa_masks":
        q, k, v = _inputs(8, H=6, Hk=2)  # three query heads per key/value head
        ref = torch.zeros(2, 20, dtype=torch.bool)
        ref[0, 3:17], ref[1, 5:20] = True, True
        g = torch.Generator().manual_seed(80)
        bias = torch.randn(2, 6, 12, 20, generator=g)  # a different additive mask per query head
        bias[torch.rand(2, 6, 12, 20, generator=g) < 0.15] = float("-inf")
        bias[..., 4] = 0.0
        kw["attn_mask"] = bias
        cfg = DARConfig(num_queries=4, tau_low=0.35, tau_high=0.65)
    elif name == "gqa_shared_mask":
        q, k, v = _inputs(9, H=4, Hk=1)
        ref = torch.arange(20) >= 8
        keep = torch.rand(2, 1, 12, 20, generator=torch.Generator().manual_seed(90)) > 0.2
        keep[..., 0] = True
        kw["attn_mask"] = keep
    elif name == "quantile":
        q, k, v = _inputs(14, H=4, Hk=2)
        ref = torch.zeros(2, 20, dtype=torch.bool)
        ref[0, 2:18], ref[1, 5:16] = True, True
        cfg = DARConfig(num_queries=5, thresholds="quantile", q_high=0.25, q_low=0.4, gamma=0.2)
    elif name == "quantile_per_ref":
        q, k, v = _inputs(15, H=2, Hk=2)
        ref, kw["ref_ids"] = _two_references(1, 8, 19, ids=(3, 5))
        kw["attn_mask"] = torch.rand(2, 1, 12, 20, generator=torch.Generator().manual_seed(150)) > 0.15
        cfg = DARConfig(num_queries=4, thresholds="quantile", normalize="per_ref", q_high=0.3, q_low=0.3)
    else:
        raise KeyError(name)
    return q, k, v, ref, cfg, kw


SCENARIOS = ["gqa", "padding", "causal", "row_spans", "per_ref", "random", "float_mask_per_query", "gqa_masks",
             "gqa_shared_mask", "quantile", "quantile_per_ref"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_matches_float64_reference(name):
    q, k, v, ref, cfg, kw = _scenario(name)
    out, w, r_hat = dar_attention(q, k, v, ref, cfg, return_weights=True, **kw)
    ref_out, ref_w, ref_r = reference_dar(q, k, v, ref, cfg, **kw)
    assert torch.equal(w.double(), ref_w.to(torch.float32).double()), (w, ref_w)
    assert torch.allclose(r_hat.double(), ref_r, atol=1e-5, equal_nan=True)
    assert torch.allclose(out.double(), ref_out, atol=2e-5), (out.double() - ref_out).abs().max()
    assert (w != 1).any(), "scenario should actually rebalance something"
    if name == "row_spans":
        assert torch.equal(w[2], torch.ones(20))  # no reference keys: left alone
    plain = F.scaled_dot_product_attention(q, k, v, attn_mask=kw.get("attn_mask"), scale=kw.get("scale"),
                                           is_causal=kw.get("is_causal", False), enable_gqa=q.shape[1] != k.shape[1])
    assert not torch.allclose(out, plain)


def test_gamma_zero_is_bit_identical_to_sdpa():
    for name in SCENARIOS:
        q, k, v, ref, _, kw = _scenario(name)
        cfg = DARConfig(gamma=0.0, num_queries=5)
        ours = dar_attention(q, k, v, ref, cfg, **kw)
        sdpa_kw = {key: kw[key] for key in ("attn_mask", "scale", "is_causal") if key in kw}
        theirs = F.scaled_dot_product_attention(q, k, v, enable_gqa=q.shape[1] != k.shape[1], **sdpa_kw)
        assert torch.equal(ours, theirs), name
        # return_weights=True goes through dar_weights and the scaled-key SDPA call instead: dar_weights skips
        # the analysis at gamma 0 (every weight exactly 1), and keys scaled by 1 keep SDPA bit-identical
        out, w, _ = dar_attention(q, k, v, ref, cfg, return_weights=True, **kw)
        assert torch.equal(w, torch.ones_like(w)) and torch.equal(out, theirs), name
        # the skipped analysis would give the same: the normalised scores a gamma > 0 run measures cross the
        # thresholds, yet the op's own rebalancing step turns them into weights of exactly 1 at gamma 0
        _, w_on, r_hat = dar_attention(q, k, v, ref, replace(cfg, gamma=0.15), return_weights=True, **kw)
        assert (w_on != 1).any(), name
        rows = ref.expand(q.shape[0], k.shape[2])
        w_zero, r_zero = rebalance_weights(r_hat.nan_to_num(0.0), rows, cfg)
        assert torch.equal(w_zero, torch.ones_like(w_zero)), name
        assert torch.equal(r_zero.isnan(), r_hat.isnan()), name  # the same keys were classified
    q, k, v = (t.bfloat16() for t in _inputs(9))
    ref = torch.arange(20) < 10
    assert torch.equal(dar_attention(q, k, v, ref, DARConfig(gamma=0.0)), F.scaled_dot_product_attention(q, k, v))


def test_degenerate_rows_leave_attention_unchanged():
    q, k, v = _inputs(10)
    sdpa = F.scaled_dot_product_attention(q, k, v)
    # no reference keys
    out, w, r_hat = dar_attention(q, k, v, torch.zeros(20, dtype=torch.bool), return_weights=True)
    assert torch.equal(out, sdpa) and torch.equal(w, torch.ones_like(w)) and r_hat.isnan().all()
    # all-equal scores: identical reference keys receive identical attention, so max == min
    k2 = k.clone()
    k2[:, :, 5:15] = k2[:, :, 5:6]
    out, w, r_hat = dar_attention(q, k2, v, torch.arange(20).ge(5) & torch.arange(20).lt(15), return_weights=True)
    assert torch.equal(w, torch.ones_like(w)) and r_hat.isnan().all()
    assert torch.equal(out, F.scaled_dot_product_attention(q, k2, v))
    # a single reference key (max == min as well)
    out, w, _ = dar_attention(q, k, v, torch.arange(20) == 3, return_weights=True)
    assert torch.equal(out, sdpa) and torch.equal(w, torch.ones_like(w))
    # no selectable query
    out, w, _ = dar_attention(q, k, v, torch.arange(20) < 8, query_mask=torch.zeros(12, dtype=torch.bool),
                              return_weights=True)
    assert torch.equal(out, sdpa) and torch.equal(w, torch.ones_like(w))


def test_fully_masked_sampled_rows_contribute_nothing():
    q, k, v = _inputs(11, B=1, H=2, Hk=2)
    ref = torch.arange(20) < 10
    mask = torch.ones(1, 1, 12, 20, dtype=torch.bool)
    mask[0, 0, :6] = False  # queries 0..5 see no key at all
    cfg = DARConfig(num_queries=12)
    _, w, r_hat = dar_attention(q, k, v, ref, cfg, attn_mask=mask, return_weights=True)
    _, ref_w, ref_r = reference_dar(q, k, v, ref, cfg, attn_mask=mask)
    assert not w.isnan().any() and torch.equal(w, ref_w.float())
    assert torch.allclose(r_hat.double(), ref_r, atol=1e-5, equal_nan=True)
    # only masked queries sampled -> all scores zero -> nothing to rebalance
    _, w, _ = dar_attention(q, k, v, ref, cfg, attn_mask=mask, query_mask=torch.arange(12) < 6, return_weights=True)
    assert torch.equal(w, torch.ones_like(w))


@pytest.mark.parametrize("tau_low,tau_high", [(0.3, 0.7), (0.25, 0.75)])
def test_thresholds_are_inclusive(tau_low, tau_high):
    cfg = DARConfig(gamma=0.2, tau_low=tau_low, tau_high=tau_high)
    scores = torch.tensor([[0.0, tau_low, 0.5, tau_high, 1.0, 0.9]])
    ref = torch.tensor([[True, True, True, True, True, False]])
    w, r_hat = rebalance_weights(scores, ref, cfg)
    assert torch.equal(r_hat[0, :5], scores[0, :5]) and r_hat[0, 5].isnan()
    assert w[0].tolist() == pytest.approx([0.8, 0.8, 1.0, 1.2, 1.2, 1.0])
    # one float32 step inside the band on either side: left alone
    low, high = torch.tensor(tau_low), torch.tensor(tau_high)
    inside = torch.stack([torch.tensor(0.0), torch.nextafter(low, high), torch.nextafter(high, low), torch.tensor(1.0)])
    w, r_hat = rebalance_weights(inside[None], torch.ones(1, 4, dtype=torch.bool), cfg)
    assert torch.equal(r_hat[0], inside) and w[0].tolist() == pytest.approx([0.8, 1.0, 1.0, 1.2])


def test_per_ref_normalises_each_reference_separately():
    scores = torch.tensor([[1.0, 2.0, 3.0, 8.0, 19.0, 30.0, 5.0]])
    ref = torch.tensor([[True] * 6 + [False]])
    ids = torch.tensor([[0, 0, 0, 1, 1, 1, -1]])
    w, r_hat = rebalance_weights(scores, ref, DARConfig(normalize="per_ref"), ids)
    assert r_hat[0, :6].tolist() == [0.0, 0.5, 1.0, 0.0, 0.5, 1.0]
    w_joint, _ = rebalance_weights(scores, ref, DARConfig())
    assert w[0].tolist() == pytest.approx([0.85, 1, 1.15, 0.85, 1, 1.15, 1])
    assert w_joint[0].tolist() == pytest.approx([0.85, 0.85, 0.85, 0.85, 1, 1.15, 1])
    with pytest.raises(ValueError, match="ref_ids"):
        q, k, v = _inputs(0)
        dar_attention(q, k, v, torch.arange(20) < 5, DARConfig(normalize="per_ref"))


def test_quantile_thresholds_count_and_ties():
    cfg = DARConfig(gamma=0.2, thresholds="quantile", q_high=0.2, q_low=0.4)
    scores = torch.tensor([[9.0, 1.0, 5.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 0.0, 100.0]])
    ref = torch.tensor([[True] * 10 + [False]])
    w, _ = rebalance_weights(scores, ref, cfg)
    # 10 reference keys: the top 2 boosted, the bottom 4 damped, the non-reference key left alone
    assert w[0].tolist() == pytest.approx([1.2, 0.8, 1, 0.8, 1, 0.8, 1.2, 1, 1, 0.8, 1])
    ties = torch.tensor([[1.0, 1.0, 1.0, 2.0]])  # the 2nd largest ties with the smallest: those keys left alone
    w, _ = rebalance_weights(ties, torch.ones(1, 4, dtype=torch.bool), replace(cfg, q_high=0.5, q_low=0.5))
    assert w[0].tolist() == pytest.approx([1, 1, 1, 1.2])
    w, _ = rebalance_weights(scores, ref, replace(cfg, q_high=0.0, q_low=0.0))
    assert torch.equal(w, torch.ones_like(w))


BAD_CONFIGS = [
    ({"thresholds": "otsu"}, "thresholds"), ({"q_high": 0.7, "q_low": 0.4}, "q_high"), ({"q_low": -0.1}, "q_low"),
    ({"compile": "yes"}, "compile"), ({"reuse_steps": 0}, "reuse_steps"), ({"reuse_steps": 1.5}, "reuse_steps"),
    ({"record_maps": "sometimes"}, "record_maps"),
    ({"gamma": 1.0}, "gamma"), ({"gamma": -0.1}, "gamma"), ({"gamma": float("nan")}, "gamma"),
    ({"tau_low": 0.7, "tau_high": 0.7}, "tau"), ({"tau_low": -0.1}, "tau"), ({"tau_high": 1.5}, "tau"),
    ({"num_queries": 0}, "num_queries"), ({"num_queries": 2.5}, "num_queries"),
    ({"sampling": "uniform"}, "sampling"), ({"normalize": "per_image"}, "normalize"),
    ({"cfg_branches": "uncond"}, "cfg_branches"), ({"seed": "1"}, "seed"), ({"layers": [0, -1]}, "layers"),
    ({"steps": (0.5, 0.5)}, "steps"), ({"steps": (0.0, 1.2)}, "steps"), ({"steps": "all"}, "steps"),
]


@pytest.mark.parametrize("kwargs,field", BAD_CONFIGS)
def test_invalid_config_raises_clear_value_error(kwargs, field):
    with pytest.raises(ValueError, match=field):
        DARConfig(**kwargs)


def test_config_normalises_and_documents_defaults():
    cfg = DARConfig(layers=[2, 0], steps=[0, 0.5])
    assert cfg.layers == (2, 0) and cfg.steps == (0.0, 0.5)
    assert (DARConfig().gamma, DARConfig().tau_high, DARConfig().tau_low, DARConfig().num_queries) == (0.15, 0.7, 0.3, 64)
    assert cfg.step_active(0.49) and not cfg.step_active(0.5) and cfg.layer_active(2) and not cfg.layer_active(1)


def test_invalid_inputs_name_the_field():
    q, k, v = _inputs(0)
    with pytest.raises(ValueError, match="ref_mask"):
        dar_attention(q, k, v, torch.zeros(19, dtype=torch.bool))
    with pytest.raises(TypeError, match="ref_mask"):
        dar_attention(q, k, v, torch.zeros(20))
    with pytest.raises(ValueError, match="query_mask"):
        dar_attention(q, k, v, torch.zeros(20, dtype=torch.bool), query_mask=torch.ones(3, 12, dtype=torch.bool))
    with pytest.raises(ValueError, match="multiple"):
        dar_attention(q, k[:, :3], v[:, :3], torch.zeros(20, dtype=torch.bool))
    with pytest.raises(ValueError, match="is_causal"):
        dar_attention(q, k, v, torch.zeros(20, dtype=torch.bool), attn_mask=torch.ones(12, 20, dtype=torch.bool),
                      is_causal=True)


def test_strided_and_random_sampling():
    cfg = DARConfig(num_queries=4)
    pos, valid = sample_query_positions(None, 1, 16, cfg)
    assert pos.tolist() == [[2, 6, 10, 14]] and valid.all()
    qm = torch.zeros(2, 16, dtype=torch.bool)
    qm[0, 8:] = True
    qm[1, [1, 5]] = True
    pos, valid = sample_query_positions(qm, 2, 16, cfg)
    assert pos[0].tolist() == [9, 11, 13, 15] and valid[0].all()
    assert pos[1, :2].tolist() == [1, 5] and valid[1].tolist() == [True, True, False, False]
    rnd = DARConfig(num_queries=5, sampling="random", seed=7)
    a, _ = sample_query_positions(qm | True, 2, 16, rnd)
    b, _ = sample_query_positions(qm | True, 2, 16, rnd)
    c, _ = sample_query_positions(qm | True, 2, 16, DARConfig(num_queries=5, sampling="random", seed=8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(len(set(row)) == 5 and row == sorted(row) for row in a.tolist())


class _AllocationRecorder(TorchDispatchMode):
    """Records the element count of every new storage an op allocates while not paused."""

    def __init__(self, known):
        super().__init__()
        self.known = {t.untyped_storage().data_ptr() for t in known}
        self.sizes, self.paused, self.fused_calls = [], False, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.paused:
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.known:
                    self.known.add(t.untyped_storage().data_ptr())
                    self.sizes.append((str(func), t.untyped_storage().nbytes() // t.element_size()))
        return out


@pytest.mark.parametrize("masked", ["bool_full", "causal", "float_row"])
def test_intermediates_stay_within_m_by_lk_per_head(monkeypatch, masked):
    B, H, Hk, Lq, Lk, D, m = 1, 4, 2, 512, 640, 8, 16
    q, k, v = _inputs(12, B=B, H=H, Hk=Hk, Lq=Lq, Lk=Lk, D=D)
    kw = {}
    if masked == "bool_full":
        kw["attn_mask"] = torch.rand(B, 1, Lq, Lk, generator=torch.Generator().manual_seed(1)) > 0.1
    elif masked == "causal":
        kw["is_causal"] = True
    else:
        kw["attn_mask"] = torch.zeros(B, 1, 1, Lk)
    recorder = _AllocationRecorder([q, k, v, *kw.values()] if "attn_mask" in kw else [q, k, v])
    real = dar.op._sdpa

    def fused(*args, **kwargs):
        recorder.paused, recorder.fused_calls = True, recorder.fused_calls + 1
        try:
            return real(*args, **kwargs)
        finally:
            recorder.paused = False

    monkeypatch.setattr(dar.op, "_sdpa", fused)
    ref = torch.arange(Lk) < 400
    with recorder:
        out = dar_attention(q, k, v, ref, DARConfig(num_queries=m), **kw)
    assert out.shape == (B, H, Lq, D) and recorder.fused_calls == 1
    biggest = max(size for _, size in recorder.sizes)
    assert biggest <= B * H * m * Lk, sorted(recorder.sizes, key=lambda s: -s[1])[:3]
    assert biggest < Lq * Lk  # never a full attention matrix, not even for one head


def test_bfloat16_runs_and_tracks_float32():
    q, k, v = _inputs(13, Lq=32, Lk=48)
    ref = torch.arange(48) >= 16
    out32, w32, _ = dar_attention(q, k, v, ref, return_weights=True)
    out16, w16, _ = dar_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), ref, return_weights=True)
    assert out16.dtype == torch.bfloat16 and not out16.isnan().any()
    assert (w16 == w32).float().mean() > 0.9
    assert torch.allclose(out16.float(), out32, atol=0.1)
