"""Reference-image helpers shared by adapters: resizing to a model's grid, stitching, tiling.

Kept in one place so every adapter resizes the same way (Lanczos, aspect kept, sides a multiple of the
model's grid) and baselines reuse the same tiling as stitched-canvas models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["fit_area", "resize_to_area", "stitch_horizontal", "tile_grid"]


def fit_area(width: int, height: int, max_area: int, multiple: int = 16) -> tuple[int, int]:
    """The (w, h) with the same aspect ratio, area at most ``max_area``, sides multiples of ``multiple``.

    Images already smaller than ``max_area`` are not enlarged (only rounded down to the grid).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = min(1.0, math.sqrt(max_area / (width * height)))
    w = max(multiple, int(width * scale) // multiple * multiple)
    h = max(multiple, int(height * scale) // multiple * multiple)
    return w, h


def resize_to_area(image: Image, max_area: int, multiple: int = 16) -> Image:
    from PIL import Image as PILImage

    size = fit_area(image.width, image.height, max_area, multiple)
    return image if size == image.size else image.resize(size, PILImage.Resampling.LANCZOS)


def stitch_horizontal(images: Sequence[Image], height: int | None = None) -> Image:
    """Images side by side at a common height (the tallest's unless given), aspect ratios kept."""
    from PIL import Image as PILImage

    if not images:
        raise ValueError("nothing to stitch")
    h = height or max(im.height for im in images)
    scaled = [im.resize((max(1, round(im.width * h / im.height)), h), PILImage.Resampling.LANCZOS) for im in images]
    canvas = PILImage.new("RGB", (sum(im.width for im in scaled), h), "white")
    x = 0
    for im in scaled:
        canvas.paste(im.convert("RGB"), (x, 0))
        x += im.width
    return canvas


def tile_grid(images: Sequence[Image], size: tuple[int, int], background: str = "white") -> Image:
    """Tile images into a near-square grid filling ``size`` (width, height), each letterboxed in its cell."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    if not images:
        raise ValueError("nothing to tile")
    width, height = size
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    cell_w, cell_h = width // cols, height // rows
    canvas = PILImage.new("RGB", (width, height), background)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        cell = ImageOps.contain(im.convert("RGB"), (cell_w, cell_h), PILImage.Resampling.LANCZOS)
        x = c * cell_w + (cell_w - cell.width) // 2
        y = r * cell_h + (cell_h - cell.height) // 2
        canvas.paste(cell, (x, y))
    return canvas
