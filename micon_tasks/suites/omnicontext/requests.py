"""The ``rubric`` judge request kind: one prompt per criterion, each reply read as one 0-10 score.

A request is the text first, then the input images in dataset order, then the generated image last. The
card's ``request`` block reaches the backend as ``Prompt.options``: input images (not the generated one)
shrunk by area to at most ``max_ref_pixels`` with each side floored to a multiple of ``ref_multiple``
(``micon_tasks.judges.images``), JPEG, and the server's default temperature. Exactly one request per
criterion per item (the authors' scripts send every criterion three times and keep the last parse); an
unreadable reply is re-asked by the judge as any other kind's is (``reask``), and recorded.

Reading a reply: ``{"score": <number>, "reasoning": "..."}``, alone, fenced or inside prose (the project's
score reader, ``parse_score_reply``). A number from 0 to 10 is read; ``"7"`` (a string) or a reply that is
only a number is read and flagged ``salvaged``; anything else (no reply, a refusal, ``[7]``, 11, -1, NaN, two different
objects) is an ``error`` for that criterion, never a number and never a random stand-in.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from micon_tasks.judges.kinds import RequestKind, register_request_kind
from micon_tasks.judges.parser import parse_score_reply
from micon_tasks.judges.prompts import GENERATED_LABEL, Prompt
from micon_tasks.suites.omnicontext.options import RubricOptions
from micon_tasks.types import JudgeResult, Verdict

if TYPE_CHECKING:
    from micon_tasks.judges.base import Completion, Judge, JudgeRequest

__all__ = ["HEADER", "INPUT_LABEL", "render_rubric", "assemble_rubric", "read_score", "wording", "template_text",
           "templates_used", "backend_options"]

HEADER = "header_v1"
INPUT_LABEL = "Input image {n}"
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


@cache
def template_text(name: str) -> str:
    return resources.files("micon_tasks.suites.omnicontext.templates").joinpath(f"{name}.txt").read_text("utf-8")


def templates_used(opts: RubricOptions) -> dict[str, str]:
    """Template file -> sha256, for provenance (a changed wording is visible in every record)."""
    names = [HEADER, *(c.template for c in opts.criteria), *(f"{c.template}_scene" for c in opts.criteria if c.scene_variant)]
    return {n: hashlib.sha256(template_text(n).encode()).hexdigest()[:16] for n in names}


def wording(opts: RubricOptions, task_type: str) -> dict[str, str]:
    """Criterion -> "scene" or "base": the scene wording goes to ``scene_*`` types, for criteria that have it on."""
    scene = str(task_type or "").startswith("scene_")
    return {c.name: "scene" if scene and c.scene_variant else "base" for c in opts.criteria}


def backend_options(opts: RubricOptions) -> dict[str, Any]:
    """The card's ``request`` block as ``Prompt.options``; a null size setting is left to the judge's default,
    a null temperature is sent as None (the server's default)."""
    r = opts.request
    out: dict[str, Any] = {"image_format": r["image_format"], "temperature": r["temperature"]}
    out.update({k: r[k] for k in ("max_ref_pixels", "ref_multiple") if r[k] is not None})
    return out


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
    images = [(INPUT_LABEL.format(n=n), im) for n, im in enumerate(case.refs, 1)]
    images.append((GENERATED_LABEL, req.image))
    header = string.Template(template_text(HEADER)).substitute(n_inputs=len(case.refs))
    words = wording(opts, case.extra.get("task_type") or "")
    options = backend_options(opts)
    prompts = []
    for c in opts.criteria:
        note = template_text(f"{c.template}_scene").rstrip("\n") if words[c.name] == "scene" else ""
        rule = string.Template(template_text(c.template)).substitute(scene_note=note, instruction=case.prompt.strip())
        prompts.append(Prompt(c.name, f"{header.rstrip()}\n\n{rule.rstrip()}\n", images, options=dict(options)))
    return prompts


def read_score(text: str | None, name: str, *, note: str | None = None) -> Verdict:
    """One criterion's verdict from its reply: ``scored`` with ``value``, or ``error`` saying why not."""
    body = (text or "").strip()
    if _NUMBER.fullmatch(body):  # a reply that is only a number (the authors accept it): read and flagged
        value, salvaged, reasoning = float(body), True, None
        if not math.isfinite(value) or not 0 <= value <= 10:
            return Verdict(name, "error", raw=text, error=f"the reply {body} is outside 0..10 (never clamped)"
                           + (f" ({note})" if note else ""))
    else:
        parsed = parse_score_reply(text, note=note, rationale_keys=("reasoning", "reason"))  # one pass over the reply
        if parsed.score is None:
            return Verdict(name, "error", raw=text, error=parsed.error)
        value, salvaged, reasoning = parsed.score, parsed.salvaged, parsed.rationale
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
                            else read_score(c.text, p.name, note=c.note))
    verdicts = [read.get(n) or Verdict(n, "error", error="no judge reply for this criterion") for n in opts.names]
    details = {
        "judge_model": prov.get("model"),  # kept in the record: the report says whose scores these are
        "wording": wording(opts, req.case.extra.get("task_type") or ""),
        "templates": templates_used(opts),
        "request": backend_options(opts),
    }
    return JudgeResult(verdicts=verdicts, raw=json.dumps(raws, ensure_ascii=False),
                       provenance={**prov, "cached": False, "attempts": attempts}, details=details)


register_request_kind(RequestKind("rubric", render_rubric, assemble_rubric))
