"""OmniGen2 (VectorSpaceLab/OmniGen2) through its own pipeline, imported from a checkout.

Why a checkout: OmniGen2's pipeline and transformer live in its repository, not in diffusers. The
adapter builds ``OmniGen2Pipeline`` from the weights' subfolders (transformer, vae, scheduler, mllm,
processor) and calls it with the references as ``input_images``, as the upstream ``inference.py`` does.

DAR: :class:`OmniGen2Layout` tells :mod:`dar.routing` where the tokens are (``dar.enable`` on the
transformer); the refiner layers (text, noise and each reference alone) are left as they are.
"""

from __future__ import annotations

from typing import Any

from adapters.upstream._common import UpstreamAdapter, UpstreamSpec, merge_settings, resolve_weights, upstream_imports
from dar.layouts import ModelLayout, Placement, Route, StepCounter, register_layout
from dar.maps import attach_maps
from micon_tasks.devices import resolve_dtype
from micon_tasks.errors import ConfigError
from registry import register_adapter

__all__ = ["OmniGen2Adapter", "OmniGen2Layout", "SPEC"]

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
class OmniGen2Adapter(UpstreamAdapter):
    """OmniGen2 with up to 5 references (the transformer has 5 reference-index embeddings).

    Also takes the common ``dtype``, ``device``, ``height``, ``width`` (see :class:`UpstreamAdapter`)."""

    spec = SPEC
    max_refs = 5
    default_size = (1024, 1024)

    def __init__(
        self,
        code_path: str | None = None,
        pretrained: str = "OmniGen2/OmniGen2",
        steps: int = 50,
        text_guidance_scale: float = 5.0,
        image_guidance_scale: float = 2.0,
        cfg_range_start: float = 0.0,
        cfg_range_end: float = 1.0,
        max_input_image_pixels: int = 1024 * 1024,
        max_input_image_side_length: int = 1024,
        max_sequence_length: int = 1024,
        negative_prompt: str = UPSTREAM_NEGATIVE_PROMPT,
        scheduler: str = "euler",
        seed: int = 0,
        **common: Any,
    ):
        super().__init__(code_path, pretrained=pretrained, steps=steps, seed=seed, **common)
        if scheduler not in ("euler", "dpmsolver++"):
            raise ConfigError(f"adapter 'omnigen2': scheduler must be 'euler' or 'dpmsolver++', not {scheduler!r}")
        self.dtype = resolve_dtype(self.dtype_name, self.device, what=f"adapter {SPEC.adapter!r}: dtype")
        self.text_guidance_scale, self.image_guidance_scale = float(text_guidance_scale), float(image_guidance_scale)
        self.cfg_range = (float(cfg_range_start), float(cfg_range_end))
        self.max_input_image_pixels = int(max_input_image_pixels)
        self.max_input_image_side_length = int(max_input_image_side_length)
        self.max_sequence_length = int(max_sequence_length)
        self.negative_prompt, self.scheduler_name = negative_prompt, scheduler

    # -- loading ------------------------------------------------------------------------------
    def _load(self) -> Any:
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
        return pipe.to(self.device)

    # -- generation ---------------------------------------------------------------------------
    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        import torch

        pipe = self.model
        seed = self.seeded(seed)  # the reference VAE sampling draws from the global generator
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
        hook = self.dar_hook(pipe.transformer, dar, num_steps=settings["num_inference_steps"])
        with hook:
            out = pipe(prompt=prompt, input_images=list(refs), generator=generator, output_type="pil", **settings)
        return attach_maps(out.images[0], hook)

    def model_info(self) -> dict[str, Any]:
        return {**super().model_info(), "text_guidance_scale": self.text_guidance_scale,
                "image_guidance_scale": self.image_guidance_scale, "cfg_range": list(self.cfg_range),
                "scheduler": self.scheduler_name}


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


@register_layout("omnigen2.models.transformers.transformer_omnigen2.OmniGen2Transformer2DModel")
class OmniGen2Layout(ModelLayout):
    """The joint layers attend over ``[text | ref 1 | ... | ref n | noisy image]``, each row padded.

    Per forward: the text length (``text_attention_mask``), each reference's token count (its latent size /
    patch^2) and the image token count. The joint layers get the upstream SDPA processor while DAR is on
    (a flash-attn one is swapped back after); the processor module's ``F`` is routed. Refiner layers share
    that ``F`` and pass as ``not_joint_layer``. Branches per step: conditional, reference-only, unconditional.
    """

    outside_layers, strict = "not_joint_layer", True

    def __init__(self, model: Any, config: Any, *, num_steps: int, scheduler: Any = None):
        super().__init__(model, config, scheduler=scheduler)
        self.num_steps, self.steps, self.patch = num_steps, StepCounter(), model.config.patch_size

    def get_routes(self) -> tuple:
        from dar.routing import functional_router

        return (Route("omnigen2.models.attention_processor", "F", functional_router),)

    def attention_modules(self) -> list:
        return [layer.attn for layer in self.model.layers]

    def setup(self):
        import omnigen2.models.attention_processor as ap

        originals = [layer.attn.processor for layer in self.model.layers]
        for layer in self.model.layers:
            layer.attn.set_processor(ap.OmniGen2AttnProcessor())

        def undo() -> None:
            for layer, proc in zip(self.model.layers, originals):
                layer.attn.set_processor(proc)

        return undo

    def locate(self, call: dict) -> Placement:
        import torch

        step, branch = self.steps.see(float(call["timestep"].flatten()[0]))
        refs, p = call.get("ref_image_hidden_states"), self.patch
        text = call["text_attention_mask"].sum(dim=1).tolist()
        images = call["hidden_states"]
        rows = len(images)
        ref_lens = [[(r.shape[-2] // p) * (r.shape[-1] // p) for r in (refs[i] or [])] if refs else []
                    for i in range(rows)]
        img_lens = [(im.shape[-2] // p) * (im.shape[-1] // p) for im in images]
        total = max(t + sum(r) + n for t, r, n in zip(text, ref_lens, img_lens))
        query_mask = torch.zeros(rows, total, dtype=torch.bool)
        ref_ids = torch.full((rows, total), -1, dtype=torch.long)
        for i, (t, lens, n) in enumerate(zip(text, ref_lens, img_lens)):
            start = int(t)
            for j, length in enumerate(lens):
                ref_ids[i, start:start + length] = j
                start += length
            query_mask[i, start:start + n] = True
        grids = {j: (r.shape[-2] // p, r.shape[-1] // p) for j, r in enumerate(refs[0] or [])} if refs else {}
        return Placement(ref_ids >= 0, query_mask, ref_ids, step=step / self.num_steps, step_index=step,
                         branch=branch, conditional=branch == 0, grids=grids, map_row=0 if branch == 0 else None)
