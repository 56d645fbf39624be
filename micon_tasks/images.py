"""Reference images: decode them fully once (so a broken file is named up front), and convert every mode
a model can be given to 8-bit RGB without losing the picture.

Why: Pillow's ``verify()`` does not decode, so a truncated JPEG or a PNG with a bad zlib stream passed the
old check and crashed the run later with a bare ``OSError`` naming neither case nor file; and a 16-bit
greyscale PNG (mode ``I;16``) converted with ``convert("RGB")`` comes out a solid white image.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from micon_tasks.errors import CaseValidationError

__all__ = ["decode_fully", "to_rgb", "open_lazy", "open_lazy_file", "encoded_source", "HIGH_BIT_MODES"]

#: Modes whose samples exceed 8 bits: scaled to 0..255, never clipped.
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def decode_fully(data: bytes, *, task: str, case_id: str, field: str, name: str = "image") -> tuple[int, int]:
    """Decode every pixel of an encoded image (bounded by Pillow's decompression-bomb limit); its size, or a
    CaseValidationError naming the task, the case, the field and the file."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.size
    except Image.DecompressionBombError as exc:
        raise CaseValidationError(task, case_id, field, f"{name} refused as a decompression bomb: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a broken file
        raise CaseValidationError(task, case_id, field, f"{name} is not a readable image: it cannot be decoded ({type(exc).__name__}: {exc})") from None


def to_rgb(image: Any) -> Any:
    """An 8-bit RGB copy of ``image``; high-bit-depth greyscale (I;16, I, F) is scaled to 0..255 first."""
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_BIT_MODES:
        import numpy as np
        from PIL import Image

        arr = np.asarray(image, dtype=np.float64)
        if image.mode == "F":
            top = 1.0 if arr.size and np.nanmax(arr) <= 1.0 else 255.0
        elif image.mode.startswith("I;16"):
            top = 65535.0
        else:  # 32-bit integers: 16-bit data unless larger values show otherwise
            peak = float(arr.max()) if arr.size else 0.0
            top = 65535.0 if peak <= 65535 else peak
        scaled = np.clip(np.nan_to_num(arr) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, mode="L").convert("RGB")
    return image.convert("RGB")


def open_lazy(data: bytes) -> Any:
    """A PIL image over encoded bytes that decodes only when its pixels are touched, and remembers the bytes.

    Why: the judge stage sends references and generated images as they are stored (PNG/JPEG); decoding and
    re-encoding 4 images of 1024 x 1024 per case would cost more than the judge's own time.
    ``encoded_source`` gives the bytes back while the image is untouched.
    """
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.info[_SOURCE] = data
    return image


def open_lazy_file(path: str | os.PathLike[str]) -> Any:
    """Like :func:`open_lazy` for an image file; its bytes are read only when ``encoded_source`` asks for them,
    so a chunk of cases waiting for the judge holds file names, not images."""
    from PIL import Image

    image = Image.open(path)
    image.info[_SOURCE] = Path(path)
    return image


def encoded_source(image: Any) -> tuple[bytes, str] | None:
    """(encoded bytes, format such as "PNG" or "JPEG") of an image made by ``open_lazy`` or
    ``open_lazy_file``, else None."""
    data = getattr(image, "info", {}).get(_SOURCE)
    fmt = getattr(image, "format", None)
    if isinstance(data, Path):
        data = data.read_bytes()
    return (data, fmt) if data is not None and fmt else None


_SOURCE = "micon_encoded_source"
