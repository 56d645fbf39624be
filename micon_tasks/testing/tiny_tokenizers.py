"""Offline tokenizers built from an in-memory vocab, with no files and no Hub access.

Why: the tiny random-weight models used by tests and the offline demo need real tokenizer classes
(pipelines type-check them and call their chat templates), but nothing may be downloaded. transformers
v5 tokenizer classes accept a vocab directly, so each builder here makes a small, deterministic
tokenizer of the right class. They all round-trip through ``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

import string

__all__ = [
    "QWEN_CHAT_TEMPLATE",
    "QWEN_SPECIAL_TOKENS",
    "qwen2_tokenizer",
    "llama_tokenizer",
    "clip_tokenizer",
    "t5_tokenizer",
]

#: Qwen chat specials (vision markers included) in a fixed order, so token ids are stable.
QWEN_SPECIAL_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
)

# A small Qwen-style chat template written for this project. It accepts string content or a list of
# {"type": "text"|"image"|"video", ...} parts, an optional system turn, add_generation_prompt and
# enable_thinking (False adds the empty think block that Qwen3 templates emit).
QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and not enable_thinking -%}{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif -%}"
    "{%- endif -%}"
)


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE uses for raw bytes (the GPT-2 convention).

    Printable Latin-1 bytes map to themselves; the remaining bytes are shifted to code points 256+
    in byte order, so every byte has a visible, whitespace-free symbol.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in keep:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def qwen2_tokenizer():
    """Qwen2 byte-level BPE: 256 byte symbols, no merges, plus the Qwen specials and a chat template.

    Every string encodes (one token per byte), so any prompt works; ids are stable across runs.
    """
    from transformers import Qwen2Tokenizer

    vocab = {"<|endoftext|>": 0, **{ch: i + 1 for i, ch in enumerate(_byte_symbols())}}
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL_TOKENS)})
    tok.eos_token = "<|im_end|>"
    tok.chat_template = QWEN_CHAT_TEMPLATE
    return tok


def llama_tokenizer():
    """Llama-style (Metaspace + byte fallback): <unk>=0 <s>=1 </s>=2, the 256 byte tokens, ASCII, "▁"."""
    from transformers import LlamaTokenizer

    tokens = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    tokens += [c for c in string.printable if c.strip() and c not in tokens] + ["\u2581"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = LlamaTokenizer(vocab=vocab, merges=[])
    tok.add_bos_token = True
    tok.update_post_processor()
    tok.pad_token = "<unk>"
    return tok


def clip_tokenizer():
    """CLIP BPE over byte symbols and their end-of-word forms; model_max_length=77 as pipelines expect."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    tokens = ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)]
    vocab = {t: i for i, t in enumerate(tokens)}
    # Without model_max_length=77 the pipelines pass a huge max_length and fail with OverflowError.
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def t5_tokenizer():
    """T5 Unigram over single printable characters (no extra ids)."""
    from transformers import T5Tokenizer

    chars = [c for c in string.printable if c.strip()]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0), *((c, -3.0) for c in chars)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, unk_id=2)
