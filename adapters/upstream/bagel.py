"""BAGEL (ByteDance-Seed/Bagel) through its own ``InterleaveInferencer``, imported from a checkout.

Why a driver here: upstream ``interleave_inference`` builds three KV caches (the full context, the
context without the instruction for text guidance, the instruction alone for image guidance) from an
interleaved list. The adapter runs the same steps with the inferencer's own methods for
``[ref 1, ..., ref n, instruction]``, recording where each reference's VAE and ViT tokens land in the
cache, then calls the inferencer's ``gen_image``. Model loading follows the upstream ``app.py``.

DAR: :class:`BagelLayout` tells :mod:`dar.routing` where the references sit in the KV cache (VAE and ViT
tokens; ``dar_ref_tokens`` says which count, "both" by default; the image markers never do). The full
context and the text-guidance cache hold the references; the image-guidance cache holds none.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from adapters.upstream._common import UpstreamAdapter, UpstreamSpec, merge_settings, resolve_weights, upstream_imports
from dar.layouts import ModelLayout, Placement, Route, register_layout
from dar.maps import attach_maps
from micon_tasks.errors import ConfigError
from registry import register_adapter

__all__ = ["BagelAdapter", "BagelLayout", "SPEC", "bagel_config"]

SPEC = UpstreamSpec(adapter="bagel", env_var="MICON_BAGEL_CODE", repo="ByteDance-Seed/Bagel",
                    probe="modeling/bagel/bagel.py", top_level=("modeling", "data", "inferencer"))
REF_TOKEN_KINDS = ("vae", "vit", "both")


@register_adapter("bagel")
class BagelAdapter(UpstreamAdapter):
    """BAGEL-7B-MoT; output size follows the last reference (as upstream) unless width/height are given.

    Also takes the common ``dtype`` (bfloat16 only), ``device``, ``height``, ``width``."""

    spec = SPEC
    max_refs = None
    bfloat16_only = "the upstream MoT attention casts to bfloat16"

    def __init__(
        self,
        code_path: str | None = None,
        pretrained: str = "ByteDance-Seed/BAGEL-7B-MoT",
        steps: int = 50,
        cfg_text_scale: float = 4.0,
        cfg_img_scale: float = 2.0,
        cfg_interval_start: float = 0.0,
        cfg_interval_end: float = 1.0,
        timestep_shift: float = 3.0,
        cfg_renorm_min: float = 0.0,
        cfg_renorm_type: str = "text_channel",
        vae_max_size: int = 1024,
        vae_min_size: int = 512,
        vit_max_size: int = 980,
        vit_min_size: int = 224,
        dar_ref_tokens: str = "both",
        seed: int = 0,
        vae_params: dict | None = None,
        **common: Any,
    ):
        super().__init__(code_path, pretrained=pretrained, steps=steps, seed=seed, **common)
        if dar_ref_tokens not in REF_TOKEN_KINDS:
            raise ConfigError(f"adapter 'bagel': dar_ref_tokens must be one of {REF_TOKEN_KINDS}, "
                              f"not {dar_ref_tokens!r}")
        if cfg_renorm_type not in ("global", "channel", "text_channel"):
            raise ConfigError(f"adapter 'bagel': cfg_renorm_type must be global, channel or text_channel, "
                              f"not {cfg_renorm_type!r}")
        self.cfg = {"cfg_text_scale": float(cfg_text_scale), "cfg_img_scale": float(cfg_img_scale),
                    "cfg_interval": [float(cfg_interval_start), float(cfg_interval_end)],
                    "timestep_shift": float(timestep_shift), "cfg_renorm_min": float(cfg_renorm_min),
                    "cfg_renorm_type": cfg_renorm_type}
        self.sizes = (int(vae_max_size), int(vae_min_size), int(vit_max_size), int(vit_min_size))
        self.dar_ref_tokens = dar_ref_tokens
        self.vae_params = dict(vae_params or {})

    def output_size(self, width: int | None, height: int | None) -> tuple[int | None, int | None]:
        """As given, None where not: BAGEL then takes the last reference's size (as upstream)."""
        return self.given_size(width, height)

    # -- loading (the upstream app.py recipe) -------------------------------------------------------
    def _load(self) -> Any:
        import torch
        from accelerate import init_empty_weights
        from safetensors.torch import load_file

        root = resolve_weights(self.pretrained, adapter=SPEC.adapter)
        with upstream_imports(SPEC, self.code_path):
            from data.data_utils import add_special_tokens
            from data.transforms import ImageTransform
            from inferencer import InterleaveInferencer
            from modeling.autoencoder import AutoEncoder, load_ae
            from modeling.bagel import (
                Bagel,
                BagelConfig,
                Qwen2Config,
                Qwen2ForCausalLM,
                SiglipVisionConfig,
                SiglipVisionModel,
            )
            from modeling.qwen2 import Qwen2Tokenizer

            llm_config = Qwen2Config.from_json_file(str(root / "llm_config.json"))
            vit_config = SiglipVisionConfig.from_json_file(str(root / "vit_config.json"))
            vae_model, vae_config = load_ae(local_path=str(root / "ae.safetensors")) if not self.vae_params else \
                _custom_ae(AutoEncoder, self.vae_params, root)
            config = bagel_config(BagelConfig, llm_config, vit_config, vae_config)
            with init_empty_weights():
                model = Bagel(Qwen2ForCausalLM(llm_config), SiglipVisionModel(vit_config), config)
                model.vit_model.vision_model.embeddings.convert_conv2d_to_linear(vit_config, meta=True)
            state = load_file(str(root / "ema.safetensors"))
            missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
            if missing or unexpected:
                raise ConfigError(f"adapter 'bagel': ema.safetensors does not match the model: missing "
                                  f"{missing[:3]}, unexpected {unexpected[:3]}")
            model = model.to(self.device, torch.bfloat16).eval()
            tokenizer, new_token_ids, _ = add_special_tokens(Qwen2Tokenizer.from_pretrained(str(root)))
            vae_max, vae_min, vit_max, vit_min = self.sizes
            return InterleaveInferencer(
                model=model, vae_model=vae_model.to(self.device).eval(), tokenizer=tokenizer,
                vae_transform=ImageTransform(vae_max, vae_min, 16), vit_transform=ImageTransform(vit_max, vit_min, 14),
                new_token_ids=new_token_ids)

    # -- generation ----------------------------------------------------------------------------------
    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        import torch

        inf = self.model
        settings = merge_settings(SPEC.adapter, {**self.cfg, "num_timesteps": self.steps}, gen_kwargs)
        self.seeded(seed)  # BAGEL draws its noise from torch's RNG
        autocast = torch.autocast(device_type="cpu", dtype=torch.bfloat16) if self.device == "cpu" else \
            contextlib.nullcontext()  # upstream opens a CUDA autocast itself; on CPU it is disabled
        with torch.no_grad(), autocast:
            gen, cfg_text, cfg_img, spans, shape, grids = self._contexts(inf, refs, prompt)
            if self.width or self.height:
                stride = inf.model.latent_downsample
                shape = (int(self.height or shape[0]) // stride * stride, int(self.width or shape[1]) // stride * stride)
            hook = self.dar_hook(inf.model, dar, num_steps=settings["num_timesteps"], gen=gen, cfg_text=cfg_text,
                                 spans=spans, ref_tokens=self.dar_ref_tokens, grids=grids)
            with hook, torch.autocast(device_type="cuda", enabled=self.device != "cpu", dtype=torch.bfloat16):
                return attach_maps(inf.gen_image(shape, gen, cfg_text_precontext=cfg_text, cfg_img_precontext=cfg_img,
                                                 **settings), hook)

    def _contexts(self, inf: Any, refs: list, prompt: str) -> tuple:
        """Upstream interleave_inference's caches for [refs..., prompt], plus each reference's cache spans."""
        with upstream_imports(SPEC, self.code_path):
            from data.data_utils import pil_img2rgb
        gen = inf.init_gen_context()
        cfg_img = copy.deepcopy(gen)  # the image-guidance cache: the instruction alone
        spans: list[tuple[str, int, int, int]] = []  # (kind, start, end, ref index), markers excluded
        grids: dict[int, tuple] = {}  # ref index -> (VAE token grid, ViT token grid), None where unknown
        shape = None
        for j, image in enumerate(refs):
            image = inf.vae_transform.resize_transform(pil_img2rgb(image))
            found = []
            for kind, transform, side in (("vae", inf.vae_transform, inf.model.latent_downsample),
                                          ("vit", inf.vit_transform, inf.model.vit_patch_size)):
                before = gen["kv_lens"][0]
                gen = inf.update_context_image(image, gen, vae=kind == "vae", vit=kind == "vit")
                spans.append((kind, before + 1, gen["kv_lens"][0] - 1, j))  # drop start/end-of-image
                height, width = transform(image).shape[-2:]  # the grid the model patchified
                grid = (height // side, width // side)
                found.append(grid if grid[0] * grid[1] == spans[-1][2] - spans[-1][1] else None)
            grids[j] = tuple(found)
            shape = image.size[::-1]
        cfg_text = copy.deepcopy(gen)  # the text-guidance cache: every reference, no instruction
        gen = inf.update_context_text(prompt, gen)
        cfg_img = inf.update_context_text(prompt, cfg_img)
        return gen, cfg_text, cfg_img, spans, shape, grids

    def model_info(self) -> dict[str, Any]:
        return {**super().model_info(), **self.cfg, "dar_ref_tokens": self.dar_ref_tokens}


def bagel_config(config_cls: Any, llm_config: Any, vit_config: Any, vae_config: Any) -> Any:
    """The upstream app.py's ``BagelConfig``, with its edits to the language and vision configs (in place).

    One home for the recipe: the adapter builds the model with it, the tests build a tiny one the same way.
    """
    llm_config.qk_norm, llm_config.tie_word_embeddings = True, False
    llm_config.layer_module = "Qwen2MoTDecoderLayer"
    vit_config.rope = False
    vit_config.num_hidden_layers -= 1
    return config_cls(visual_gen=True, visual_und=True, llm_config=llm_config, vit_config=vit_config,
                      vae_config=vae_config, vit_max_num_patch_per_side=70, connector_act="gelu_pytorch_tanh",
                      latent_patch_size=2, max_latent_size=64)


def _custom_ae(cls: Any, params: dict, root: Any) -> tuple:
    """An autoencoder with other parameters than upstream load_ae's FLUX ones (small test builds)."""
    from safetensors.torch import load_file

    ae_params = __import__(cls.__module__, fromlist=["AutoEncoderParams"]).AutoEncoderParams(**params)
    ae = cls(ae_params)
    missing, unexpected = ae.load_state_dict(load_file(str(root / "ae.safetensors")), strict=False)
    if missing or unexpected:
        raise ConfigError(f"adapter 'bagel': ae.safetensors does not match vae_params: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    return ae, ae_params


@register_layout("modeling.bagel.bagel.Bagel")
class BagelLayout(ModelLayout):
    """Generation forwards of the MoT language model attend over ``[cache | start, latents, end]`` with
    ``flash_attn_varlen_func`` (packed, one sequence). ``spans`` says where each reference's VAE and ViT
    tokens sit in the cache; ``ref_tokens`` which of them count. The full-context cache ``gen`` is the
    conditional branch, ``cfg_text`` the text-guidance one; the image-guidance cache holds no reference.
    Heads are grouped (GQA). ``grids``: reference -> ((VAE rows, cols), (ViT rows, cols)) for the maps."""

    strict = True

    def __init__(self, model: Any, config: Any, *, num_steps: int, gen: dict, cfg_text: dict,
                 spans: list[tuple[str, int, int, int]], ref_tokens: str, grids: dict | None = None,
                 scheduler: Any = None):
        import torch

        super().__init__(model, config, scheduler=scheduler)
        self.num_steps, self.cond_calls = num_steps, 0
        self.branches = {id(gen["past_key_values"]): True, id(cfg_text["past_key_values"]): False}
        self.cache_ids = torch.full((gen["kv_lens"][0],), -1, dtype=torch.long)
        self.map_cache_ids = self.cache_ids.clone()  # the maps read one grid per reference: VAE unless "vit"
        for kind, start, end, j in spans:
            if ref_tokens in (kind, "both"):
                self.cache_ids[start:end] = j
            if kind == ("vit" if ref_tokens == "vit" else "vae"):
                self.map_cache_ids[start:end] = j
        pick = 1 if ref_tokens == "vit" else 0
        self.grids = {j: g[pick] for j, g in (grids or {}).items() if g[pick] is not None}

    def hooked_module(self) -> Any:
        return self.model.language_model.model

    def attention_modules(self) -> list:
        return [layer.self_attn for layer in self.hooked_module().layers]

    def get_routes(self) -> tuple:
        from dar.routing import key_weights

        def router(original):
            def flash(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None, causal=False, **kw):
                w = key_weights(q.transpose(0, 1)[None], k.transpose(0, 1)[None], scale=kw.get("softmax_scale"),
                                call_reason="causal" if causal else None)
                if w is not None:
                    if len(cu_seqlens_q) != 2:
                        raise RuntimeError(f"bagel DAR: expected one packed sequence, got {len(cu_seqlens_q) - 1}; "
                                           "the upstream code changed")
                    k = k * w[0].to(k.dtype)[:, None, None]
                return original(q=q, k=k, v=v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
                                max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k, causal=causal, **kw)

            return flash

        return (Route("modeling.bagel.qwen2_navit", "flash_attn_varlen_func", router),)

    def locate(self, call: dict) -> Placement:
        import torch

        cache, none = call.get("past_key_values"), torch.zeros(1, 0, dtype=torch.bool)
        if call.get("update_past_key_values", True):
            return Placement(none, none, reason="cache_update", map_row=None)
        if id(cache) not in self.branches:  # the image-guidance branch
            return Placement(none, none, reason="no_reference_keys", map_row=None)
        conditional = self.branches[id(cache)]
        self.cond_calls += conditional  # the conditional branch runs first at every step
        step = self.cond_calls - 1
        kv_index = call["packed_key_value_indexes"].cpu()
        q_len, kv_len = int(call["query_lens"].sum()), int(call["key_values_lens"].sum())
        ids = torch.full((1, q_len + kv_len), -1, dtype=torch.long)
        ids[0, kv_index] = self.cache_ids[:kv_len]
        map_ids = torch.full_like(ids, -1)
        map_ids[0, kv_index] = self.map_cache_ids[:kv_len]
        query_mask = torch.zeros(1, q_len, dtype=torch.bool)
        query_mask[0, call["packed_vae_token_indexes"].cpu()] = True
        return Placement(ids >= 0, query_mask, ids, step=step / max(self.num_steps - 1, 1), step_index=step,
                         branch=0 if conditional else 1, conditional=conditional, grids=self.grids, map_ids=map_ids,
                         map_row=0 if conditional else None)
