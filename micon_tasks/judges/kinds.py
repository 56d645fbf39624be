"""How a vision-language judge asks about, and reads back, each scoring kind's requests.

Why a table: the Judge base class owns the cache, the backends' completions, provenance and the
never-raise-for-one-case rule; what differs between kinds is only which prompts a request needs
(``render``) and how the replies become a :class:`JudgeResult` (``assemble``). A suite adds its kind with
``register_request_kind`` and no branch on its name appears anywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from micon_tasks.errors import ConfigError
from micon_tasks.judges.parser import parse_checkpoint_reply, parse_score_reply, parse_single_reply
from micon_tasks.judges.prompts import Prompt, render_prompts
from micon_tasks.types import JudgeResult, Verdict

if TYPE_CHECKING:
    from micon_tasks.judges.base import Completion, Judge, JudgeRequest

__all__ = ["RequestKind", "register_request_kind", "request_kind", "NO_ANSWER_SET"]

NO_ANSWER_SET = "case has no answer set"


@dataclass(frozen=True)
class RequestKind:
    """``render(request, judge) -> prompts``; ``assemble(request, pairs, provenance) -> JudgeResult``.

    ``reask_names(request, result) -> prompt names`` (optional) says which prompts to ask again after an
    unreadable or incomplete reply; without it the Judge re-asks the prompts named by ``error`` verdicts
    (or every prompt when no verdict names one).
    """

    name: str
    render: Callable[[JudgeRequest, Judge], list[Prompt]]
    assemble: Callable[[JudgeRequest, list[tuple[Prompt, Completion]], dict[str, Any]], JudgeResult]
    reask_names: Callable[[JudgeRequest, JudgeResult], list[str]] | None = None


_KINDS: dict[str, RequestKind] = {}


def register_request_kind(kind: RequestKind) -> None:
    _KINDS[kind.name] = kind


def request_kind(name: str) -> RequestKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise ConfigError(f"no judge request kind {name!r}; known: {', '.join(sorted(_KINDS))}") from None


# -- checkpoints (MICON-Bench) ----------------------------------------------------------------------
def _render_checkpoints(req: JudgeRequest, judge: Judge) -> list[Prompt]:
    if not req.checkpoints:
        raise ValueError("empty checkpoint set")
    return render_prompts(req.case, req.image, list(req.checkpoints), story=req.story, request_mode=judge.request_mode,
                          logits=judge.logits, version=judge.template_version)


def _assemble_checkpoints(req: JudgeRequest, pairs: list[tuple[Prompt, Completion]],
                          prov: dict[str, Any]) -> JudgeResult:
    verdicts: list[Verdict] = []
    raws: dict[str, str | None] = {}
    extras: dict[str, Any] = {}
    attempts = 0
    ids = [cp.id for cp in req.checkpoints]
    ans_score, ans_status = None, ("error" if req.story else None)
    ans_note: dict[str, Any] = {}
    if req.story and req.case.answer_set is None:
        # Only the answer-set part fails; the checkpoints below are judged as for any case.
        where = f"task {req.task!r}, case {req.case.case_id!r}"
        ans_note = {"answer_set_error": f"{where}: {NO_ANSWER_SET}; the answer-set score is not judged"}
    for p, c in pairs:
        attempts += c.attempts
        raws[p.name] = c.text
        if p.name == "answer_set":
            if c.error is not None:
                ans_note = {"answer_set_error": c.error}
                continue
            parsed = parse_score_reply(c.text, note=c.note)
            ans_score, ans_status = parsed.score, parsed.status
            if parsed.error:
                ans_note = {"answer_set_error": parsed.error}
            else:
                ans_note = {"answer_set_rationale": parsed.rationale}
                if parsed.salvaged:
                    ans_note["answer_set_salvaged"] = True
        elif p.name == "checkpoints":
            if c.error is not None:
                verdicts = [Verdict(cid, "error", error=c.error) for cid in ids]
                continue
            verdicts, extras = parse_checkpoint_reply(c.text, ids, note=c.note)
        else:
            if c.error is not None:
                verdicts.append(Verdict(p.name, "error", error=c.error))
            else:
                verdicts.append(parse_single_reply(c.text, p.name, note=c.note))
    got = {v.checkpoint_id for v in verdicts}
    missing = [cid for cid in ids if cid not in got]
    verdicts.extend(Verdict(cid, "error", error="no judge reply for this checkpoint") for cid in missing)
    order = {cid: n for n, cid in enumerate(ids)}
    verdicts.sort(key=lambda v: order[v.checkpoint_id])
    return JudgeResult(
        verdicts=verdicts,
        answer_set_score=ans_score,
        answer_set_status=ans_status,  # type: ignore[arg-type]
        raw=json.dumps(raws, ensure_ascii=False),
        provenance={**prov, "cached": False, "attempts": attempts},
        details={**extras, **ans_note},
    )


def _reask_checkpoints(req: JudgeRequest, result: JudgeResult) -> list[str]:
    """The prompts whose reply left something unreadable: the whole-case prompt (or, per checkpoint, the
    unreadable checkpoints' own prompts) and the story answer set. The Judge keeps the names it asked."""
    bad = sorted({v.checkpoint_id for v in result.verdicts if v.status == "error"})
    names = (["checkpoints", *bad] if bad else [])
    if req.story and req.case.answer_set is not None and result.answer_set_status == "error":
        names.append("answer_set")
    return names


register_request_kind(RequestKind("checkpoints", _render_checkpoints, _assemble_checkpoints, _reask_checkpoints))
