"""The ``rubric`` judge request kind: one prompt per criterion, each reply read as one 0-10 score.

A request is the text first, then the input images in dataset order, then the generated image last. Input
images (not the generated one) are shrunk by area to at most ``max_ref_pixels`` with each side floored to a
multiple of ``ref_multiple``; the card's ``request`` block also asks the backend for JPEG and for the
server's default temperature (``Prompt.options``). Exactly one request per criterion per item: the
authors' scripts send every criterion three times and keep the last parse; nothing here repeats a request.

Reading a reply: ``{"score": <number>, "reasoning": "..."}``, alone, fenced or inside prose (the project's
JSON extraction). A number within the scale is read; ``"7"`` (a string) or a reply that is only a number
is read and flagged ``salvaged``; anything else (no reply, a refusal, ``[7]``, 11, -1, NaN, two different
objects) is an ``error`` for that criterion, never a number and never a random stand-in.
"""

from __future__ import annotations

import json
import math
import re
import string
from dataclasses import fields
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from micon_tasks.judges.kinds import RequestKind, register_request_kind
from micon_tasks.judges.parser import extract_object
from micon_tasks.judges.prompts import GENERATED_LABEL, Prompt
from micon_tasks.suites.omnicontext.options import RubricOptions
from micon_tasks.types import JudgeResult, Verdict

if TYPE_CHECKING:
    from micon_tasks.judges.base import Completion, Judge, JudgeRequest

__all__ = ["HEADER", "INPUT_LABEL", "shrink_for_judge", "render_rubric", "assemble_rubric", "read_score", "wording",
           "template_text", "templates_used"]

HEADER = "header_v1"
INPUT_LABEL = "Input image {n}"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


@cache
def template_text(name: str) -> str:
    return resources.files("micon_tasks.suites.omnicontext.templates").joinpath(f"{name}.txt").read_text("utf-8")


def templates_used(opts: RubricOptions) -> dict[str, str]:
    """Template file -> sha256, for provenance (a changed wording is visible in every record)."""
    import hashlib

    names = [HEADER, *(c.template for c in opts.criteria), *(f"{c.template}_scene" for c in opts.criteria if c.scene_variant)]
    return {n: hashlib.sha256(template_text(n).encode()).hexdigest()[:16] for n in names}


def wording(opts: RubricOptions, task_type: str) -> dict[str, str]:
    """Criterion -> "scene" or "base": the scene wording goes to ``scene_*`` types, for criteria that have it on."""
    scene = str(task_type or "").startswith("scene_")
    return {c.name: "scene" if scene and c.scene_variant else "base" for c in opts.criteria}


