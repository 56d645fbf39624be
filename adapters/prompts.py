"""Mapping the benchmark's mentions of references ("image 1", "the second image", "RA") to a model's syntax.

Why: MICON instructions name references in plain words, while each model has its own convention
(OmniGen wants ``<img><|image_k|></img>`` placeholders, Qwen-Image-Edit says "Picture k", a stitched
canvas has left/middle/right panels). One mention finder, one rewrite per adapter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Mention", "find_mentions", "rewrite_mentions", "omnigen_prompt", "qwen_picture_prompt",
           "panel_prompt"]

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "1st": 1, "2nd": 2, "3rd": 3,
             "4th": 4, "5th": 5}
_NOUN = r"(?:reference\s+image|reference|image|picture|img|photo)"
_PATTERN = re.compile(
    rf"(?P<numbered>\b{_NOUN}\s*#?\s*(?P<num>[1-9][0-9]*)\b)"
    rf"|(?P<ordinal>\b(?:the\s+)?(?P<ord>{'|'.join(_ORDINALS)})\s+{_NOUN}\b)"
    r"|(?P<role>\bR(?P<role_letter>[A-E])\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    index: int  # 1-based reference number
    text: str


def find_mentions(prompt: str, n_refs: int) -> list[Mention]:
    """Every mention of reference 1..n_refs in ``prompt``, in order ("RA" counts only in capitals)."""
    out = []
    for m in _PATTERN.finditer(prompt):
        if m.group("numbered"):
            index = int(m.group("num"))
        elif m.group("ordinal"):
            index = _ORDINALS[m.group("ord").lower()]
        else:
            if not m.group("role").isupper():
                continue
            index = ord(m.group("role_letter")) - ord("A") + 1
        if 1 <= index <= n_refs:
            out.append(Mention(m.start(), m.end(), index, m.group(0)))
    return out


def rewrite_mentions(prompt: str, n_refs: int, render: Callable[[Mention, bool], str]) -> tuple[str, set[int]]:
    """Replace each mention by ``render(mention, is_first_mention_of_that_ref)``; also return the refs seen."""
    pieces, seen, pos = [], set(), 0
    for mention in find_mentions(prompt, n_refs):
        pieces.append(prompt[pos:mention.start])
        pieces.append(render(mention, mention.index not in seen))
        seen.add(mention.index)
        pos = mention.end
    pieces.append(prompt[pos:])
    return "".join(pieces), seen


def omnigen_prompt(prompt: str, n_refs: int) -> str:
    """OmniGen: each reference's placeholder exactly once (its first mention); unmentioned refs are listed
    before the instruction, so every input image has its placeholder as the processor requires."""

    def tag(k: int) -> str:
        return f"<img><|image_{k}|></img>"

    text, seen = rewrite_mentions(prompt, n_refs, lambda m, first: f"{m.text} {tag(m.index)}" if first else m.text)
    missing = [k for k in range(1, n_refs + 1) if k not in seen]
    if missing:
        text = " ".join(f"image {k}: {tag(k)}" for k in missing) + ". " + text
    return text


def qwen_picture_prompt(prompt: str, n_refs: int) -> str:
    """Qwen-Image-Edit-Plus labels its inputs "Picture k" in the chat template: use the same words."""
    return rewrite_mentions(prompt, n_refs, lambda m, first: f"Picture {m.index}")[0]


def panel_prompt(prompt: str, n_refs: int) -> str:
    """References stitched left to right into one canvas: "image k" becomes the k-th panel's position."""
    if n_refs == 1:
        names = {1: "the input image"}
    elif n_refs == 2:
        names = {1: "the left panel", 2: "the right panel"}
    elif n_refs == 3:
        names = {1: "the left panel", 2: "the middle panel", 3: "the right panel"}
    else:
        names = {k: f"panel {k} from the left" for k in range(1, n_refs + 1)}

    def render(m: Mention, first: bool) -> str:
        name = names[m.index]
        return name[0].upper() + name[1:] if m.text[0].isupper() else name

    return rewrite_mentions(prompt, n_refs, render)[0]
