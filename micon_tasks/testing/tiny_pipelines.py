"""Tiny random-weight diffusers pipelines for multi-image generation, built offline in well under a second.

Why: tests, the offline demo and the adapters need the *real* pipeline classes (their preprocessing,
sequence layout and attention code) without downloading weights. Each builder seeds torch, builds every
component from a small config with the offline tokenizers of :mod:`.tiny_tokenizers`, and optionally
``save_pretrained``-s the pipeline (tokenizers and processors included) to ``path`` so that
``<Pipeline>.from_pretrained(path)`` loads it back.

Traps handled here (see ``TINY_CALL_KWARGS`` for the call arguments each pipeline needs at tiny sizes):

* OmniGen: its reference-image VAE sampling ignores ``generator``; call ``torch.manual_seed`` before
  each generation for reproducible output. Its processor imports ``torchvision.transforms`` (works with
  the installed torch/torchvision pair; no shim).
* QwenImageEditPlus resizes every reference to module-level areas (384^2 for the VLM, 1024^2 for the
  VAE), which makes tiny runs take ~45 s. :func:`qwen_edit_plus_sizes` patches those two module
  constants *only inside a ``with`` block* and restores them on exit; nothing is patched globally.
* FluxKontext upsizes to ``max_area`` (default 1024^2) and auto-resizes the reference: pass
  ``max_area=height*width, _auto_resize=False`` at tiny sizes.
* Flux2Klein and FluxKontext use the 4-level VAE (``vae_scale_factor`` 8); a 1-level VAE scales badly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from .tiny_tokenizers import clip_tokenizer, llama_tokenizer, qwen2_tokenizer, t5_tokenizer

__all__ = [
    "TINY_CALL_KWARGS",
    "qwen_edit_plus_sizes",
    "tiny_omnigen",
    "tiny_qwen_image_edit_plus",
    "tiny_flux2_klein",
    "tiny_flux_kontext",
]

#: Call arguments that keep each tiny pipeline fast and valid (32 px output, 2 steps). Refs of 32-64 px
#: work for all four (Flux2Klein needs refs of at least 64 px on both sides).
TINY_CALL_KWARGS: dict[str, dict[str, Any]] = {
    "omnigen": dict(height=32, width=32, num_inference_steps=2, guidance_scale=2.0, img_guidance_scale=1.6,
                    max_input_image_size=32),
    "qwen_image_edit_plus": dict(height=32, width=32, num_inference_steps=2, true_cfg_scale=2.0,
                                 negative_prompt=" ", max_sequence_length=64),
    "flux2_klein": dict(height=32, width=32, num_inference_steps=2, guidance_scale=4.0, max_sequence_length=64,
                        text_encoder_out_layers=(1,)),
    "flux_kontext": dict(height=32, width=32, num_inference_steps=2, guidance_scale=2.5, max_area=32 * 32,
                         _auto_resize=False, max_sequence_length=48),
}


def _finish(pipe, path: str | os.PathLike | None):
    """Put every module in eval mode and save the pipeline when a folder is given."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    if path is not None:
        pipe.save_pretrained(os.fspath(path), safe_serialization=True)
    return pipe


def _vae4(cls, **extra):
    """The 4-level tiny VAE (vae_scale_factor 8) shared by OmniGen and the Flux pipelines."""
    return cls(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4, 4, 4, 4), layers_per_block=1,
               norm_num_groups=1, down_block_types=("DownEncoderBlock2D",) * 4,
               up_block_types=("UpDecoderBlock2D",) * 4, **extra)


