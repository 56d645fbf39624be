"""The upstream models' DAR layouts (OmniGen2, UNO, BAGEL) without a checkout.

A minimal stand-in module tree with the upstream names the layouts touch (module paths, class names,
the attention functions' call signatures and the forwards' keyword arguments) and tiny random weights.
For each: gamma 0 identical to DAR off, the default gamma different, every patched name restored, the
pass-through counts by reason, and the attention maps on each reference's token grid.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import dar
from dar import DARConfig

STANDINS = {
    "omnigen2/__init__.py": "",
    "omnigen2/models/__init__.py": "",
    "omnigen2/models/attention_processor.py": """
        import torch.nn.functional as F

        class OmniGen2AttnProcessor:
            def __call__(self, attn, hidden_states, attention_mask=None):
                b, n, _ = hidden_states.shape
                q, k, v = (p(hidden_states).view(b, n, 2, -1).transpose(1, 2) for p in (attn.q, attn.k, attn.v))
                return F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask).transpose(1, 2).reshape(b, n, -1)

        class FlashProcessor(OmniGen2AttnProcessor):
            pass
    """,
    "omnigen2/models/transformers/__init__.py": "",
    "omnigen2/models/transformers/transformer_omnigen2.py": """
        from types import SimpleNamespace
        import torch
        from omnigen2.models.attention_processor import FlashProcessor

        class Attention(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.q, self.k, self.v = (torch.nn.Linear(8, 8) for _ in range(3))
                self.processor = FlashProcessor()
            def set_processor(self, p):
                self.processor = p
            def forward(self, x, mask=None):
                return self.processor(self, x, attention_mask=mask)

        class Layer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = Attention()

        def tokens(x, p=2):  # (C, H, W) -> (H/p * W/p, C * p * p), row-major
            c, h, w = x.shape
            return x.reshape(c, h // p, p, w // p, p).permute(1, 3, 0, 2, 4).reshape((h // p) * (w // p), -1)

        class OmniGen2Transformer2DModel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.config = SimpleNamespace(patch_size=2)
                self.layers = torch.nn.ModuleList([Layer(), Layer()])
                self.refiner = Layer()
            def forward(self, hidden_states, timestep, text_hidden_states, text_attention_mask,
                        ref_image_hidden_states=None):
                rows = []
                for i, image in enumerate(hidden_states):
                    refs = [self.refiner.attn(tokens(r)[None])[0] for r in (ref_image_hidden_states or [[]] * 9)[i] or []]
                    n_text = int(text_attention_mask[i].sum())
                    rows.append(torch.cat([text_hidden_states[i, :n_text], *refs, tokens(image)]))
                length = max(len(r) for r in rows)
                x = torch.stack([torch.cat([r, r.new_zeros(length - len(r), 8)]) for r in rows])
                mask = torch.stack([torch.arange(length) < len(r) for r in rows])[:, None, None, :]
                for layer in self.layers:
                    x = x + layer.attn(x, mask)
                return torch.stack([x[i, len(r) - 4:len(r)] for i, r in enumerate(rows)])
    """,
    "uno/__init__.py": "",
    "uno/flux/__init__.py": "",
    "uno/flux/math.py": """
        import torch

        def apply_rope(q, k, pe):
            return q * pe, k * pe

        def attention(q, k, v, pe):
            q, k = apply_rope(q, k, pe)
            x = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            return x.transpose(1, 2).flatten(2)
    """,
    "uno/flux/modules/__init__.py": "",
    "uno/flux/modules/layers.py": """
        import torch
        from uno.flux.math import attention

        class Block(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.qkv = torch.nn.Linear(8, 24)
            def forward(self, x, pe):
                q, k, v = self.qkv(x).view(x.shape[0], x.shape[1], 3, 2, 4).permute(2, 0, 3, 1, 4)
                return x + attention(q, k, v, pe=pe)
    """,
    "uno/flux/model.py": """
        import torch
        from uno.flux.modules.layers import Block

        class Flux(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.double_blocks = torch.nn.ModuleList([Block()])
                self.single_blocks = torch.nn.ModuleList([Block()])
            def forward(self, img, img_ids, txt, txt_ids, timesteps, y, guidance=None, ref_img=None, ref_img_ids=None):
                x = torch.cat([txt, img, *(ref_img or [])], dim=1)
                pe = 1.0 + 0.01 * torch.arange(x.shape[1])[None, None, :, None]
                for block in [*self.double_blocks, *self.single_blocks]:
                    x = block(x, pe)
                return x[:, txt.shape[1]:txt.shape[1] + img.shape[1]]
    """,
    "modeling/__init__.py": "",
    "modeling/bagel/__init__.py": "",
    "modeling/bagel/qwen2_navit.py": """
        import torch

        def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                                   causal=False, softmax_scale=None, **kw):
            out = torch.nn.functional.scaled_dot_product_attention(
                q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], scale=softmax_scale,
                enable_gqa=True)
            return out[0].transpose(0, 1)

        class SelfAttention(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.q, self.kv = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
            def forward(self, x, cache):
                q = self.q(x).view(-1, 2, 4)
                k, v = self.kv(torch.cat([cache, x])).view(-1, 2, 4).chunk(2, dim=1)  # 1 kv head: GQA
                cu_q, cu_k = torch.tensor([0, len(x)]), torch.tensor([0, len(cache) + len(x)])
                return flash_attn_varlen_func(q, k, v, cu_q, cu_k, causal=False).reshape(len(x), 8)

        class Layer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.self_attn = SelfAttention()

        class Qwen2Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = torch.nn.ModuleList([Layer(), Layer()])
            def forward(self, *args, **kwargs):
                x, cache = kwargs["packed_query_sequence"], kwargs["past_key_values"]["tokens"]
                for layer in self.layers:
                    x = x + layer.self_attn(x, cache)
                return x
    """,
    "modeling/bagel/bagel.py": """
        import torch
        from types import SimpleNamespace
        from modeling.bagel.qwen2_navit import Qwen2Model

        class Bagel(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.language_model = SimpleNamespace(model=Qwen2Model())
                self.lm = self.language_model.model
    """,
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """The stand-in tree on sys.path; its modules are forgotten afterwards (a checkout may follow)."""
    root = tmp_path_factory.mktemp("standins")
    for rel, text in STANDINS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    sys.path.insert(0, str(root))
    import adapters.upstream  # noqa: F401  (registers the layouts)

    yield root
    sys.path.remove(str(root))
    for name in [n for n in sys.modules if n.split(".")[0] in ("omnigen2", "uno", "modeling")]:
        del sys.modules[name]


def _omnigen2_run(model, config, steps=2):
    torch.manual_seed(0)
    text, images = torch.randn(2, 5, 8), [torch.randn(2, 4, 4)] * 2
    refs = [torch.randn(2, 4, 6), torch.randn(2, 2, 4)]
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    handle = dar.enable(model, config, num_steps=steps) if config else None
    outs = []
    try:
        for t in range(steps):  # branches per step: conditional, reference-only, unconditional (no refs)
            for ref_rows in ([refs, refs], [refs, refs], None):
                with torch.no_grad():
                    outs.append(model(hidden_states=images, timestep=torch.tensor([float(t)]), text_hidden_states=text,
                                      text_attention_mask=mask, ref_image_hidden_states=ref_rows))
    finally:
        if handle:
            handle.__exit__(None, None, None)
    return torch.stack(outs), handle


def test_omnigen2_layout(upstream):
    import omnigen2.models.attention_processor as ap
    from omnigen2.models.transformers.transformer_omnigen2 import OmniGen2Transformer2DModel

    model = OmniGen2Transformer2DModel()
    before = (ap.F, [layer.attn.processor for layer in model.layers])
    off, _ = _omnigen2_run(model, None)
    zero, handle = _omnigen2_run(model, DARConfig(gamma=0.0, record_maps=True))
    assert torch.equal(zero, off)
    # 2 joint layers x 2 steps x 2 branches with references; the refiner calls (2 refs x 2 rows x 2 branches
    # x 2 steps) pass as not_joint_layer, the unconditional branch as no_reference_keys
    assert handle.stats.to_dict() == {"rebalanced": 8, "passed": {"no_reference_keys": 4, "not_joint_layer": 16},
                                      "forwards": 6}
    maps = handle.maps.result()
    assert [m["grid"] for m in maps] == [[2, 3], [1, 2]] and all(m["r_hat"].shape == tuple(m["grid"]) for m in maps)
    assert maps[0]["layers"] == 2 and maps[0]["steps"] == 2 and (maps[0]["w"] == 1).all()
    on, handle = _omnigen2_run(model, DARConfig(gamma=0.5))
    assert not torch.allclose(on, off) and handle.stats.rebalanced == 8
    _, handle = _omnigen2_run(model, DARConfig(cfg_branches="cond", layers=(1,), steps=(0.5, 1.0)))
    assert handle.stats.rebalanced == 1
    assert handle.stats.passed == {"branch_excluded": 4, "layer_excluded": 2, "step_excluded": 1,
                                   "no_reference_keys": 4, "not_joint_layer": 16}
    assert (ap.F, [layer.attn.processor for layer in model.layers]) == before  # restored


def _uno_run(model, config, steps=2):
    torch.manual_seed(0)
    txt, img = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    refs = [torch.randn(1, 6, 8), torch.randn(1, 4, 8)]
    grid = [torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1).reshape(-1, 2)
            for h, w in ((2, 3), (2, 2))]
    ids = [torch.cat([torch.zeros(len(g), 1), g + 10], dim=1)[None] for g in grid]
    handle = dar.enable(model, config, num_steps=steps) if config else None
    try:
        with torch.no_grad():
            out = torch.stack([model(img=img, img_ids=None, txt=txt, txt_ids=None, timesteps=torch.tensor([1.0 - t]),
                                     y=None, ref_img=refs, ref_img_ids=ids) for t in range(steps)])
    finally:
        if handle:
            handle.__exit__(None, None, None)
    return out, handle


def test_uno_layout(upstream):
    import uno.flux.math
    import uno.flux.modules.layers as layers
    from uno.flux.model import Flux

    model, original = Flux(), uno.flux.math.apply_rope
    off, _ = _uno_run(model, None)
    zero, handle = _uno_run(model, DARConfig(gamma=0.0, record_maps=True))
    assert torch.equal(zero, off) and handle.stats.to_dict() == {"rebalanced": 4, "passed": {}, "forwards": 2}
    assert [m["grid"] for m in handle.maps.result()] == [[2, 3], [2, 2]]
    on, _ = _uno_run(model, DARConfig(gamma=0.5))
    assert not torch.allclose(on, off)
    _, handle = _uno_run(model, DARConfig(layers=(1,), steps=(0.5, 1.0)))
    assert handle.stats.rebalanced == 1 and handle.stats.passed == {"layer_excluded": 2, "step_excluded": 1}
    assert uno.flux.math.apply_rope is original and layers.attention is uno.flux.math.attention  # restored


def test_uno_rotates_once_per_attention_call(upstream, monkeypatch):
    """RoPE runs once per attention call with DAR on, as with DAR off, whether DAR analyses the call, reuses
    earlier weights or leaves it alone; gamma 0 and a scope that skips every call are bit-identical to off."""
    import uno.flux.math
    from uno.flux.model import Flux

    rotations, real = [], uno.flux.math.apply_rope

    def counting(q, k, pe):
        rotations.append(q.shape[2])
        return real(q, k, pe)

    monkeypatch.setattr(uno.flux.math, "apply_rope", counting)
    model = Flux()
    off, _ = _uno_run(model, None, steps=4)
    assert len(rotations) == 8  # 2 blocks x 4 steps
    for config in (DARConfig(gamma=0.0), DARConfig(layers=(999,)), DARConfig(gamma=0.5),
                   DARConfig(gamma=0.5, reuse_steps=2), DARConfig(gamma=0.5, steps=(0.5, 1.0))):
        rotations.clear()
        out, handle = _uno_run(model, config, steps=4)
        assert len(rotations) == 8, config
        if config.gamma == 0.0 or handle.stats.rebalanced == 0:
            assert torch.equal(out, off), config
        else:
            assert not torch.allclose(out, off), config
    assert uno.flux.math.apply_rope is counting  # restored


def _bagel_run(model, config, ref_tokens="both", steps=3):
    torch.manual_seed(0)
    cache = torch.randn(16, 8)  # [marker | ref 0 VAE (2x2) | marker | ref 0 ViT (1x2) | ... | prompt]
    spans = [("vae", 1, 5, 0), ("vit", 6, 8, 0), ("vae", 9, 12, 1), ("vit", 13, 14, 1)]
    gen, cfg_text, cfg_img = ({"past_key_values": {"tokens": cache[:n]}, "kv_lens": [n]} for n in (16, 15, 4))
    grids = {0: ((2, 2), (1, 2)), 1: ((1, 3), None)}
    handle = dar.enable(model, config, num_steps=steps, gen=gen, cfg_text=cfg_text, spans=spans,
                        ref_tokens=ref_tokens, grids=grids) if config else None
    outs, lm = [], model.language_model.model
    try:
        for _ in range(steps - 1):
            for context in (gen, cfg_text, cfg_img):
                n = context["kv_lens"][0]
                x = torch.randn(6, 8, generator=torch.Generator().manual_seed(n))
                with torch.no_grad():
                    outs.append(lm(packed_query_sequence=x, past_key_values=context["past_key_values"],
                                   update_past_key_values=False, query_lens=torch.tensor([6]),
                                   key_values_lens=torch.tensor([n]), packed_key_value_indexes=torch.arange(n),
                                   packed_vae_token_indexes=torch.arange(n + 1, n + 5) - n))
    finally:
        if handle:
            handle.__exit__(None, None, None)
    return torch.cat(outs), handle


def test_bagel_layout(upstream):
    import modeling.bagel.qwen2_navit as navit
    from modeling.bagel.bagel import Bagel

    model, original = Bagel(), navit.flash_attn_varlen_func
    off, _ = _bagel_run(model, None)
    zero, handle = _bagel_run(model, DARConfig(gamma=0.0, record_maps=True))
    assert torch.equal(zero, off)
    # 2 layers x 2 steps x the two caches holding references; the image-guidance cache has none
    assert handle.stats.to_dict() == {"rebalanced": 8, "passed": {"no_reference_keys": 4}, "forwards": 6}
    maps = handle.maps.result()
    assert [m["grid"] for m in maps] == [[2, 2], [1, 3]]  # the VAE grids
    by_kind = {kind: _bagel_run(model, DARConfig(gamma=0.5), kind)[0] for kind in ("both", "vae", "vit")}
    assert not torch.allclose(by_kind["both"], off)
    assert not torch.allclose(by_kind["vae"], by_kind["vit"])
    _, handle = _bagel_run(model, DARConfig(cfg_branches="cond", layers=(0,)))
    assert handle.stats.rebalanced == 2
    assert handle.stats.passed == {"branch_excluded": 4, "layer_excluded": 2, "no_reference_keys": 4}
    assert navit.flash_attn_varlen_func is original  # restored


def test_layout_registry_is_open():
    from dar.layouts import ModelLayout, find_layout, register_layout

    class Custom(torch.nn.Module):
        pass

    assert find_layout(Custom()) is None

    @register_layout(f"{Custom.__module__}.{Custom.__qualname__}")
    class CustomLayout(ModelLayout):
        pass

    assert find_layout(Custom()) is CustomLayout
    with pytest.raises(ValueError, match="already has"):
        register_layout(f"{Custom.__module__}.{Custom.__qualname__}")(type("Other", (ModelLayout,), {}))
    with pytest.raises(TypeError, match="takes no layout options"):
        dar.enable(Custom(), DARConfig(), num_steps=3)
