"""``qwen_image_edit_plus``: Qwen-Image-Edit-2509 through diffusers' QwenImageEditPlusPipeline.

References go in as ``image=[...]``; the pipeline labels them "Picture k" for its VLM, so the
instruction's "image k" is rewritten to match. The pipeline resizes each reference to two module-level
areas (384^2 for the VLM, 1024^2 for the VAE); ``condition_image_size`` / ``vae_image_size`` override
them only while this adapter's call runs (tiny test models need small ones), then restore them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from adapters.diffusers_base import TextLengthAdapter
from adapters.prompts import qwen_picture_prompt
from registry import register_adapter

__all__ = ["QwenImageEditPlusAdapter"]

_PATCH_LOCK = threading.Lock()  # the areas are module globals: one patched call at a time


@register_adapter("qwen_image_edit_plus", aliases=("qwen_image_edit_2509", "qwen-image-edit-plus"))
class QwenImageEditPlusAdapter(TextLengthAdapter):
    pipeline_class = "QwenImageEditPlusPipeline"
    max_refs = 3

    def __init__(
        self,
        pretrained: str = "Qwen/Qwen-Image-Edit-2509",
        steps: int = 40,
        true_cfg_scale: float = 4.0,
        guidance_scale: float | None = None,
        negative_prompt: str = " ",
        condition_image_size: int | None = None,
        vae_image_size: int | None = None,
        **common: Any,
    ):
        super().__init__(pretrained, steps=steps, guidance_scale=guidance_scale, **common)
        self.true_cfg_scale = float(true_cfg_scale)
        self.negative_prompt = negative_prompt
        self.condition_image_size = None if condition_image_size is None else int(condition_image_size)
        self.vae_image_size = None if vae_image_size is None else int(vae_image_size)

    def pipeline_kwargs(self, refs: list[Any], prompt: str) -> dict[str, Any]:
        return {
            "image": list(refs),
            "prompt": qwen_picture_prompt(prompt, len(refs)),
            "negative_prompt": self.negative_prompt,
            "true_cfg_scale": self.true_cfg_scale,
            **self.common_kwargs(),
        }

    @contextlib.contextmanager
    def call_context(self) -> Iterator[None]:
        if self.condition_image_size is None and self.vae_image_size is None:
            yield
            return
        import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as module

        with _PATCH_LOCK:
            saved = module.CONDITION_IMAGE_SIZE, module.VAE_IMAGE_SIZE
            if self.condition_image_size is not None:
                module.CONDITION_IMAGE_SIZE = self.condition_image_size
            if self.vae_image_size is not None:
                module.VAE_IMAGE_SIZE = self.vae_image_size
            try:
                yield
            finally:
                module.CONDITION_IMAGE_SIZE, module.VAE_IMAGE_SIZE = saved

    def generation_settings(self) -> dict[str, Any]:
        return {**super().generation_settings(), "true_cfg_scale": self.true_cfg_scale,
                "negative_prompt": self.negative_prompt,
                "condition_image_size": self.condition_image_size or 384 * 384,
                "vae_image_size": self.vae_image_size or 1024 * 1024, "prompt_syntax": "Picture k"}