def shrink_for_judge(image: Any, max_pixels: int | None, multiple: int | None) -> Any:
    """The input image as the judge gets it: at most ``max_pixels`` by area (aspect kept), then each side
    floored to a multiple of ``multiple`` (never below one multiple). 3000x2000 -> 1248x832; 500x375 ->
    496x368; 2048x2048 -> 1024x1024. Unchanged sizes return the image itself."""
    from PIL import Image

    from micon_tasks.images import to_rgb

    w, h = image.size
    if max_pixels and w * h > max_pixels:
        s = math.sqrt(max_pixels / (w * h))
        w, h = max(1, int(w * s + 1e-9)), max(1, int(h * s + 1e-9))
    if multiple:
        w, h = max(multiple, w // multiple * multiple), max(multiple, h // multiple * multiple)
    if (w, h) == image.size:
        return image  # untouched: a lazy image keeps its stored bytes for the backend
    return to_rgb(image).resize((w, h), Image.Resampling.LANCZOS)


def _options_for_backend(opts: RubricOptions) -> dict[str, Any]:
    r = opts.request
    return {"image_format": r["image_format"], "max_ref_pixels": r["max_ref_pixels"], "ref_multiple": r["ref_multiple"],
            "temperature": r["temperature"]}


_PROMPT_HAS_OPTIONS = "options" in {f.name for f in fields(Prompt)}


def render_rubric(req: JudgeRequest, judge: Judge) -> list[Prompt]:
    """One prompt per criterion, sharing one image list (so a backend encodes each image once)."""
    if getattr(judge, "logits", False):
        raise ValueError("rubric criteria need a judge that writes its reply; logits mode reads pass/fail candidates only")
    if req.scoring is None:
        raise ValueError("a rubric request needs its task's scoring settings (JudgeRequest.scoring)")
    opts = RubricOptions.from_options(req.scoring.options, task=req.task)
    case = req.case
    if not case.refs:
        raise ValueError("the item has no input images")
    r = opts.request
    images = [(INPUT_LABEL.format(n=n), shrink_for_judge(im, r["max_ref_pixels"], r["ref_multiple"]))
              for n, im in enumerate(case.refs, 1)]
    images.append((GENERATED_LABEL, req.image))
    header = string.Template(template_text(HEADER)).substitute(n_inputs=len(case.refs))
    words = wording(opts, case.extra.get("task_type") or "")
    prompts = []
    for c in opts.criteria:
        note = template_text(f"{c.template}_scene").rstrip("\n") if words[c.name] == "scene" else ""
        rule = string.Template(template_text(c.template)).substitute(scene_note=note, instruction=case.prompt.strip())
        p = Prompt(c.name, f"{header.rstrip()}\n\n{rule.rstrip()}\n", images)
        if _PROMPT_HAS_OPTIONS:
            p.options = _options_for_backend(opts)  # type: ignore[attr-defined]
        prompts.append(p)
    return prompts


def read_score(text: str | None, name: str, *, scale: tuple[float, float] = (0.0, 10.0), note: str | None = None) -> Verdict:
    """One criterion's verdict from its reply: ``scored`` with ``value``, or ``error`` saying why not."""
    suffix = f" ({note})" if note else ""
    lo, hi = scale

    def error(why: str) -> Verdict:
        return Verdict(name, "error", raw=text, error=f"{why}{suffix}")

    if text is None or not text.strip():
        return error("empty reply (a refusal or nothing generated)")
    body, reasoning, salvaged = text.strip(), None, False
    if _NUMBER.fullmatch(body):  # a reply that is only a number: unambiguous, read and flagged
        value, salvaged = float(body), True
    else:
        obj, why = extract_object(text, "score")
        if obj is None:
            return error(why or "no score in the reply")
        s = obj["score"]
        for key in ("reasoning", "reason"):
            if isinstance(obj.get(key), str):
                reasoning = obj[key]
                break
        if isinstance(s, bool):
            return error(f"'score' is {json.dumps(s)}, expected a number from {lo:g} to {hi:g}")
        if isinstance(s, (int, float)):
            value = float(s)
        elif isinstance(s, str) and _NUMBER.fullmatch(s.strip()):
            value, salvaged = float(s.strip()), True
        else:
            return error(f"'score' is {json.dumps(s)[:40]}, expected a number from {lo:g} to {hi:g}")
    if not math.isfinite(value) or not lo <= value <= hi:
        return error(f"'score' is {value:g}, outside {lo:g}..{hi:g} (never clamped)")
    return Verdict(name, "scored", raw=text, rationale=reasoning, value=value, salvaged=salvaged)


def assemble_rubric(req: JudgeRequest, pairs: list[tuple[Prompt, Completion]], prov: dict[str, Any]) -> JudgeResult:
    """Every criterion gets exactly one verdict, in the card's order; a criterion without a reply is an error."""
    opts = RubricOptions.from_options(req.scoring.options, task=req.task)
    read: dict[str, Verdict] = {}
    raws: dict[str, str | None] = {}
    attempts = 0
    for p, c in pairs:
        attempts += c.attempts
        raws[p.name] = c.text
        if p.name in opts.names:
            read[p.name] = (Verdict(p.name, "error", error=c.error) if c.error is not None
                            else read_score(c.text, p.name, scale=opts.scale, note=c.note))
    verdicts = [read.get(n) or Verdict(n, "error", error="no judge reply for this criterion") for n in opts.names]
    details = {
        "judge_model": prov.get("model"),  # kept in the record: the report says whose scores these are
        "wording": wording(opts, req.case.extra.get("task_type") or ""),
        "templates": templates_used(opts),
        "request": _options_for_backend(opts),
    }
    return JudgeResult(verdicts=verdicts, raw=json.dumps(raws, ensure_ascii=False),
                       provenance={**prov, "cached": False, "attempts": attempts}, details=details)


register_request_kind(RequestKind("rubric", render_rubric, assemble_rubric))
