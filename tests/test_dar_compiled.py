"""The compiled analysis (DARConfig.compile) against the eager reference, its fallback, and reuse_steps."""

from __future__ import annotations

import warnings

import pytest
import torch

import dar.compiled
import dar.op
import dar.routing
from dar import DARConfig
from dar.op import dar_weights


@pytest.fixture(autouse=True)
def fresh_compiler_state():
    dar.compiled.reset()
    yield
    dar.compiled.reset()


def _inputs(seed, B=2, H=4, Hk=2, Lq=96, Lk=160, D=16):
    g = torch.Generator().manual_seed(seed)
    q, k = torch.randn(B, H, Lq, D, generator=g), torch.randn(B, Hk, Lk, D, generator=g)
    ref = torch.zeros(B, Lk, dtype=torch.bool)
    ref[0, 32:150], ref[1, 40:120] = True, True
    ids = torch.full((B, Lk), -1)
    ids[:, 32:90], ids[:, 90:150] = 0, 1
    mask = torch.rand(B, 1, Lq, Lk, generator=g) > 0.1
    return q, k, ref, ids, mask


def _assert_equal_within_tolerance(eager, compiled, config):
    """r_hat within 1e-4 relative; w identical except for keys whose r_hat lies within 1e-3 of a threshold."""
    (w0, r0), (w1, r1) = eager, compiled
    assert torch.equal(r0.isnan(), r1.isnan())
    defined = ~r0.isnan()
    assert torch.allclose(r1[defined], r0[defined], rtol=1e-4, atol=1e-6)
    near = torch.zeros_like(defined)
    if config.thresholds == "fixed":
        near = defined & (((r0 - config.tau_high).abs() < 1e-3) | ((r0 - config.tau_low).abs() < 1e-3))
    assert torch.equal(w0[~near], w1[~near])
    assert (w0 != 1).any()


@pytest.mark.slow
@pytest.mark.parametrize("config", [DARConfig(compile=True, num_queries=16),
                                    DARConfig(compile=True, num_queries=8, normalize="per_ref", thresholds="quantile")],
                         ids=["joint_fixed", "per_ref_quantile"])
def test_compiled_matches_eager_on_cpu(config):
    """Compiling on the CPU needs a C++ compiler (inductor); this machine has one, so no fallback may happen."""
    q, k, ref, ids, mask = _inputs(0)
    kw = dict(attn_mask=mask, ref_ids=ids)
    eager = dar_weights(q, k, ref, DARConfig(**{**config.__dict__, "compile": False}), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would warn: fail instead
        compiled = dar_weights(q, k, ref, config, **kw)
    assert dar.compiled.broken() is None
    _assert_equal_within_tolerance(eager, compiled, config)


def test_auto_stays_eager_on_cpu(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.compile must not be called for compile='auto' on the CPU")

    monkeypatch.setattr(dar.compiled.torch, "compile", refuse)
    q, k, ref, _, _ = _inputs(1)
    for mode in ("auto", False):
        dar_weights(q, k, ref, DARConfig(compile=mode))
    assert dar.compiled.broken() is None


def test_falls_back_cleanly_when_no_compiler_works(monkeypatch):
    calls = []

    def no_compiler(fn, **kwargs):
        def compiled(*args):
            calls.append(1)
            raise RuntimeError("InductorError: no working C++ compiler found\ndetails")

        return compiled

    monkeypatch.setattr(dar.compiled.torch, "compile", no_compiler)
    q, k, ref, _, _ = _inputs(2)
    eager = dar_weights(q, k, ref, DARConfig(compile=False))
    with pytest.warns(RuntimeWarning, match="compiled analysis failed.*no working C\\+\\+ compiler"):
        first = dar_weights(q, k, ref, DARConfig(compile=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = dar_weights(q, k, ref, DARConfig(compile=True))  # no second try, no second warning
    assert calls == [1] and "no working C++ compiler" in dar.compiled.broken()
    for out in (first, second):
        assert torch.equal(out[0], eager[0]) and torch.equal(out[1].isnan(), eager[1].isnan())


def test_compiled_analysis_is_built_once(monkeypatch):
    """One compile and one wrapper per process, whatever the calls, configs and shapes: the per-call cost is a
    lookup, and torch's cache (keyed by its guards) sees one function."""
    builds, runs = [], []

    def counting_compile(fn, **kwargs):
        builds.append(kwargs)

        def compiled(*args):
            runs.append(1)
            return fn(*args)

        return compiled

    monkeypatch.setattr(dar.compiled.torch, "compile", counting_compile)
    configs = [DARConfig(compile=True), DARConfig(compile=True, gamma=0.3, num_queries=8)]
    functions = [dar.compiled.analysis(c, torch.device("cpu")) for c in configs * 10]
    assert all(f is functions[0] for f in functions)
    q, k, ref, ids, _ = _inputs(3)
    for config in configs * 3:
        dar_weights(q, k, ref, config, ref_ids=ids)
        dar_weights(q[:1, :, :40], k[:1], ref[:1], config)
    assert builds == [{"dynamic": False}] and len(runs) == 12
    assert dar.compiled.analysis(DARConfig(compile=False), torch.device("cpu")) is dar.op.eager_analysis
    dar.compiled.reset()  # a reset (a changed toolchain) builds afresh
    assert dar.compiled.analysis(configs[0], torch.device("cpu")) is not functions[0] and len(builds) == 2


@pytest.mark.slow
def test_reuse_steps_recomputes_every_k_steps():
    import numpy as np
    from PIL import Image

    from micon_tasks.testing import tiny_pipelines as tp

    pipe = tp.tiny_flux2_klein()
    images = [Image.fromarray(np.random.RandomState(i).randint(0, 255, (64, 64, 3), dtype=np.uint8)) for i in (1, 2)]
    kwargs = {**tp.TINY_CALL_KWARGS["flux2_klein"], "num_inference_steps": 4, "guidance_scale": 1.0}
    counted, real = [], dar.routing.dar_weights

    def spy(*args, **kw):
        counted.append(1)
        return real(*args, **kw)

    outputs = {}
    for k in (1, 2, 4):
        counted.clear()
        dar.routing.dar_weights = spy
        try:
            with dar.enable(pipe, DARConfig(gamma=0.5, reuse_steps=k)) as handle:
                for _ in range(2):  # a second generation under the same handle reuses nothing of the first
                    outputs[k] = pipe(prompt="x", image=images, output_type="np",
                                      generator=torch.Generator().manual_seed(0), **kwargs).images
        finally:
            dar.routing.dar_weights = real
        assert handle.stats.rebalanced == 2 * 8  # 2 layers x 4 steps per generation: every call still weighted
        assert len(counted) == 2 * 8 // k  # weights computed at steps 0, k, 2k ... per layer, in each generation
    assert not (outputs[1] == outputs[4]).all()  # reusing stale weights does change the result
