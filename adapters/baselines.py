"""Model-free baselines that calibrate a judge: both must fail instruction following.

``collage`` tiles the references; ``first_ref`` returns the first reference. A judge that passes them on
the A checkpoints is too lenient. Neither can apply DAR (there is no attention to rebalance).
"""

from __future__ import annotations

from typing import Any

from adapters.base import ModelAdapter
from adapters.images import tile_grid
from registry import register_adapter

__all__ = ["CollageBaseline", "FirstRefBaseline"]


class _Baseline(ModelAdapter):
    supports_dar = False
    max_refs = None

    def __init__(self, height: int | None = None, width: int | None = None):
        self.width, self.height = self.output_size(width, height)

    def model_info(self) -> dict[str, Any]:
        return {**super().model_info(), "weights": None, "width": self.width, "height": self.height}


@register_adapter("collage")
class CollageBaseline(_Baseline):
    """The references tiled into a near-square grid at the output size."""

    default_size = (1024, 1024)

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        return tile_grid(refs, (self.width, self.height))


@register_adapter("first_ref")
class FirstRefBaseline(_Baseline):
    """The first reference, unchanged unless a size was asked for (then resized to it)."""

    def __init__(self, height: int | None = None, width: int | None = None):
        self.width, self.height = self.given_size(width, height)

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        from PIL import Image as PILImage

        image = refs[0].copy()
        if self.width or self.height:
            size = (int(self.width or image.width), int(self.height or image.height))
            image = image.resize(size, PILImage.Resampling.LANCZOS)
        return image
