"""Lossless PNG bytes, the one way images leave the process (files on disk, judge requests, provider APIs)."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["png_bytes"]


def png_bytes(image: Any) -> bytes:
    """PNG bytes of a PIL image; the same pixels always give the same bytes (PIL writes no timestamps).

    Compression level 1: lossless like the default 6 and several times faster, which matters when a judge
    encodes four large images per request.
    """
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
