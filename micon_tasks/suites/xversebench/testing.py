"""Stand-ins for the XVerseBench metric models: tiny random-weight DINO / SigLIP builds and stub detectors.

Why: tests and the offline demo must run the metric code paths without downloading anything. DINO and
SigLIP are real transformers classes built from small configs with seeded random weights (saved with
``save_pretrained`` so the judges load them through ``from_pretrained`` like the real ones). No tiny
build of RetinaFace, Florence-2 or SAM 2 gives usable boxes, so those are stubs (``micon-stub`` in judge
arguments): rules, not models. Every score they lead to MEANS NOTHING.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from micon_tasks.suites.xversebench.faces import ARCFACE_TEMPLATE, FACE_SIZE, Face

__all__ = ["build_tiny_dino", "build_tiny_siglip", "save_random_aes_head", "StubFaceDetector", "StubObjectDetector", "StubSegmenter"]


def build_tiny_dino(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """A 2-layer ViT (hidden 32, patch 16, 224 px) saved under ``path``."""
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(seed)
    model = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                               image_size=224, patch_size=16), add_pooling_layer=False).eval()
    model.save_pretrained(path)
    return Path(path)


def build_tiny_siglip(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """A 2-layer SigLIP vision tower (hidden 32, 32 px input) and its image processor saved under ``path``."""
    import torch
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(seed)
    model = SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                 num_attention_heads=2, image_size=32, patch_size=8)).eval()
    model.save_pretrained(path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return Path(path)


def save_random_aes_head(path: str | os.PathLike[str], hidden_size: int = 32, *, seed: int = 0) -> Path:
    """Seeded random aesthetic-head weights saved in the upstream file's key layout (``scoring_head.N``)."""
    import torch

    from micon_tasks.suites.xversebench.aes import AestheticHead

    torch.manual_seed(seed)
    state = AestheticHead(hidden_size).state_dict()
    torch.save({f"scoring_head.{2 * int(k.split('.')[1])}.{k.split('.')[2]}": v for k, v in state.items()}, path)
    return Path(path)


def _central_face(image: Any) -> Face:
    """A face filling the central half of the image, landmarks on the ArcFace layout scaled into it."""
    w, h = image.size
    side = min(w, h) / 2
    x0, y0 = (w - side) / 2, (h - side) / 2
    points = tuple((x0 + x * side / FACE_SIZE, y0 + y * side / FACE_SIZE) for x, y in ARCFACE_TEMPLATE)
    return Face((x0, y0, x0 + side, y0 + side), points)


class StubFaceDetector:
    """A rule instead of RetinaFace: ``rule(image) -> faces``; by default one central face in any image
    that is not a single flat colour (so a blank picture has "no face")."""

    def __init__(self, rule: Callable[[Any], list[Face]] | None = None):
        self.rule = rule or (lambda im: [] if _flat(im) else [_central_face(im)])

    def detect(self, images: Sequence[Any]) -> list[list[Face]]:
        return [list(self.rule(im)) for im in images]

    def describe(self) -> dict[str, Any]:
        return {"detector": "micon-stub (scores MEAN NOTHING)"}


class StubObjectDetector:
    """A rule instead of Florence-2: ``rule(image, label) -> boxes``; by default the image inset by a tenth
    on each side, none in a flat image."""

    def __init__(self, rule: Callable[[Any, str], list[tuple[float, float, float, float]]] | None = None):
        self.rule = rule or (lambda im, label: [] if _flat(im) else [
            (im.width * 0.1, im.height * 0.1, im.width * 0.9, im.height * 0.9)])
        self.calls: list[tuple[tuple[int, int], str]] = []

    def detect(self, items: Sequence[tuple[Any, str]]) -> list[list[tuple[float, float, float, float]]]:
        self.calls.extend((im.size, label) for im, label in items)
        return [list(self.rule(im, label)) for im, label in items]

    def describe(self) -> dict[str, Any]:
        return {"detector": "micon-stub (scores MEAN NOTHING)"}


class StubSegmenter:
    """A rule instead of SAM 2: by default the mask is the whole box."""

    def __init__(self, rule: Callable[[Any, Sequence[float]], Any] | None = None):
        self.rule = rule or _box_mask

    def masks(self, image: Any, boxes: Sequence[Sequence[float]]) -> list[Any]:
        return [self.rule(image, b) for b in boxes]

    def describe(self) -> dict[str, Any]:
        return {"segmenter": "micon-stub (scores MEAN NOTHING)"}


def _box_mask(image: Any, box: Sequence[float]) -> Any:
    import numpy as np

    m = np.zeros((image.height, image.width), dtype=bool)
    x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
    m[max(y1, 0) : y2, max(x1, 0) : x2] = True
    return m


def _flat(image: Any) -> bool:
    lo, hi = zip(*image.convert("RGB").getextrema())
    return max(hi) - min(lo) == 0 or all(a == b for a, b in zip(lo, hi))
