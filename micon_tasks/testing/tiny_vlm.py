"""A tiny random-weight Qwen2-VL judge model, built offline, for tests and the offline demo.

Why: the ``hf`` judge must be exercised end to end (from_pretrained, chat template, image
processor, generate / logits) without downloading anything. The model has about 0.1 M random
parameters, so its answers are noise: in ``generate`` mode the parser marks every checkpoint
``error``; in ``logits`` mode it yields pass/fail verdicts that mean nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["build_tiny_qwen_vl"]


def build_tiny_qwen_vl(path: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Save a tiny Qwen2-VL (model + tokenizer + image processor + processor config) under ``path``.

    ``AutoModelForImageTextToText.from_pretrained(path)`` and ``AutoProcessor.from_pretrained(path)``
    load it back; the same seed gives the same weights.
    """
    import torch
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    from micon_tasks.testing.tiny_tokenizers import qwen2_tokenizer

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tok = qwen2_tokenizer()
    markers = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in markers}
    hidden, heads = 32, 2
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": hidden,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            # head_dim 16 -> 8 rotary frequencies, split over (time, height, width)
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "tie_word_embeddings": True,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
            "bos_token_id": None,
        },
        vision_config={
            "depth": 1,
            "embed_dim": 32,
            "hidden_size": hidden,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_channels": 3,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.do_sample = False
    # Few vision tokens per image keep CPU runs fast: every image becomes 2x2 merged patches at most.
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56)
    # With torchvision installed the video processor can be built, so AutoProcessor round-trips as is
    # (TINY_MODELS.md 0 describes the workaround needed without it).
    video_processor = Qwen2VLVideoProcessor(min_pixels=28 * 28, max_pixels=56 * 56)
    processor = Qwen2VLProcessor(
        image_processor=image_processor, tokenizer=tok, video_processor=video_processor, chat_template=tok.chat_template
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
