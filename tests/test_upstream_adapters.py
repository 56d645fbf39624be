"""The upstream-code adapters (OmniGen2, BAGEL, UNO): argument checks always; real runs against a checkout.

The run tests need an upstream checkout (``MICON_OMNIGEN2_CODE``, ``MICON_BAGEL_CODE``,
``MICON_UNO_CODE``) and skip without one. Each builds the upstream model from a tiny config with random
weights, saves it in the layout the adapter loads (no downloads, locally built tokenizers) and runs one
generate with DAR off, with gamma=0 (must equal off exactly) and with the default gamma (must differ).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

from adapters import load_adapter
from micon_tasks.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CODE = {name: os.environ.get(var) for name, var in
        (("omnigen2", "MICON_OMNIGEN2_CODE"), ("bagel", "MICON_BAGEL_CODE"), ("uno", "MICON_UNO_CODE"))}


def _needs(name: str, var: str, repo: str):
    return pytest.mark.skipif(not CODE[name], reason=f"set {var} to a checkout of https://github.com/{repo} "
                                                     f"to run the {name} adapter against its upstream code")


def _refs() -> list[Image.Image]:
    return [Image.new("RGB", (48, 32), (200, 30, 30)), Image.new("RGB", (32, 48), (30, 30, 200))]


def _pixels(image: Image.Image) -> bytes:
    return image.convert("RGB").tobytes()


def _dar_triple(adapter, prompt="the red one next to the blue one"):
    """Off, gamma=0 (recording maps) and default-gamma images, with the number of attention calls DAR touched."""
    off = adapter.generate(_refs(), prompt, seed=1)
    zero = adapter.generate(_refs(), prompt, seed=1, dar={"gamma": 0.0, "record_maps": True})
    zero_calls = adapter.last_dar_calls
    maps = zero.info["dar_maps"]  # one map per reference, on its token grid (the references differ in shape)
    assert isinstance(maps, list) and len(maps) == 2, maps
    assert all(m["r_hat"].shape == tuple(m["grid"]) and (m["w"] == 1).all() for m in maps)
    assert maps[0]["grid"] != maps[1]["grid"]
    on = adapter.generate(_refs(), prompt, seed=1, dar=True)
    return off, zero, on, zero_calls, adapter.last_dar_calls


def _randomise_zero_inits(model) -> None:
    """Upstream zero-initialises gates and output projections; random ones let attention reach the pixels."""
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and not p.any():
                p.normal_(std=0.5)


# -- always: registration, import weight, argument errors ------------------------------------------------
def test_registered_and_import_is_light():
    code = ("import sys, registry; names = registry.list_adapters(); "
            "assert {'omnigen2', 'bagel', 'uno'} <= set(names), names; "
            "assert 'torch' not in sys.modules, 'adapters.upstream imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("name,var,repo", [("omnigen2", "MICON_OMNIGEN2_CODE", "VectorSpaceLab/OmniGen2"),
                                           ("bagel", "MICON_BAGEL_CODE", "ByteDance-Seed/Bagel"),
                                           ("uno", "MICON_UNO_CODE", "bytedance/UNO")])
def test_missing_or_wrong_code_path(name, var, repo, monkeypatch, tmp_path):
    monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match=rf"adapter '{name}'.*'code_path'.*{var}.*{repo}"):
        load_adapter(name)
    with pytest.raises(ConfigError, match=rf"adapter '{name}'.*not a directory.*{repo}"):
        load_adapter(name, {"code_path": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match=rf"adapter '{name}'.*not a checkout of https://github.com/{repo}"):
        load_adapter(name, {"code_path": str(tmp_path)})
    monkeypatch.setenv(var, str(tmp_path))  # the variable is read when the argument is absent
    with pytest.raises(ConfigError, match="not a checkout"):
        load_adapter(name)


def test_bad_options_are_named(tmp_path):
    fake = tmp_path / "bagel"
    (fake / "modeling" / "bagel").mkdir(parents=True)
    (fake / "modeling" / "bagel" / "bagel.py").write_text("")
    with pytest.raises(ConfigError, match="dar_ref_tokens"):
        load_adapter("bagel", {"code_path": str(fake), "dar_ref_tokens": "text"})
    with pytest.raises(ConfigError, match="dtype"):
        load_adapter("bagel", {"code_path": str(fake), "dtype": "float16"})


# 2 joint layers x 2 steps: 2 branches with references excluded by layer, the unconditional one has none;
# the refiner layers (3 per branch and step here) are never hooked
OMNIGEN2_UNREACHED = {"layer_excluded": 8, "no_reference_keys": 4, "not_joint_layer": 18}
# 2 layers x 2 denoising steps: the two branches holding references excluded by layer, the image-guidance one has none
BAGEL_UNREACHED = {"layer_excluded": 8, "no_reference_keys": 4}


def _refuses_unreached_dar(adapter, expected: dict[str, int]) -> None:
    """A layers option that excludes every hooked layer: the generation is refused, the counts say why."""
    from adapters import GenerationError

    with pytest.raises(GenerationError, match="reached no attention call") as err:
        adapter.generate(_refs(), "x", seed=1, dar={"layers": [999]})
    assert err.value.reason == "model_error"
    assert adapter.last_dar_stats.rebalanced == 0 and adapter.last_dar_stats.passed == expected


# -- OmniGen2 ----------------------------------------------------------------------------------------------
def _tiny_omnigen2(folder: Path) -> None:
    import torch
    from diffusers import AutoencoderKL
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    from adapters.upstream._common import upstream_imports
    from adapters.upstream.omnigen2 import SPEC, _disable_triton_kernels
    from micon_tasks.testing.tiny_tokenizers import qwen2_tokenizer

    torch.manual_seed(0)
    tok = qwen2_tokenizer()
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok,
                        video_processor=Qwen2VLVideoProcessor()).save_pretrained(folder / "processor")
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in (("image_token_id", "<|image_pad|>"),
                                                        ("video_token_id", "<|video_pad|>"),
                                                        ("vision_start_token_id", "<|vision_start|>"))}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(tok), bos_token_id=None, eos_token_id=None,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]}),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=16,
                           fullatt_block_indexes=[0]), **ids)
    Qwen2_5_VLForConditionalGeneration(cfg).save_pretrained(folder / "mllm")
    AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  block_out_channels=(8, 8), latent_channels=4, norm_num_groups=4, layers_per_block=1,
                  scaling_factor=1.0, shift_factor=0.0).save_pretrained(folder / "vae")
    with upstream_imports(SPEC, Path(CODE["omnigen2"]).resolve()):
        _disable_triton_kernels()
        from omnigen2.models.transformers.transformer_omnigen2 import OmniGen2Transformer2DModel
        from omnigen2.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler

        model = OmniGen2Transformer2DModel(patch_size=2, in_channels=4, hidden_size=32, num_layers=2,
                                           num_refiner_layers=1, num_attention_heads=2, num_kv_heads=1,
                                           multiple_of=16, axes_dim_rope=(8, 4, 4), axes_lens=(1024, 1024, 1024),
                                           text_feat_dim=16)
        _randomise_zero_inits(model)
        model.save_pretrained(folder / "transformer")
        FlowMatchEulerDiscreteScheduler().save_pretrained(folder / "scheduler")


@_needs("omnigen2", "MICON_OMNIGEN2_CODE", "VectorSpaceLab/OmniGen2")
def test_omnigen2_runs_with_dar_off_zero_and_on(tmp_path):
    _tiny_omnigen2(tmp_path)
    args = {"code_path": CODE["omnigen2"], "pretrained": str(tmp_path), "dtype": "float32", "device": "cpu",
            "steps": 2, "negative_prompt": "blurry"}
    adapter = load_adapter("omnigen2", {**args, "width": 32, "height": 32})
    off, zero, on, zero_calls, on_calls = _dar_triple(adapter)
    assert off.size == (32, 32)
    assert _pixels(zero) == _pixels(off)
    # 2 joint layers x 2 steps x 2 branches with references (the unconditional one has none)
    assert zero_calls == on_calls == 8
    assert _pixels(on) != _pixels(off)
    cond_only = adapter.generate(_refs(), "x", seed=1, dar={"cfg_branches": "cond", "layers": [1]})
    assert cond_only.size == (32, 32) and adapter.last_dar_calls == 2
    assert adapter.model_info()["dar"]["last_generation"]["rebalanced"] == 2
    _refuses_unreached_dar(adapter, OMNIGEN2_UNREACHED)
    assert adapter.generate(_refs(), "x", seed=1, size=(48, 16)).size == (32, 32)  # explicit width/height win
    unsized = load_adapter("omnigen2", args)
    assert unsized.generate(_refs(), "x", seed=1, size=(48, 32)).size == (48, 32)  # a task's size reaches the call
    import omnigen2.models.attention_processor as ap
    import torch.nn.functional as F

    assert ap.F is F  # restored


# -- UNO -----------------------------------------------------------------------------------------------------
def _tiny_uno(folder: Path) -> dict:
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from adapters.upstream._common import upstream_imports
    from adapters.upstream.uno import SPEC
    from micon_tasks.testing.tiny_tokenizers import clip_tokenizer, t5_tokenizer

    torch.manual_seed(0)
    # Upstream's single-block LoRA hard-codes hidden + mlp width = 15360 (3072 x 5): mlp_ratio 479 keeps
    # that with a 32-wide model.
    flux_params = dict(in_channels=64, vec_in_dim=16, context_in_dim=16, hidden_size=32, mlp_ratio=479.0,
                       num_heads=2, depth=1, depth_single_blocks=1, axes_dim=[4, 6, 6])
    ae_params = dict(ch=32, ch_mult=[1, 1, 1, 1], num_res_blocks=1, z_channels=16)
    t5_tok, clip_tok = t5_tokenizer(), clip_tokenizer()
    t5_tok.save_pretrained(folder / "t5")
    T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)) \
        .save_pretrained(folder / "t5")
    clip_tok.save_pretrained(folder / "clip")
    CLIPTextModel(CLIPTextConfig(vocab_size=len(clip_tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=77, eos_token_id=1,
                                 bos_token_id=0, pad_token_id=1)).save_pretrained(folder / "clip")
    with upstream_imports(SPEC, Path(CODE["uno"]).resolve()):
        import dataclasses

        from uno.flux.model import Flux
        from uno.flux.modules.autoencoder import AutoEncoder
        from uno.flux.util import configs, set_lora

        spec = configs["flux-dev"]
        model = set_lora(Flux(dataclasses.replace(spec.params, **flux_params)), 4, device="cpu")
        _randomise_zero_inits(model)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        lora = {k: v for k, v in state.items() if "lora" in k or "proj_lora" in k or ".down." in k or ".up." in k}
        (folder / "flux").mkdir()
        (folder / "lora").mkdir()
        save_file({k: v for k, v in state.items() if k not in lora}, str(folder / "flux" / "flux1-dev.safetensors"))
        save_file(lora, str(folder / "lora" / "dit_lora.safetensors"))
        ae = AutoEncoder(dataclasses.replace(spec.ae_params, **ae_params))
        save_file({k: v.contiguous() for k, v in ae.state_dict().items()}, str(folder / "flux" / "ae.safetensors"))
    return {"flux_params": flux_params, "ae_params": ae_params}


@_needs("uno", "MICON_UNO_CODE", "bytedance/UNO")
def test_uno_runs_with_dar_off_zero_and_on(tmp_path):
    params = _tiny_uno(tmp_path)
    args = {"code_path": CODE["uno"], "pretrained": str(tmp_path / "lora"), "flux": str(tmp_path / "flux"),
            "t5": str(tmp_path / "t5"), "clip": str(tmp_path / "clip"), "lora_rank": 4, "device": "cpu", "steps": 2,
            "ref_size": 32, **params}
    adapter = load_adapter("uno", {**args, "width": 32, "height": 32})
    off, zero, on, zero_calls, on_calls = _dar_triple(adapter)
    assert off.size == (32, 32)
    assert _pixels(zero) == _pixels(off)
    assert zero_calls == on_calls == 4  # (1 double + 1 single block) x 2 steps
    assert _pixels(on) != _pixels(off)
    adapter.generate(_refs(), "x", seed=1, dar={"layers": [1], "steps": (0.5, 1.0)})
    assert adapter.last_dar_calls == 1
    assert adapter.last_dar_stats.passed == {"layer_excluded": 2, "step_excluded": 1}
    unsized = load_adapter("uno", args)
    assert unsized.generate(_refs(), "x", seed=1, size=(48, 32)).size == (48, 32)  # a task's size reaches the call
    _refuses_unreached_dar(adapter, {"layer_excluded": 4})
    import uno.flux.math

    assert uno.flux.math.apply_rope.__module__ == "uno.flux.math"  # restored


# -- BAGEL ---------------------------------------------------------------------------------------------------
def _shim_bagel_imports(monkeypatch) -> None:
    """BAGEL imports flash_attn (CUDA only) and cv2 (training augmentations only) at module level.

    Test-only stand-ins: flash_attn_varlen_func as a per-sequence torch SDPA loop, and an empty cv2.
    """
    import importlib.util

    import torch

    def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                               dropout_p=0.0, softmax_scale=None, causal=False, **_):
        out = []
        for i in range(len(cu_seqlens_q) - 1):
            qs, ks, vs = (t[c[i]:c[i + 1]].transpose(0, 1)[None] for t, c in
                          ((q, cu_seqlens_q), (k, cu_seqlens_k), (v, cu_seqlens_k)))
            mask = None
            if causal:  # flash-attn aligns the causal mask to the bottom right
                mask = torch.ones(qs.shape[2], ks.shape[2], dtype=torch.bool).tril(ks.shape[2] - qs.shape[2])
            out.append(torch.nn.functional.scaled_dot_product_attention(
                qs, ks, vs, attn_mask=mask, scale=softmax_scale, enable_gqa=True)[0].transpose(0, 1))
        return torch.cat(out)

    def missing(name: str) -> bool:
        if name in sys.modules:
            return False
        try:
            return importlib.util.find_spec(name) is None
        except ValueError:
            return False

    if missing("flash_attn"):
        shim = _shim("flash_attn")
        shim.__dict__.setdefault("flash_attn_varlen_func", flash_attn_varlen_func)
        monkeypatch.setitem(sys.modules, "flash_attn", shim)
    if missing("cv2"):
        monkeypatch.setitem(sys.modules, "cv2", _shim("cv2"))


_SHIMS: dict[str, types.ModuleType] = {}  # one shim module per name for the whole session


def _shim(name: str) -> types.ModuleType:
    import importlib.machinery

    if name not in _SHIMS:
        _SHIMS[name] = types.ModuleType(name)
        _SHIMS[name].__spec__ = importlib.machinery.ModuleSpec(name, None)
    return _SHIMS[name]


def _tiny_bagel(folder: Path) -> dict:
    import torch
    from safetensors.torch import save_file

    from adapters.upstream._common import upstream_imports
    from adapters.upstream.bagel import SPEC, bagel_config
    from micon_tasks.testing.tiny_tokenizers import _byte_symbols

    torch.manual_seed(0)
    # BAGEL's own Qwen2Tokenizer reads vocab.json + merges.txt: byte symbols, no merges.
    vocab = {"<|endoftext|>": 0, **{ch: i + 1 for i, ch in enumerate(_byte_symbols())}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    vae_params = dict(resolution=256, in_channels=3, downsample=8, ch=32, out_ch=3, ch_mult=[1, 1, 1, 1],
                      num_res_blocks=1, z_channels=4, scale_factor=0.3611, shift_factor=0.1159)
    llm = dict(vocab_size=len(vocab) + 4, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, rope_theta=10000.0)
    (folder / "llm_config.json").write_text(json.dumps(llm))
    vit = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14,
               image_size=980)
    (folder / "vit_config.json").write_text(json.dumps(vit))
    with upstream_imports(SPEC, Path(CODE["bagel"]).resolve()):
        import modeling.bagel as mb
        from modeling.autoencoder import AutoEncoder, AutoEncoderParams

        llm_config, vit_config = mb.Qwen2Config(**llm), mb.SiglipVisionConfig(**vit)
        ae_params = AutoEncoderParams(**vae_params)
        config = bagel_config(mb.BagelConfig, llm_config, vit_config, ae_params)  # the adapter's own recipe
        model = mb.Bagel(mb.Qwen2ForCausalLM(llm_config), mb.SiglipVisionModel(vit_config), config)
        model.vit_model.vision_model.embeddings.convert_conv2d_to_linear(vit_config, meta=False)
        _randomise_zero_inits(model)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "ema.safetensors"))
        save_file({k: v.contiguous() for k, v in AutoEncoder(ae_params).state_dict().items()},
                  str(folder / "ae.safetensors"))
    return vae_params


@_needs("bagel", "MICON_BAGEL_CODE", "ByteDance-Seed/Bagel")
def test_bagel_runs_with_dar_off_zero_and_on(tmp_path, monkeypatch):
    _shim_bagel_imports(monkeypatch)
    vae_params = _tiny_bagel(tmp_path)
    adapter = load_adapter("bagel", {"code_path": CODE["bagel"], "pretrained": str(tmp_path), "device": "cpu",
                                     "steps": 3, "vae_max_size": 64, "vae_min_size": 32, "vit_max_size": 56,
                                     "vit_min_size": 28, "vae_params": vae_params})
    off, zero, on, zero_calls, on_calls = _dar_triple(adapter)
    assert off.size == (32, 48)  # upstream: the output takes the last reference's size
    assert _pixels(zero) == _pixels(off)
    assert zero_calls == on_calls == 8  # 2 layers x 2 steps x 2 branches holding references
    assert _pixels(on) != _pixels(off)
    by_kind = {"both": _pixels(on)}
    for kind in ("vae", "vit"):  # which cached tokens count as reference keys changes the result
        adapter.dar_ref_tokens = kind
        by_kind[kind] = _pixels(adapter.generate(_refs(), "the red one next to the blue one", seed=1, dar=True))
    assert len(set(by_kind.values())) == 3
    adapter.generate(_refs(), "x", seed=1, dar={"cfg_branches": "cond", "layers": [0]})
    assert adapter.last_dar_calls == 2
    assert adapter.generate(_refs(), "x", seed=1, size=(64, 32)).size == (64, 32)  # a task's size, not the ref's
    _refuses_unreached_dar(adapter, BAGEL_UNREACHED)
    import modeling.bagel.qwen2_navit as navit

    assert navit.flash_attn_varlen_func is sys.modules["flash_attn"].flash_attn_varlen_func  # restored
