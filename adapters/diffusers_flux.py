"""FLUX adapters: ``flux2_klein`` (a list of references), ``flux_kontext`` (one stitched canvas) and
``dreamomni2`` (FLUX.1 Kontext with DreamOmni2's published LoRA weights).

FLUX.1 Kontext takes one conditioning image, so several references are stitched left to right at a
common height and the instruction's "image k" becomes the k-th panel. DreamOmni2's own code encodes
each reference separately (shifted positions); this adapter applies its weights to the stitched canvas
instead, an approximation stated in ``model_info``.
"""

from __future__ import annotations

from typing import Any

from adapters.diffusers_base import TextLengthAdapter
from adapters.images import resize_to_area, stitch_horizontal
from adapters.prompts import panel_prompt
from micon_tasks.errors import ConfigError
from registry import register_adapter

__all__ = ["Flux2KleinAdapter", "FluxKontextAdapter", "DreamOmni2Adapter"]


def _layers(value: Any) -> tuple[int, ...] | None:
    """``text_encoder_out_layers`` from an arg string: "9/18/27", "9 18 27", an int, or a sequence."""
    if value is None:
        return None
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        parts = value.replace("/", " ").replace(";", " ").replace(":", " ").split()
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"text_encoder_out_layers must be integers like 9/18/27, got {value!r}") from None
    return tuple(int(v) for v in value)


@register_adapter("flux2_klein", aliases=("flux2-klein", "flux_2_klein"))
class Flux2KleinAdapter(TextLengthAdapter):
    """FLUX.2 [klein]: every reference in ``image=[...]``, each with its own position offset.

    Defaults suit the step-distilled klein (4 steps, guidance 1); for a base checkpoint pass
    ``steps=50,guidance_scale=4``.
    """

    pipeline_class = "Flux2KleinPipeline"
    max_refs = 10

    def __init__(
        self,
        pretrained: str = "black-forest-labs/FLUX.2-klein-4B",
        steps: int = 4,
        guidance_scale: float = 1.0,
        text_encoder_out_layers: Any = None,
        **common: Any,
    ):
        super().__init__(pretrained, steps=steps, guidance_scale=guidance_scale, **common)
        self.text_encoder_out_layers = _layers(text_encoder_out_layers)

    def pipeline_kwargs(self, refs: list[Any], prompt: str) -> dict[str, Any]:
        small = [r for r in refs if min(r.size) < 64]
        if small:  # the pipeline's VAE grid needs 64 px: enlarge rather than fail
            refs = [r if min(r.size) >= 64 else r.resize(_at_least(r.size, 64)) for r in refs]
        kwargs = {
            "image": list(refs),
            "prompt": prompt,  # FLUX.2 is prompted with "image 1", "image 2": the benchmark's own words
            **self.common_kwargs(),
        }
        if self.text_encoder_out_layers is not None:
            kwargs["text_encoder_out_layers"] = self.text_encoder_out_layers
        return kwargs

    def generation_settings(self) -> dict[str, Any]:
        return {**super().generation_settings(), "text_encoder_out_layers": self.text_encoder_out_layers,
                "prompt_syntax": "image k"}


def _at_least(size: tuple[int, int], side: int) -> tuple[int, int]:
    w, h = size
    scale = side / min(w, h)
    return max(side, round(w * scale)), max(side, round(h * scale))


@register_adapter("flux_kontext", aliases=("flux1_kontext", "flux-kontext"))
class FluxKontextAdapter(TextLengthAdapter):
    """FLUX.1 Kontext: references stitched side by side into one conditioning image."""

    pipeline_class = "FluxKontextPipeline"
    max_refs = 4

    def __init__(
        self,
        pretrained: str = "black-forest-labs/FLUX.1-Kontext-dev",
        steps: int = 28,
        guidance_scale: float = 2.5,
        condition_area: int = 1024 * 1024,
        **common: Any,
    ):
        super().__init__(pretrained, steps=steps, guidance_scale=guidance_scale, **common)
        self.condition_area = int(condition_area)

    def canvas(self, refs: list[Any]) -> Any:
        """The conditioning image: references left to right, scaled to at most ``condition_area``."""
        return resize_to_area(stitch_horizontal(refs), self.condition_area, multiple=16)

    def dar_maps(self, maps: Any, refs: list[Any]) -> Any:
        """The canvas's one map, cut into the panels (each reference scaled to the canvas height)."""
        from dar.maps import split_columns

        height = max(r.height for r in refs)
        return split_columns(maps, [max(1, round(r.width * height / r.height)) for r in refs])

    def pipeline_kwargs(self, refs: list[Any], prompt: str) -> dict[str, Any]:
        return {
            "image": self.canvas(refs),
            "prompt": panel_prompt(prompt, len(refs)),
            **self.common_kwargs(),
            # we size the canvas ourselves; the pipeline must neither re-pick it nor upsize the output
            "max_area": self.height * self.width,
            "_auto_resize": False,
        }

    def generation_settings(self) -> dict[str, Any]:
        return {**super().generation_settings(), "condition_area": self.condition_area,
                "references": "stitched left to right",
                "prompt_syntax": "left/middle/right panel"}


@register_adapter("dreamomni2", aliases=("dream_omni2",))
class DreamOmni2Adapter(FluxKontextAdapter):
    """FLUX.1 Kontext plus DreamOmni2's LoRA (``lora=<path or Hub id>``, e.g. its generation LoRA)."""

    def __init__(
        self,
        lora: str | None = None,
        lora_weight_name: str | None = None,
        lora_subfolder: str | None = None,
        lora_scale: float = 1.0,
        pretrained: str = "black-forest-labs/FLUX.1-Kontext-dev",
        steps: int = 28,
        guidance_scale: float = 3.5,
        **common: Any,
    ):
        if not lora:
            raise ConfigError(
                "adapter 'dreamomni2' needs lora=<folder or Hub id of DreamOmni2's LoRA weights> "
                "(and lora_subfolder= / lora_weight_name= where the repository holds several)"
            )
        super().__init__(pretrained, steps=steps, guidance_scale=guidance_scale, **common)
        self.lora = str(lora)
        self.lora_weight_name = lora_weight_name
        self.lora_subfolder = lora_subfolder
        self.lora_scale = float(lora_scale)

    def after_load(self, pipe: Any) -> None:
        kwargs: dict[str, Any] = {"adapter_name": "dreamomni2", "local_files_only": self.local_files_only}
        if self.lora_weight_name:
            kwargs["weight_name"] = self.lora_weight_name
        if self.lora_subfolder:
            kwargs["subfolder"] = self.lora_subfolder
        pipe.load_lora_weights(self.lora, **kwargs)
        pipe.set_adapters(["dreamomni2"], adapter_weights=[self.lora_scale])

    def model_info(self) -> dict[str, Any]:
        info = super().model_info()
        info["lora"] = {"weights": self.lora, "subfolder": self.lora_subfolder,
                        "weight_name": self.lora_weight_name, "scale": self.lora_scale}
        info["note"] = ("references stitched into one Kontext canvas; DreamOmni2's own multi-reference "
                        "position encoding is not reproduced")
        return info
