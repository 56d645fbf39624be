"""OmniGen2 (VectorSpaceLab/OmniGen2) through its own pipeline, imported from a checkout.

Why a checkout: OmniGen2's pipeline and transformer live in its repository, not in diffusers. The
adapter builds ``OmniGen2Pipeline`` from the weights' subfolders (transformer, vae, scheduler, mllm,
processor) and calls it with the references as ``input_images``, as the upstream ``inference.py`` does.

DAR: the joint transformer layers attend over ``[text | ref 1 | ref 2 | ... | noisy image]`` (each row
padded to the longest). A forward pre-hook reads the per-row text length, the per-reference token counts
and the image token count from the call, and the joint layers' SDPA call is routed through
``dar.dar_attention`` with that layout. The refiner layers (text, noise and each reference alone) are
left as they are. Everything is restored on exit.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

from adapters.base import ModelAdapter, seed_everything
from adapters.upstream._common import (
    StepCounter,
    UpstreamSpec,
    dar_exclusion,
    merge_settings,
    resolve_code_path,
    resolve_device,
    resolve_weights,
    torch_dtype,
    upstream_imports,
)
from micon_tasks.errors import ConfigError
from registry import register_adapter

__all__ = ["OmniGen2Adapter", "SPEC"]

SPEC = UpstreamSpec(
    adapter="omnigen2",
    env_var="MICON_OMNIGEN2_CODE",
    repo="VectorSpaceLab/OmniGen2",
    probe="omnigen2/pipelines/omnigen2/pipeline_omnigen2.py",
    top_level=("omnigen2",),
)

# The negative prompt of the upstream inference.py.
UPSTREAM_NEGATIVE_PROMPT = (
    "(((deformed))), blurry, over saturation, bad anatomy, disfigured, poorly drawn face, mutation, mutated, "
    "(extra_limb), (ugly), (poorly drawn hands), fused fingers, messy drawing, broken legs censor, censored, "
    "censor_bar"
)


@register_adapter("omnigen2")
class OmniGen2Adapter(ModelAdapter):
    """OmniGen2 with up to 5 references (the transformer has 5 reference-index embeddings)."""

    max_refs = 5
    supports_dar = True
    default_size = (1024, 1024)

    def __init__(
        self,
        code_path: str | None = None,
        pretrained: str = "OmniGen2/OmniGen2",
        dtype: str = "bfloat16",
        device: str | None = None,
        steps: int = 50,
        text_guidance_scale: float = 5.0,
        image_guidance_scale: float = 2.0,
        cfg_range_start: float = 0.0,
        cfg_range_end: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        max_input_image_pixels: int = 1024 * 1024,
        max_input_image_side_length: int = 1024,
        max_sequence_length: int = 1024,
        negative_prompt: str = UPSTREAM_NEGATIVE_PROMPT,
        scheduler: str = "euler",
        seed: int = 0,
    ):
        self.code_path = resolve_code_path(SPEC, code_path)
        if scheduler not in ("euler", "dpmsolver++"):
            raise ConfigError(f"adapter 'omnigen2': scheduler must be 'euler' or 'dpmsolver++', not {scheduler!r}")
        if int(steps) < 1:
            raise ConfigError(f"adapter 'omnigen2': steps must be >= 1, got {steps!r}")
        self.pretrained, self.dtype_name, self.device = pretrained, dtype, resolve_device(device)
        self.dtype = torch_dtype(dtype, adapter=SPEC.adapter)
        self.steps = int(steps)
        self.text_guidance_scale, self.image_guidance_scale = float(text_guidance_scale), float(image_guidance_scale)
        self.cfg_range = (float(cfg_range_start), float(cfg_range_end))
        self.width, self.height = self.output_size(width, height)
        self.max_input_image_pixels = int(max_input_image_pixels)
        self.max_input_image_side_length = int(max_input_image_side_length)
        self.max_sequence_length = int(max_sequence_length)
        self.negative_prompt, self.scheduler_name, self.seed = negative_prompt, scheduler, int(seed)
        self._pipe: Any = None

    # -- loading ------------------------------------------------------------------------------
    def _load(self) -> Any:
        if self._pipe is not None:
            return self._pipe
        root = resolve_weights(self.pretrained, adapter=SPEC.adapter)
        with upstream_imports(SPEC, self.code_path):
            if self.device == "cpu":
                _disable_triton_kernels()
            from diffusers import AutoencoderKL
            from omnigen2.models.transformers.transformer_omnigen2 import OmniGen2Transformer2DModel
            from omnigen2.pipelines.omnigen2.pipeline_omnigen2 import OmniGen2Pipeline
            from omnigen2.schedulers.scheduling_flow_match_euler_discrete import FlowMatchEulerDiscreteScheduler
            from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

            if self.scheduler_name == "dpmsolver++":  # the upstream inference.py settings
                from omnigen2.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler

                scheduler = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_type="midpoint",
                                                        solver_order=2, prediction_type="flow_prediction")
            else:
                scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(root, subfolder="scheduler")
            pipe = OmniGen2Pipeline(
                transformer=OmniGen2Transformer2DModel.from_pretrained(root, subfolder="transformer",
                                                                       torch_dtype=self.dtype),
                vae=AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=self.dtype),
                scheduler=scheduler,
                mllm=Qwen2_5_VLForConditionalGeneration.from_pretrained(root, subfolder="mllm",
                                                                        torch_dtype=self.dtype),
                processor=AutoProcessor.from_pretrained(root, subfolder="processor"),
            )
        pipe.set_progress_bar_config(disable=True)
        self._pipe = pipe.to(self.device)
        return self._pipe

    # -- generation ---------------------------------------------------------------------------
    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        import torch

        pipe = self._load()
        seed = self.seed if seed is None else int(seed)
        seed_everything(seed)  # the reference VAE sampling draws from the global generator
        settings = {
            "width": self.width, "height": self.height, "num_inference_steps": self.steps,
            "text_guidance_scale": self.text_guidance_scale, "image_guidance_scale": self.image_guidance_scale,
            "cfg_range": self.cfg_range, "negative_prompt": self.negative_prompt,
            "max_pixels": self.max_input_image_pixels,
            "max_input_image_side_length": self.max_input_image_side_length,
            "max_sequence_length": self.max_sequence_length,
        }
        settings = merge_settings(SPEC.adapter, settings, gen_kwargs)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        hook = contextlib.nullcontext()
        if dar:
            from dar import DARStats

            self.last_dar_stats = DARStats()  # generate() refuses the image if DAR reached no call
            hook = omnigen2_dar(pipe.transformer, dar, settings["num_inference_steps"], self.last_dar_stats)
        with hook:
            out = pipe(prompt=prompt, input_images=list(refs), generator=generator, output_type="pil", **settings)
        return out.images[0]

    def model_info(self) -> dict[str, Any]:
        return {
            **super().model_info(), "upstream": SPEC.url, "code_path": str(self.code_path),
            "weights": self.pretrained, "dtype": self.dtype_name, "device": self.device, "steps": self.steps,
            "text_guidance_scale": self.text_guidance_scale, "image_guidance_scale": self.image_guidance_scale,
            "cfg_range": list(self.cfg_range), "width": self.width, "height": self.height,
            "scheduler": self.scheduler_name, "seed": self.seed,
        }


def _disable_triton_kernels() -> None:
    """On CPU the fused Triton RMSNorm cannot run: make the upstream code pick torch.nn.RMSNorm.

    Both classes hold the same single ``weight`` parameter, so checkpoints load either way. This only
    works before the transformer module is first imported in the process.
    """
    import sys

    import omnigen2.utils.import_utils as iu

    mod = sys.modules.get("omnigen2.models.transformers.transformer_omnigen2")
    if mod is not None and getattr(iu, "_triton_available", False):
        raise ConfigError("adapter 'omnigen2': device='cpu' needs the plain RMSNorm, but the OmniGen2 transformer "
                          "was already imported with Triton kernels in this process; use a fresh process")
    iu._triton_available = False


class _Layout:
    """The joint-sequence layout of the current transformer call (None when DAR is off for it)."""

    def __init__(self) -> None:
        self.ref_mask = self.query_mask = self.ref_ids = None
        self.step: int | None = None
        self.conditional = True
        self.layer: int | None = None  # set while a joint layer's attention runs


@contextlib.contextmanager
def omnigen2_dar(transformer: Any, config: Any, num_steps: int, stats: Any = None) -> Iterator[None]:
    """Route the joint layers' attention through ``dar_attention``; restore everything on exit.

    ``stats`` (a :class:`dar.DARStats`) counts the SDPA calls rebalanced and passed through, by reason."""
    import omnigen2.models.attention_processor as ap
    import torch
    import torch.nn.functional as F

    from dar import dar_attention

    layout, steps, p = _Layout(), StepCounter(), transformer.config.patch_size
    signature = inspect.signature(transformer.forward)

    def pre_hook(module, args, kwargs):
        if stats is not None:
            stats.add_forward()
        call = signature.bind(*args, **kwargs).arguments
        step, branch = steps.see(float(call["timestep"].flatten()[0]))
        layout.step, layout.conditional = step, branch == 0  # call order per step: cond, ref, uncond
        refs = call.get("ref_image_hidden_states")
        text = call["text_attention_mask"].sum(dim=1).tolist()
        images = call["hidden_states"]
        rows = len(images)
        ref_lens = [[(r.shape[-2] // p) * (r.shape[-1] // p) for r in (refs[i] or [])] if refs else []
                    for i in range(rows)]
        img_lens = [(im.shape[-2] // p) * (im.shape[-1] // p) for im in images]
        total = max(t + sum(r) + n for t, r, n in zip(text, ref_lens, img_lens))
        device = images[0].device
        ref_mask = torch.zeros(rows, total, dtype=torch.bool, device=device)
        query_mask = torch.zeros_like(ref_mask)
        ref_ids = torch.full((rows, total), -1, dtype=torch.long, device=device)
        for i, (t, lens, n) in enumerate(zip(text, ref_lens, img_lens)):
            start = int(t)
            for j, length in enumerate(lens):
                ref_mask[i, start:start + length] = True
                ref_ids[i, start:start + length] = j
                start += length
            query_mask[i, start:start + n] = True
        has_refs = bool(ref_mask.any())
        layout.ref_mask, layout.query_mask, layout.ref_ids = (ref_mask, query_mask, ref_ids) if has_refs else \
            (None, None, None)

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
        layer = layout.layer
        reason = "not_joint_layer" if layer is None else "no_reference_keys" if layout.ref_mask is None else \
            dar_exclusion(config, layer=layer, step=layout.step, num_steps=num_steps, conditional=layout.conditional)
        if reason is not None:
            if stats is not None:
                stats.add_passed(reason)
            return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                                                  is_causal=is_causal, scale=scale, **kw)
        if key.shape[-2] != layout.ref_mask.shape[-1]:
            raise RuntimeError(f"omnigen2 DAR: joint layer {layer} has {key.shape[-2]} keys, but the layout from "
                               f"the call has {layout.ref_mask.shape[-1]}; the upstream code changed")
        if stats is not None:
            stats.add_rebalanced()
        return dar_attention(query, key, value, layout.ref_mask, config, attn_mask=attn_mask, scale=scale,
                             is_causal=is_causal, query_mask=layout.query_mask, ref_ids=layout.ref_ids)

    class _FunctionalWithDAR:
        """``torch.nn.functional`` for the processor module, with SDPA routed through DAR."""

        scaled_dot_product_attention = staticmethod(sdpa)

        def __getattr__(self, name):
            return getattr(F, name)

    class _JointProcessor:
        """The upstream SDPA processor, marking which joint layer is running."""

        def __init__(self, index: int):
            self.index, self.inner = index, ap.OmniGen2AttnProcessor()

        def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None,
                     base_sequence_length=None):
            layout.layer = self.index
            try:
                return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask=attention_mask,
                                  image_rotary_emb=image_rotary_emb, base_sequence_length=base_sequence_length)
            finally:
                layout.layer = None

    originals = [layer.attn.processor for layer in transformer.layers]
    saved_f = ap.F
    handle = transformer.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        ap.F = _FunctionalWithDAR()
        for i, layer in enumerate(transformer.layers):
            layer.attn.set_processor(_JointProcessor(i))
        yield
    finally:
        handle.remove()
        ap.F = saved_f
        for layer, proc in zip(transformer.layers, originals):
            layer.attn.set_processor(proc)
