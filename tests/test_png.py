"""png.py: the one PNG writer. Any reader must get back exactly the pixels written, for every mode a model
or adapter may hand over, and the same pixels must always give the same bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from micon_tasks.png import png_bytes


def _noisy(mode: str, size: tuple[int, int] = (37, 23), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    bands = len(Image.new(mode, (1, 1)).getbands())
    arr = rng.integers(0, 256, (size[1], size[0], bands), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if bands == 1 else arr, mode=mode)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_pixels_round_trip_exactly(mode):
    image = _noisy(mode)
    back = Image.open(io.BytesIO(png_bytes(image)))
    back.load()
    assert back.format == "PNG" and back.mode == mode and back.size == image.size
    assert np.array_equal(np.asarray(back), np.asarray(image))


@pytest.mark.parametrize("mode", ["P", "1", "LA", "CMYK"])
def test_other_modes_are_written_as_rgb(mode):
    image = _noisy("RGB").convert(mode)
    back = Image.open(io.BytesIO(png_bytes(image)))
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), np.asarray(image.convert("RGB")))


def test_same_pixels_same_bytes_and_no_metadata():
    image = _noisy("RGB", seed=3)
    image.info["dpi"] = (300, 300)
    data = png_bytes(image)
    assert data == png_bytes(_noisy("RGB", seed=3))
    chunks, pos = [], 8
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + n
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]


def test_compresses_photographs_like_pillow_at_the_same_level():
    rng = np.random.default_rng(1)
    x = np.linspace(0, 255, 384, dtype=np.float32)
    base = np.add.outer(x, x[::-1]) / 2
    arr = np.stack([base, base.T, 255 - base], -1) + rng.normal(0, 6, (384, 384, 3))
    image = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    assert len(png_bytes(image)) < 1.05 * len(buf.getvalue())


@pytest.mark.parametrize("size", [(0, 5), (5, 0)])
def test_an_empty_image_is_refused_saying_why(size):
    with pytest.raises(ValueError, match="empty image"):
        png_bytes(Image.new("RGB", size))
