"""DAR hooks on tiny random-weight models: diffusers pipelines (saved and loaded back) and transformers LMs.

For each hook: gamma = 0 leaves the output bit-identical, the default gamma changes it, and disabling
(also after an exception) restores the original attention. A spy on ``dar_weights`` checks that the hook
really located the reference and generated-image tokens, and that the layer/step/branch options act.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import dar
import dar.diffusers_hooks
import dar.hf
import dar.routing
from dar import DARConfig
from micon_tasks.testing import tiny_pipelines as tp


def _ref_image(seed: int, size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


REFS = [_ref_image(1), _ref_image(2)]
# name -> (builder, call kwargs, refs per reference-carrying row, tokens per ref, generated tokens)
PIPELINES = {
    "omnigen": (tp.tiny_omnigen, dict(prompt="A cat <img><|image_1|></img> and a dog <img><|image_2|></img>",
                                      input_images=REFS), 2, 4, 4),  # refs cropped to 32 px: VAE x8, patch 2
    "qwen_image_edit_plus": (tp.tiny_qwen_image_edit_plus, dict(prompt="combine them", image=REFS), 2, 64, 16),
    "flux2_klein": (tp.tiny_flux2_klein, dict(prompt="combine them", image=REFS), 2, 16, 4),
    "flux_kontext": (tp.tiny_flux_kontext, dict(prompt="combine them", image=REFS[0]), 1, 16, 4),
}


class Spy:
    """Wraps ``dar_weights`` and records what each routed attention call saw."""

    def __init__(self, monkeypatch, module):
        self.calls, self.module, real = [], module, module.dar_weights

        def spy(query, key, ref_mask, config, **kwargs):
            w, r_hat = real(query, key, ref_mask, config, **kwargs)
            qm = kwargs.get("query_mask")
            self.calls.append(dict(layer=dar.context.current_layer(), step=dar.context._STATE.get().step
                                   if dar.context._STATE.get() else None,
                                   refs=ref_mask.sum(dim=-1).tolist(), queries=None if qm is None else qm.sum(-1).tolist(),
                                   changed=int((w != 1).sum()), lk=key.shape[2], lq=query.shape[2],
                                   mask=kwargs.get("attn_mask")))
            return w, r_hat

        monkeypatch.setattr(module, "dar_weights", spy)


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def pipeline(request, tmp_path_factory):
    """Each tiny pipeline, saved with save_pretrained and loaded back through from_pretrained."""
    name = request.param
    build, call, *_ = PIPELINES[name]
    folder = tmp_path_factory.mktemp(name)
    built = build(folder)
    loaded = type(built).from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)

    def run(pipe=loaded, **extra):
        with tp.qwen_edit_plus_sizes():
            torch.manual_seed(0)  # OmniGen's reference encoding ignores the generator
            return pipe(**call, **{**tp.TINY_CALL_KWARGS[name], **extra}, output_type="np",
                        generator=torch.Generator().manual_seed(0)).images

    baseline = run()
    # The round trip is a sanity check of the fixture, not DAR's behaviour: newer diffusers reload some
    # weights with another memory layout, which moves float32 sums by a few ulps (seen: 4e-8).
    assert np.allclose(run(built), baseline, rtol=0, atol=1e-5), "save_pretrained/from_pretrained must round-trip"
    return name, loaded, run, baseline


def _routing_snapshot(pipe):
    model = pipe.transformer
    layout = dar.layouts.layout_for(model)(model, DARConfig())
    attribute = layout.attribute
    module = __import__(type(model).__module__, fromlist=["_"])
    processors = [m.processor for m in layout.attention_modules()]
    return (getattr(module, attribute), processors, len(model._forward_pre_hooks), len(model._forward_hooks))


def test_diffusers_hook_identity_change_and_restore(pipeline, monkeypatch):
    name, pipe, run, baseline = pipeline
    _, _, n_refs, per_ref, n_out = PIPELINES[name]
    before = _routing_snapshot(pipe)
    spy = Spy(monkeypatch, dar.routing)
    with dar.enable(pipe, DARConfig(gamma=0.0)) as zero:
        assert np.array_equal(run(), baseline)
    with dar.enable(pipe, DARConfig()) as handle:
        assert dar.hooks.is_enabled(pipe) and handle.config.gamma == 0.15
        changed = run()
    assert not np.array_equal(changed, baseline) and np.isfinite(changed).all()
    calls = [c for c in spy.calls if c["changed"]]
    assert calls, "DAR never rebalanced anything"
    # the counts: every routed call is counted, at gamma 0 too (DAR reached it; its weights were all 1)
    assert handle.stats.rebalanced == len(spy.calls) // 2 > 0 and handle.stats.forwards > 0
    assert zero.stats.to_dict() == handle.stats.to_dict()
    for c in spy.calls:
        assert set(c["refs"]) <= {0, n_refs * per_ref}, c["refs"]
        assert set(c["queries"]) == {n_out}
    assert np.array_equal(run(), baseline)
    assert _routing_snapshot(pipe) == before and not dar.hooks.is_enabled(pipe)


def test_diffusers_hook_restores_on_exception(pipeline):
    name, pipe, run, baseline = pipeline
    before = _routing_snapshot(pipe)
    with pytest.raises(KeyboardInterrupt):
        with dar.enable(pipe, DARConfig(gamma=0.5)):
            assert _routing_snapshot(pipe) != before
            raise KeyboardInterrupt
    assert _routing_snapshot(pipe) == before and dar.context.current_state() is None
    assert dar.disable(pipe) is False


def test_layer_and_step_options(monkeypatch):
    pipe = tp.tiny_flux2_klein()
    spy = Spy(monkeypatch, dar.routing)
    kwargs = {**tp.TINY_CALL_KWARGS["flux2_klein"], "num_inference_steps": 4, "guidance_scale": 1.0}
    with dar.enable(pipe, DARConfig(layers=(1,), steps=(0.5, 1.0))) as handle:
        pipe(prompt="x", image=REFS, output_type="np", generator=torch.Generator().manual_seed(0), **kwargs)
    assert [c["layer"] for c in spy.calls] == [1, 1]  # one single-stream layer, steps 2 and 3 of 4
    assert [c["step"] for c in spy.calls] == [0.5, 0.75]
    # 4 forwards x 2 layers: layer 0 always excluded, layer 1 excluded at steps 0 and 1
    assert handle.stats.to_dict() == {"rebalanced": 2, "passed": {"layer_excluded": 4, "step_excluded": 2},
                                      "forwards": 4}
    spy.calls.clear()
    with dar.enable(pipe, DARConfig()) as handle:
        pipe(prompt="x", image=REFS, output_type="np", generator=torch.Generator().manual_seed(0), **kwargs)
    assert [(c["layer"], c["step"]) for c in spy.calls] == [(i, s / 4) for s in range(4) for i in (0, 1)]
    assert handle.stats.to_dict() == {"rebalanced": 8, "passed": {}, "forwards": 4}


def test_stats_report_when_dar_reaches_nothing(monkeypatch):
    """A scope that excludes every layer, or a layout that does not match the attention calls, rebalances
    nothing; the counts say so (the adapters turn that into a GenerationError)."""
    pipe = tp.tiny_flux2_klein()
    kwargs = {**tp.TINY_CALL_KWARGS["flux2_klein"], "guidance_scale": 1.0}
    with dar.enable(pipe, DARConfig(layers=(7,))) as handle:
        pipe(prompt="x", image=REFS, output_type="np", **kwargs)
    assert handle.stats.rebalanced == 0 and handle.stats.passed == {"layer_excluded": 4}
    assert "0 attention call(s) rebalanced" in handle.stats.describe()
    # a misread layout: one token too many, so no attention call has the located joint sequence
    tokens = dar.diffusers_hooks.FluxLayout.tokens

    def off_by_one(self, call):
        ref, query, ids, grids = tokens(self, call)
        pad = torch.zeros(ref.shape[0], 1, dtype=torch.bool)
        return (torch.cat([ref, pad], 1), torch.cat([query, pad], 1),
                torch.cat([ids, -torch.ones_like(ids[:, :1])], 1), grids)

    monkeypatch.setattr(dar.diffusers_hooks.FluxLayout, "tokens", off_by_one)
    with dar.enable(pipe, DARConfig()) as handle:
        pipe(prompt="x", image=REFS, output_type="np", **kwargs)
    assert handle.stats.rebalanced == 0 and handle.stats.passed == {"other_sequence": 4}
    # options DAR does not handle are counted as passed through, by name
    monkeypatch.undo()
    import diffusers.models.transformers.transformer_flux2 as flux2_module

    with dar.enable(pipe, DARConfig()) as handle:
        routed = flux2_module.dispatch_attention_fn
        q = torch.randn(1, 4, 2, 8)
        with dar.context._scoped(dar.context._STATE, dar.context.ForwardState(
                config=DARConfig(), ref_mask=torch.ones(1, 4, dtype=torch.bool), query_mask=torch.ones(4, dtype=torch.bool),
                stats=handle.stats)):
            routed(q, q, q, dropout_p=0.5)
            routed(q, q, q, attention_kwargs={"x": 1})
        # a routed call under dar.references alone (dar.hf's, no layout placed it) is not DAR's: untouched, uncounted
        ref = torch.tensor([[False, True, True, False]])
        with dar.references(ref, torch.ones(1, 4, dtype=torch.bool), config=DARConfig(gamma=0.5)):
            assert torch.equal(routed(q, q.flip(1), q), routed.__wrapped__(q, q.flip(1), q))
    assert handle.stats.rebalanced == 0 and handle.stats.passed == {"dropout": 1, "attention_kwargs": 1}


def test_forward_state_does_not_copy_the_placement():
    """A layout's placement (branch, step index, conditional) and its class options (outside_layers, strict)
    each have one home, read by dar.routing through the state's ``placement`` and ``hook``; the state's own
    fields named like placement fields hold what the placement becomes for the attention calls (masks on the
    device and cut to the conditional rows, the effective step, the forward's pass-through reason)."""
    from dataclasses import fields

    from dar.context import ForwardState
    from dar.layouts import Placement

    state = {f.name for f in fields(ForwardState)}
    assert state & {f.name for f in fields(Placement)} <= {"ref_mask", "query_mask", "ref_ids", "cond_rows", "step",
                                                           "reason"}
    assert not state & {"outside_layers", "strict"}
    assert {"placement", "hook"} <= state


def test_cond_branch_only(monkeypatch):
    spy = Spy(monkeypatch, dar.routing)
    pipe = tp.tiny_flux2_klein()  # guidance 4: a conditional then an unconditional forward per step
    with dar.enable(pipe, DARConfig(cfg_branches="cond", layers=(0,))) as handle:
        pipe(prompt="x", image=REFS, output_type="np", **tp.TINY_CALL_KWARGS["flux2_klein"])
    # the unconditional forwards carry no reference key once cfg_branches="cond" masks them: passed through
    assert [c["refs"] for c in spy.calls] == [[32], [32]]
    assert handle.stats.to_dict() == {"rebalanced": 2, "passed": {"layer_excluded": 4, "no_reference_keys": 2},
                                      "forwards": 4}
    spy.calls.clear()
    omni = tp.tiny_omnigen()  # CFG rows batched: [cond | negative text (no refs) | image CFG]
    with dar.enable(omni, DARConfig(cfg_branches="cond", layers=(0,))):
        omni(prompt="A <img><|image_1|></img>", input_images=REFS[:1], output_type="np", **tp.TINY_CALL_KWARGS["omnigen"])
    assert {tuple(c["refs"]) for c in spy.calls} == {(4, 0, 0)}
    spy.calls.clear()
    with dar.enable(omni, DARConfig(layers=(0,))):
        omni(prompt="A <img><|image_1|></img>", input_images=REFS[:1], output_type="np", **tp.TINY_CALL_KWARGS["omnigen"])
    assert {tuple(c["refs"]) for c in spy.calls} == {(4, 0, 4)}


def test_enable_rejects_bad_targets():
    with pytest.raises(TypeError, match="expected a transformers PreTrainedModel"):
        dar.enable(object())
    with pytest.raises(TypeError, match="DARConfig"):
        dar.enable(tp.tiny_flux2_klein(), {"gamma": 0.1})
    pipe = tp.tiny_flux2_klein()
    with dar.enable(pipe):
        with pytest.raises(RuntimeError, match="already enabled"):
            dar.enable(pipe)
    from diffusers import AutoencoderKL

    with pytest.raises(TypeError, match="no DAR layout"):
        dar.enable(AutoencoderKL(block_out_channels=(4,), norm_num_groups=1, latent_channels=4))


# ----------------------------------------------------------------------------- transformers
@pytest.fixture(scope="module")
def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=0)).eval()
    ids = torch.randint(3, 64, (2, 24), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones(2, 24, dtype=torch.long)
    attention_mask[1, :5] = 0  # left padding in row 1

    def logits():
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=attention_mask).logits

    return model, ids, attention_mask, logits


