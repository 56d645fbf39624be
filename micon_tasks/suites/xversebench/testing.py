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

__all__ = ["build_tiny_dino", "build_tiny_siglip", "build_tiny_florence2", "build_tiny_sam2", "save_random_aes_head", "StubFaceDetector", "StubObjectDetector", "StubSegmenter"]


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


def build_tiny_florence2(path: str | os.PathLike[str], *, seed: int = 0, size: int = 64) -> Path:
    """A tiny Florence-2 (DaViT + BART, ~0.15 M parameters) with an offline byte-level BART tokenizer that
    knows the ``<loc_N>`` tokens, and its processor, saved under ``path``. Its replies are noise."""
    import torch
    from transformers import (
        BartTokenizer,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    from micon_tasks.testing.tiny_tokenizers import _byte_symbols

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok = BartTokenizer(vocab={t: i for i, t in enumerate(specials + _byte_symbols())}, merges=[], bos_token="<s>",
                        eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                        extra_special_tokens={"image_token": "<image>"})
    tok.add_tokens([f"<loc_{i}>" for i in range(1000)] + ["<od>", "</od>", "<poly>", "</poly>", "<sep>"],
                   special_tokens=True)
    images = CLIPImageProcessor(size={"height": size, "width": size}, crop_size={"height": size, "width": size},
                                do_center_crop=False, image_seq_length=(size // 32) ** 2 + 1)
    processor = Florence2Processor(image_processor=images, tokenizer=tok,
                                   post_processor_config={"description_with_bboxes_or_polygons": {}})
    torch.manual_seed(seed)
    config = Florence2Config(
        vision_config=dict(depths=[1, 1, 1, 1], embed_dim=[8, 16, 32, 32], num_heads=[1, 1, 2, 2],
                           num_groups=[1, 1, 2, 2], window_size=2, projection_dim=32, drop_path_rate=0.0),
        text_config=dict(model_type="bart", vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                         max_position_embeddings=128, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.eos_token_id),
        image_token_id=tok.image_token_id)
    Florence2ForConditionalGeneration(config).eval().save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def build_tiny_sam2(path: str | os.PathLike[str], *, seed: int = 0, size: int = 256) -> Path:
    """A tiny SAM 2 (Hiera backbone of 5 blocks, ~0.35 M parameters, 256 px input) and its processor."""
    import torch
    from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor

    backbone = dict(model_type="sam2_hiera_det_model", hidden_size=16, num_attention_heads=1, image_size=[size, size],
                    blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                    num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[8, 4, 4, 4],
                    global_attention_blocks=[3], window_positional_embedding_background_size=[4, 4])
    vision = dict(backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16], fpn_hidden_size=32,
                  backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2])
    torch.manual_seed(seed)
    config = Sam2Config(vision_config=vision, prompt_encoder_config=dict(hidden_size=32, image_size=size, patch_size=16),
                        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32))
    Sam2Model(config).eval().save_pretrained(path)
    Sam2Processor(image_processor=Sam2ImageProcessor(size={"height": size, "width": size})).save_pretrained(path)
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

    def load(self) -> None:
        pass  # a rule: nothing to load

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

    def load(self) -> None:
        pass

    def detect(self, items: Sequence[tuple[Any, str]]) -> list[list[tuple[float, float, float, float]]]:
        self.calls.extend((im.size, label) for im, label in items)
        return [list(self.rule(im, label)) for im, label in items]

    def describe(self) -> dict[str, Any]:
        return {"detector": "micon-stub (scores MEAN NOTHING)"}


class StubSegmenter:
    """A rule instead of SAM 2: by default the mask is the whole box."""

    def __init__(self, rule: Callable[[Any, Sequence[float]], Any] | None = None):
        self.rule = rule or _box_mask

    def load(self) -> None:
        pass

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
    """True for a picture of one flat colour (every band's minimum equals its maximum)."""
    return all(lo == hi for lo, hi in image.convert("RGB").getextrema())
