"""Lossless PNG bytes, the one way images leave the process (files on disk, judge requests, provider APIs).

Why not ``Image.save(format="PNG")``: writing each generated 1024 x 1024 image was the largest share of the
harness's own time in the generation stage (about 65 ms of CPU, holding the GIL). Pillow tries every PNG
filter on every row and offers no way to choose one. Here each row gets the "Up" filter (the row minus the
row above, one vectorised subtraction) and zlib compresses at level 1: the files are as small as Pillow's at
the same level (within 1 % on photographs and model outputs), are written about twice as fast, and both steps
run without the GIL, so the writer thread leaves the model's thread alone. Any PNG reader gives back
exactly the pixels written.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

__all__ = ["png_bytes"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {"L": 0, "RGB": 2, "RGBA": 6}  # 8 bits per sample each
_UP = 2  # PNG filter type "Up"


def png_bytes(image: Any) -> bytes:
    """PNG bytes of a PIL image (8-bit L, RGB or RGBA; any other mode is converted to RGB first).

    The same pixels always give the same bytes: no timestamps, no metadata, a fixed filter and level.
    """
    import numpy as np

    if image.mode not in _COLOUR_TYPE:
        image = image.convert("RGB")
    width, height = image.size
    if width < 1 or height < 1:  # PNG has no empty images
        raise ValueError(f"cannot write an empty image ({width} x {height}) as PNG")
    rows = np.asarray(image, dtype=np.uint8).reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = _UP
    filtered[:1, 1:] = rows[:1]  # the first row's "row above" is zeros
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # wraps modulo 256, as the filter is defined
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[image.mode], 0, 0, 0)
    return b"".join([_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", zlib.compress(filtered, 1)),
                     _chunk(b"IEND", b"")])


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))
