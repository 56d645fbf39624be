"""``omnigen``: OmniGen v1 through diffusers' OmniGenPipeline (several input images in one sequence).

References enter as ``input_images``; the instruction names each with ``<img><|image_k|></img>``
(:func:`adapters.prompts.omnigen_prompt`). The pipeline samples the reference latents from the global
torch generator, which the base class seeds.
"""

from __future__ import annotations

from typing import Any

from adapters.diffusers_base import DiffusersAdapter
from adapters.prompts import omnigen_prompt
from registry import register_adapter

__all__ = ["OmniGenAdapter"]


@register_adapter("omnigen", aliases=("omnigen_v1",))
class OmniGenAdapter(DiffusersAdapter):
    pipeline_class = "OmniGenPipeline"
    max_refs = None

    def __init__(
        self,
        pretrained: str = "Shitao/OmniGen-v1-diffusers",
        steps: int = 50,
        guidance_scale: float = 2.5,
        img_guidance_scale: float = 1.6,
        max_input_image_size: int = 1024,
        **common: Any,
    ):
        super().__init__(pretrained, steps=steps, guidance_scale=guidance_scale, **common)
        self.img_guidance_scale = float(img_guidance_scale)
        self.max_input_image_size = int(max_input_image_size)

    def pipeline_kwargs(self, refs: list[Any], prompt: str) -> dict[str, Any]:
        return {
            "prompt": omnigen_prompt(prompt, len(refs)),
            "input_images": list(refs),
            **self.common_kwargs(),
            "img_guidance_scale": self.img_guidance_scale,
            "max_input_image_size": self.max_input_image_size,
        }

    def generation_settings(self) -> dict[str, Any]:
        return {**super().generation_settings(), "img_guidance_scale": self.img_guidance_scale,
                "max_input_image_size": self.max_input_image_size, "prompt_syntax": "<img><|image_k|></img>"}