REF = torch.arange(24).ge(6) & torch.arange(24).lt(16)
GEN = torch.arange(24) >= 16


def test_transformers_identity_change_and_restore(llama, monkeypatch):
    model, _, _, logits = llama
    baseline = logits()
    spy = Spy(monkeypatch, dar.hf)
    with dar.enable(model, DARConfig(gamma=0.0)) as zero, dar.references(REF, GEN):
        assert model.config._attn_implementation == "dar"
        assert torch.equal(logits(), baseline)
    assert zero.stats.rebalanced == 2 and zero.stats.passed == {}  # gamma 0: reached, weights all 1
    spy.calls.clear()
    with dar.enable(model) as handle, dar.references(REF, GEN):
        changed = logits()
    assert handle.stats.rebalanced == 2
    assert not torch.allclose(changed, baseline)
    assert all(c["mask"] is not None and c["mask"].dtype == torch.bool for c in spy.calls), \
        "padding mask lost: AttentionMaskInterface entry missing"
    assert [c["layer"] for c in spy.calls] == [0, 1] and spy.calls[0]["refs"] == [10, 10]
    with dar.enable(model) as handle:  # no references context: plain SDPA, and counted as such
        assert torch.equal(logits(), baseline)
    assert handle.stats.rebalanced == 0 and handle.stats.passed == {"no_references_context": 2}
    with dar.enable(model, DARConfig(layers=(5,))) as handle, dar.references(REF, GEN):
        assert torch.equal(logits(), baseline)
    assert handle.stats.rebalanced == 0 and handle.stats.passed == {"layer_excluded": 2}
    assert model.config._attn_implementation == "sdpa" and torch.equal(logits(), baseline)
    with pytest.raises(KeyboardInterrupt), dar.enable(model):
        raise KeyboardInterrupt
    assert model.config._attn_implementation == "sdpa" and not dar.hooks.is_enabled(model)


