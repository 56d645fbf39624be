"""Re-asking a judge after an unreadable or incomplete reply (issue: recover instead of only counting).

Why: a real judge's format drift (a cut-off object, a missing id) cost points that a second request
usually recovers. The first request keeps its seed and text (so caches and seeded re-runs stay valid);
each re-ask k gets its own seed (``request_seed(..., attempt=k)``) and the parse error quoted back in a
short note. A re-ask's reply replaces the earlier one only when the case then has fewer unreadable
parts; the record keeps every attempt's reply and says which one was used.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from micon_tasks.judges.kinds import request_kind
from micon_tasks.judges.seeds import request_seed
from micon_tasks.types import JudgeResult

if TYPE_CHECKING:
    from micon_tasks.judges.base import Completion, JudgeRequest
    from micon_tasks.judges.prompts import Prompt

__all__ = ["REASK_NOTE", "DEFAULT_REASK", "reask_prompts", "n_errors", "attempt_record"]

#: what a re-ask adds to the prompt: the parse error quoted back, and what is wanted instead
REASK_NOTE = ("\n\nYour previous reply to this request could not be used: {error}. Reply again with only the "
              "JSON object described above, with every requested id and field.")
DEFAULT_REASK = 2


def n_errors(res: JudgeResult, req: JudgeRequest) -> int:
    n = sum(v.status == "error" for v in res.verdicts)
    return n + int(bool(req.story) and req.case.answer_set is not None and res.answer_set_status == "error")


def default_reask_names(res: JudgeResult, pairs: list[tuple[Prompt, Completion]]) -> list[str]:
    bad = {v.checkpoint_id for v in res.verdicts if v.status == "error"}
    names = [p.name for p, _ in pairs]
    return [n for n in names if n in bad] or (names if bad else [])


def prompt_error(name: str, res: JudgeResult) -> str:
    if name == "answer_set" and res.details.get("answer_set_error"):
        return str(res.details["answer_set_error"])
    errors = [v for v in res.verdicts if v.status == "error" and v.error]
    own = [v for v in errors if v.checkpoint_id == name]
    return (own or errors)[0].error if (own or errors) else "the reply was incomplete"  # type: ignore[return-value]


def quote_error(error: str, limit: int = 200) -> str:
    error = " ".join(str(error).split())
    return '"' + (error if len(error) <= limit else error[: limit - 3] + "...") + '"'


def attempt_record(pair: tuple[Prompt, Completion], res: JudgeResult, req: JudgeRequest) -> dict[str, Any]:
    p, c = pair
    return {"attempt": p.attempt, "raw": c.text, "error": c.error, "n_errors": n_errors(res, req)}


def reask_prompts(seed: int | None, req: JudgeRequest, res: JudgeResult, pairs: list[tuple[Prompt, Completion]],
                  originals: list[Prompt], attempt: int) -> list[Prompt]:
    """The prompts to ask again (a reply came back but could not be read), each with the error quoted."""
    kind = request_kind(req.kind)
    try:
        names = kind.reask_names(req, res) if kind.reask_names else default_reask_names(res, pairs)
    except Exception:  # noqa: BLE001 - a broken hook means no re-ask, never a lost case
        return []
    wanted = set(names)
    first = {p.name: p for p in originals}
    out = []
    for p, c in pairs:
        # Only replies that arrived: a transport failure was already retried by the backend.
        if p.name not in wanted or c.error is not None or c.text is None:
            continue
        base = first[p.name]
        error = prompt_error(p.name, res)
        out.append(replace(base, text=base.text + REASK_NOTE.format(error=quote_error(error)), attempt=attempt,
                           seed=request_seed(seed, req.task, req.case.case_id, p.name, attempt)))
    return out