def tiny_omnigen(path: str | os.PathLike | None = None, seed: int = 0):
    """OmniGen v1 (one transformer layer, 4 heads of 4 dims). Refs go in as ``input_images`` with
    ``<img><|image_k|></img>`` placeholders in the prompt."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, OmniGenPipeline, OmniGenTransformer2DModel

    torch.manual_seed(seed)
    transformer = OmniGenTransformer2DModel(
        hidden_size=16, num_attention_heads=4, num_key_value_heads=4, intermediate_size=32, num_layers=2,
        in_channels=4, time_step_dim=4, rope_scaling={"long_factor": [1, 2], "short_factor": [1, 2]})
    vae = _vae4(AutoencoderKL, latent_channels=4)
    scheduler = FlowMatchEulerDiscreteScheduler(invert_sigmas=True, num_train_timesteps=1)
    pipe = OmniGenPipeline(transformer=transformer, vae=vae, scheduler=scheduler, tokenizer=llama_tokenizer())
    return _finish(pipe, path)


@contextlib.contextmanager
def qwen_edit_plus_sizes(condition_area: int = 56 * 56, vae_area: int = 64 * 64) -> Iterator[None]:
    """Temporarily shrink QwenImageEditPlus's reference resize areas (module constants), then restore.

    Only for tiny models: the real model expects the defaults (384^2 and 1024^2).
    """
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as module

    saved = module.CONDITION_IMAGE_SIZE, module.VAE_IMAGE_SIZE
    module.CONDITION_IMAGE_SIZE, module.VAE_IMAGE_SIZE = condition_area, vae_area
    try:
        yield
    finally:
        module.CONDITION_IMAGE_SIZE, module.VAE_IMAGE_SIZE = saved


def tiny_qwen_image_edit_plus(path: str | os.PathLike | None = None, seed: int = 0):
    """QwenImageEditPlus with a tiny Qwen2.5-VL text encoder; call it inside :func:`qwen_edit_plus_sizes`."""
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.qwen2_vl import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    tok = qwen2_tokenizer()
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in [
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>")]}
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16, num_attention_heads=3,
        joint_attention_dim=16, guidance_embeds=False, axes_dims_rope=(8, 4, 4))
    vae = AutoencoderKLQwenImage(base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "vocab_size": len(tok),
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                     "rope_theta": 1e6, "bos_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vocab_size=len(tok), bos_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **ids)
    text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    # A real video processor (torchvision is installed) keeps Qwen2VLProcessor's type checks and saving happy.
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor())
    pipe = QwenImageEditPlusPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
                                     text_encoder=text_encoder, tokenizer=tok, processor=processor)
    return _finish(pipe, path)


def tiny_flux2_klein(path: str | os.PathLike | None = None, seed: int = 0):
    """FLUX.2 klein with a tiny Qwen3 text encoder; refs via ``image=[...]`` (each at least 64 px)."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = qwen2_tokenizer()
    torch.manual_seed(seed)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=16, timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4],
        guidance_embeds=False)
    text_encoder = Qwen3ForCausalLM(Qwen3Config(
        intermediate_size=16, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        vocab_size=len(tok), max_position_embeddings=512))
    vae = _vae4(AutoencoderKLFlux2, latent_channels=1, use_quant_conv=False, use_post_quant_conv=False)
    pipe = Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                              tokenizer=tok, transformer=transformer)
    return _finish(pipe, path)


def tiny_flux_kontext(path: str | os.PathLike | None = None, seed: int = 0):
    """FLUX.1 Kontext (one reference image; stitch several side by side) with tiny CLIP and T5 encoders."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    clip_tok, t5_tok = clip_tokenizer(), t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8])
    clip = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-5,
        num_attention_heads=4, num_hidden_layers=2, vocab_size=len(clip_tok), projection_dim=32,
        max_position_embeddings=77))
    t5 = T5EncoderModel(T5Config(d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, vocab_size=len(t5_tok),
                                 pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    vae = _vae4(AutoencoderKL, latent_channels=4, use_quant_conv=False, use_post_quant_conv=False,
                shift_factor=0.0609, scaling_factor=1.5035)
    pipe = FluxKontextPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip,
                               tokenizer=clip_tok, text_encoder_2=t5, tokenizer_2=t5_tok, transformer=transformer)
    return _finish(pipe, path)
