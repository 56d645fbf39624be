"""Read judge replies into verdicts. Strict on meaning, lenient only on where the JSON sits.

Accepted: the documented object, alone, in a markdown fence, or with prose around it. Everything
else becomes ``error`` for the checkpoints it cannot read: a missing checkpoint, a pass value other
than the integers 0/1 or JSON true/false (the string "1" included), a repeated id, a truncated or
unreadable reply, a refusal. Nothing is guessed and nothing is dropped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from micon_tasks.types import Verdict

__all__ = [
    "PARSER_VERSION",
    "ParsedScore",
    "extract_object",
    "parse_checkpoint_reply",
    "parse_single_reply",
    "parse_score_reply",
]

PARSER_VERSION = "1"

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_no_duplicates)


def extract_object(text: str | None, required_key: str) -> tuple[dict[str, Any] | None, str | None]:
    """Find the one JSON object in ``text`` that holds ``required_key``.

    Returns (object, None) or (None, why not). Tries the whole reply, then fenced blocks, then every
    ``{`` position (prose around the object). Two different candidate objects are ambiguous: error.
    """
    if text is None or not text.strip():
        return None, "empty reply"
    body = text.strip()
    try:
        obj = _loads(body)
        if isinstance(obj, dict) and required_key in obj:
            return obj, None
        if isinstance(obj, dict):
            return None, f"reply JSON has no {required_key!r} key (keys: {sorted(obj)[:8]})"
        return None, f"reply JSON is a {type(obj).__name__}, not an object"
    except _DuplicateKey as exc:
        return None, f"reply JSON repeats the key {exc.args[0]!r}"
    except ValueError:
        pass

    found: list[dict[str, Any]] = []
    dup_error: str | None = None
    for block in _FENCE.findall(body):
        try:
            obj = _loads(block.strip())
        except _DuplicateKey as exc:
            dup_error = f"reply JSON repeats the key {exc.args[0]!r}"
            continue
        except ValueError:
            continue
        if isinstance(obj, dict) and required_key in obj:
            found.append(obj)
    if not found:
        decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates)
        pos = body.find("{")
        while pos != -1:
            try:
                obj, end = decoder.raw_decode(body, pos)
            except _DuplicateKey as exc:
                dup_error = f"reply JSON repeats the key {exc.args[0]!r}"
                pos = body.find("{", pos + 1)
                continue
            except ValueError:
                pos = body.find("{", pos + 1)
                continue
            if isinstance(obj, dict) and required_key in obj:
                found.append(obj)
                pos = body.find("{", end)
            else:
                pos = body.find("{", pos + 1)
    distinct = {json.dumps(o, sort_keys=True) for o in found}
    if len(distinct) == 1:
        return found[0], None
    if len(distinct) > 1:
        return None, f"reply holds {len(distinct)} different {required_key!r} objects (ambiguous)"
    if dup_error:
        return None, dup_error
    if "{" in body and body.count("{") > body.count("}"):
        return None, "reply JSON is cut off (truncated)"
    return None, f"no JSON object with {required_key!r} in the reply"


def _read_pass(value: Any) -> tuple[str | None, str | None, str | None]:
    """(status, rationale, error) from one checkpoint's entry ``{"pass": 0|1, "reason": ...}``."""
    if not isinstance(value, dict):
        return None, None, f'entry is {type(value).__name__} {json.dumps(value)[:40]}, expected {{"pass": 0 or 1}}'
    if "pass" not in value:
        return None, None, f"entry has no 'pass' key (keys: {sorted(value)[:6]})"
    p = value["pass"]
    reason = value.get("reason")
    rationale = reason if isinstance(reason, str) else None
    if isinstance(p, bool):
        return ("pass" if p else "fail"), rationale, None
    if isinstance(p, int) and p in (0, 1):
        return ("pass" if p == 1 else "fail"), rationale, None
    return None, None, f"'pass' is {json.dumps(p)[:40]}, expected the integer 0 or 1"


def parse_checkpoint_reply(
    text: str | None, checkpoint_ids: list[str], *, note: str | None = None
) -> tuple[list[Verdict], dict[str, Any]]:
    """Verdicts for ``checkpoint_ids`` (same order) from a whole-case reply, plus reply extras.

    ``note`` (e.g. "finish_reason=length") is appended to every error message.
    """
    suffix = f" ({note})" if note else ""
    obj, why = extract_object(text, "checkpoint_results")
    if obj is None:
        return [Verdict(cid, "error", raw=text, error=f"{why}{suffix}") for cid in checkpoint_ids], {}
    results = obj["checkpoint_results"]
    overall = obj.get("rationale") if isinstance(obj.get("rationale"), str) else None
    extras = {k: obj[k] for k in ("hard_constraint_results", "flags", "rationale") if k in obj}
    if not isinstance(results, dict):
        err = f"'checkpoint_results' is a {type(results).__name__}, expected an object{suffix}"
        return [Verdict(cid, "error", raw=text, error=err) for cid in checkpoint_ids], extras
    unknown = sorted(set(results) - set(checkpoint_ids))
    if unknown:
        extras["unknown_ids"] = unknown
    verdicts = []
    for cid in checkpoint_ids:
        if cid not in results:
            verdicts.append(Verdict(cid, "error", raw=text, error=f"checkpoint missing from the reply{suffix}"))
            continue
        status, rationale, err = _read_pass(results[cid])
        piece = json.dumps(results[cid], ensure_ascii=False)
        if status is None:
            verdicts.append(Verdict(cid, "error", raw=piece, error=f"{err}{suffix}"))
        else:
            verdicts.append(Verdict(cid, status, raw=piece, rationale=rationale or overall))  # type: ignore[arg-type]
    return verdicts, extras


def parse_single_reply(text: str | None, checkpoint_id: str, *, note: str | None = None) -> Verdict:
    """One checkpoint's verdict from a per-checkpoint reply ``{"pass": 0|1, "reason": ...}``."""
    suffix = f" ({note})" if note else ""
    obj, why = extract_object(text, "pass")
    if obj is None:
        return Verdict(checkpoint_id, "error", raw=text, error=f"{why}{suffix}")
    status, rationale, err = _read_pass(obj)
    if status is None:
        return Verdict(checkpoint_id, "error", raw=text, error=f"{err}{suffix}")
    return Verdict(checkpoint_id, status, raw=text, rationale=rationale)  # type: ignore[arg-type]


@dataclass
class ParsedScore:
    score: float | None
    status: str  # "pass" = a score was read; "error" = unreadable (score None, never a stand-in)
    rationale: str | None = None
    error: str | None = None


def parse_score_reply(text: str | None, *, note: str | None = None) -> ParsedScore:
    """The story answer-set score: an integer 0..10 under ``"score"`` (7.0 is accepted, 7.5 is not)."""
    suffix = f" ({note})" if note else ""
    obj, why = extract_object(text, "score")
    if obj is None:
        return ParsedScore(None, "error", error=f"{why}{suffix}")
    s = obj["score"]
    reason = obj.get("reason") if isinstance(obj.get("reason"), str) else None
    if isinstance(s, bool) or not isinstance(s, (int, float)):
        return ParsedScore(None, "error", error=f"'score' is {json.dumps(s)[:40]}, expected an integer 0..10{suffix}")
    if not math.isfinite(s) or float(s) != int(s) or not 0 <= s <= 10:
        return ParsedScore(None, "error", error=f"'score' is {s}, expected an integer 0..10{suffix}")
    return ParsedScore(float(int(s)), "pass", rationale=reason)