def test_transformers_options_and_kv_cache(llama, monkeypatch):
    model, ids, attention_mask, logits = llama
    baseline = logits()
    spy = Spy(monkeypatch, dar.hf)
    with dar.enable(model, DARConfig(cfg_branches="cond", layers=(1,))) as handle:
        with dar.references(REF, GEN):
            with pytest.raises(ValueError, match="cond_rows"):
                logits()
        with dar.references(REF, GEN, cond_rows=torch.tensor([True, False])):
            out = logits()
        with dar.references(REF, GEN, cond_rows=torch.tensor([False, False])):
            assert torch.equal(logits(), baseline)
    assert handle.stats.rebalanced == 1
    assert handle.stats.passed == {"layer_excluded": 3, "no_reference_keys": 1}
    assert torch.equal(out[1], baseline[1]) and not torch.allclose(out[0], baseline[0])
    assert {c["layer"] for c in spy.calls} == {1}
    spy.calls.clear()
    with dar.enable(model), dar.references(REF):  # absolute key positions, valid as the cache grows
        generated = model.generate(input_ids=ids, attention_mask=attention_mask, max_new_tokens=3, do_sample=False)
    assert generated.shape == (2, 27)
    assert [c["lk"] for c in spy.calls] == [24, 24, 25, 25, 26, 26] and all(c["refs"] == [10, 10] for c in spy.calls)


def test_transformers_composite_routes_language_model_only():
    pipe = tp.tiny_qwen_image_edit_plus()
    vlm = pipe.text_encoder
    assert vlm.config.vision_config._attn_implementation == "sdpa"
    with dar.enable(vlm):
        assert vlm.config.text_config._attn_implementation == "dar"
        assert vlm.config.vision_config._attn_implementation == "sdpa"
    assert vlm.config.text_config._attn_implementation == "sdpa"
