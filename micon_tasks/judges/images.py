"""How a judge sees images: fitted to the size the judge needs, encoded once per request set, off the loop.

Why: at the benchmark's size (1024 x 1024 references and outputs) encoding dominated the judge stage's
CPU, and the same references were encoded again for every prompt of a case. Here every distinct
(image, spec) of a ``judge_batch`` call is prepared once, in a worker pool sized to the machine's cores,
and shared by every prompt that shows it (checkpoints, answer set, re-asks, rubric criteria).

A spec says the format (``jpeg`` at quality 95 by default: visually lossless and about 30x cheaper than
PNG for photographs; ``png`` is lossless), the most pixels an image may have (``max_image_pixels``; a
larger one is scaled down keeping its aspect ratio) and, for references when a prompt asks, a side
multiple. A prompt's ``options`` may override them: ``image_format``, ``max_ref_pixels``,
``ref_multiple``, ``max_image_pixels``.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

try:
    from pybase64 import b64encode as _b64encode  # same output as base64.b64encode, about 20x faster
except ImportError:  # pragma: no cover - an install without it is slower, not wrong
    from base64 import b64encode as _b64encode

from micon_tasks.devices import cpu_cores
from micon_tasks.errors import ConfigError
from micon_tasks.png import png_bytes

__all__ = ["ImageSpec", "fit", "encode", "data_url", "stored_bytes", "prompt_specs", "ImagePrep",
           "DEFAULT_MAX_IMAGE_PIXELS", "IMAGE_FORMATS", "JPEG_QUALITY", "MIME"]

#: the paper's judge (Qwen3-VL) reads 32 x 32 pixels per visual token; 1024 x 1024 (the benchmark's
#: generation size) is 1024 tokens per image, four images fit the served context with room to spare
DEFAULT_MAX_IMAGE_PIXELS = 1024 * 1024
IMAGE_FORMATS = ("jpeg", "png")
JPEG_QUALITY = 95
MIME = {"jpeg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class ImageSpec:
    """How one image is sent. ``strict``: the format is required (a prompt's ``image_format`` option), so
    stored bytes of another format are re-encoded; the judge's own ``image_format`` is a preference that
    stored PNG/JPEG bytes may bypass (sending them as stored costs nothing)."""

    fmt: str = "jpeg"
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    multiple: int | None = None
    strict: bool = False

    def describe(self) -> dict[str, Any]:
        return {"format": self.fmt, "max_pixels": self.max_pixels, "multiple": self.multiple,
                **({"jpeg_quality": JPEG_QUALITY} if self.fmt == "jpeg" else {}),
                "stored_sent_as_is": not self.strict}


def check_format(fmt: Any, what: str) -> str:
    if not isinstance(fmt, str) or fmt.lower() not in IMAGE_FORMATS:
        raise ConfigError(f"{what}: image_format must be one of {', '.join(IMAGE_FORMATS)}")
    return fmt.lower()


def _target(w: int, h: int, max_pixels: int, multiple: int | None) -> tuple[int, int]:
    """Scale down by area to at most ``max_pixels``, then floor each side to ``multiple`` when given
    (OmniContext's rule for references: 1023 x 1025 -> 1008 x 1024, 500 x 375 -> 496 x 368)."""
    scale = min(1.0, math.sqrt(max_pixels / float(w * h)))
    tw, th = max(1, int(w * scale)), max(1, int(h * scale))
    if multiple:
        m = int(multiple)
        return max(m, tw // m * m), max(m, th // m * m)
    return tw, th


def fit(image: Any, spec: ImageSpec) -> Any:
    """``image`` in 8-bit RGB, scaled down to at most ``spec.max_pixels`` (sides a multiple when asked)."""
    from PIL import Image

    from micon_tasks.images import to_rgb

    image = to_rgb(image)  # high-bit-depth greyscale scaled, never white
    size = _target(image.width, image.height, spec.max_pixels, spec.multiple)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


def encode(image: Any, spec: ImageSpec) -> bytes:
    """The bytes a judge is sent for ``image``: fitted, then JPEG (quality 95) or PNG (``png.png_bytes``).

    A JPEG is written through a file descriptor (an in-memory file on Linux): Pillow then encodes without
    holding the GIL (into a BytesIO its JPEG encoder holds it for the whole image), so encoding
    threads use every core and leave the event loop alone. Same bytes as encoding into memory.
    """
    image = fit(image, spec)
    if spec.fmt == "png":
        return png_bytes(image)  # the project's one PNG writer, which holds no GIL either
    with _scratch_file() as f:
        image.save(f, format="JPEG", quality=JPEG_QUALITY)
        f.seek(0)
        return f.read()


def _scratch_file() -> Any:
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        try:
            return os.fdopen(memfd("micon-judge-image"), "w+b")
        except OSError:
            pass
    return tempfile.TemporaryFile()


def stored_bytes(image: Any, spec: ImageSpec) -> tuple[bytes, str] | None:
    """(bytes, mime) of an image that can be sent as it is stored (``micon_tasks.images.open_lazy``): a PNG
    or JPEG in 8-bit RGB or greyscale that ``spec`` would not resize. Nothing is decoded or re-encoded."""
    from micon_tasks.images import encoded_source

    # the cheap checks first: reading the stored bytes may read a file, wasted on an image re-encoded anyway
    fmt = getattr(image, "format", None)
    if fmt not in ("PNG", "JPEG") or image.mode not in ("RGB", "L") or (spec.strict and fmt.lower() != spec.fmt):
        return None
    if _target(image.width, image.height, spec.max_pixels, spec.multiple) != image.size:
        return None
    src = encoded_source(image)
    return None if src is None else (src[0], MIME[src[1].lower()])


def data_url(image: Any, spec: ImageSpec) -> bytes:
    """``data:<mime>;base64,...`` as ASCII bytes (a request body is bytes: no copy through str): the stored
    bytes when they fit the spec, else :func:`encode`. Built in a worker thread.

    Base64 comes from ``pybase64`` (SIMD): the standard library's holds the GIL for about 2.4 ms per 2 MB
    image, which was the largest share of the judge stage's CPU and stalled the event loop; this takes 0.1 ms.
    """
    stored = stored_bytes(image, spec)
    data, mime = stored if stored is not None else (encode(image, spec), MIME[spec.fmt])
    return b"data:" + mime.encode() + b";base64," + _b64encode(data)


def prompt_specs(prompt: Any, default: ImageSpec) -> list[ImageSpec]:
    """One spec per image of ``prompt``: references (all but the last ``n_generated``) may follow
    ``max_ref_pixels`` / ``ref_multiple``; every image follows ``image_format`` / ``max_image_pixels``."""
    opts = getattr(prompt, "options", None) or {}
    fmt = check_format(opts.get("image_format", default.fmt), f"prompt {prompt.name!r} options")
    strict = "image_format" in opts
    top = int(opts.get("max_image_pixels", default.max_pixels))
    gen = ImageSpec(fmt, top, None, strict)
    ref = ImageSpec(fmt, min(top, int(opts.get("max_ref_pixels", top))), opts.get("ref_multiple") or None, strict)
    n = len(prompt.images)
    n_gen = min(n, int(getattr(prompt, "n_generated", 1)))
    return [ref] * (n - n_gen) + [gen] * n_gen


class ImagePrep:
    """Prepared images of one batch: (image, spec) -> Future, computed once in a thread pool.

    Threads suffice because the encoders run without the GIL (:func:`encode` writes through a file
    descriptor), so the pool uses every core and never stalls the event loop that drives the requests.
    The pool lives as long as the judge (sized to the machine's cores); ``clear()`` drops a batch's
    entries so nothing outlives the requests that hold the images.
    """

    def __init__(self, prepare: Any, *, workers: int | None = None):
        self._prepare = prepare
        self._workers = workers or cpu_cores()
        self._pool: ThreadPoolExecutor | None = None
        # (id, spec) -> [image, future, users]; the image is held, so its id cannot be reused meanwhile
        self._cache: dict[tuple[int, ImageSpec], list[Any]] = {}
        self._lock = threading.Lock()

    def reserve(self, image: Any, spec: ImageSpec) -> None:
        """Count one more prompt that will show ``image`` (nothing is computed yet)."""
        key = (id(image), spec)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is image:
                hit[2] += 1
            else:
                self._cache[key] = [image, None, 1]

    def get(self, image: Any, spec: ImageSpec) -> Future[Any]:
        """The prepared image, computed on the first request and shared by every later one."""
        key = (id(image), spec)
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[0] is not image:
                hit = self._cache[key] = [image, None, 0]
            if hit[1] is None:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="micon-judge-img")
                hit[1] = self._pool.submit(self._prepare, image, spec)
            return hit[1]

    def release(self, image: Any, spec: ImageSpec) -> None:
        """One reserved prompt is done; the last one drops the prepared data, so only the cases in flight
        hold encodings (a whole chunk of data URLs would be gigabytes)."""
        key = (id(image), spec)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is image:
                hit[2] -= 1
                if hit[2] <= 0:
                    del self._cache[key]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        self.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
