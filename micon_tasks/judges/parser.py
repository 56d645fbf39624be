"""Read judge replies into verdicts. Strict on meaning, lenient only on where the JSON sits.

Accepted: the documented object, alone, in a markdown fence, or with prose around it. A verdict in an
unambiguous but non-standard encoding (``1.0``, ``"1"``, ``"true"``, ``"pass"`` in any case, or a bare
value instead of ``{"pass": ...}``) is read and flagged ``salvaged``. Everything else becomes ``error``
for the checkpoints it cannot read: a missing checkpoint, any other pass value, a repeated id, a
truncated or unreadable reply, a refusal. Non-finite numbers (NaN, Infinity) in the reply's extras are
an error for that field. Nothing is guessed and nothing is dropped.
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

PARSER_VERSION = "2"  # 2: salvaged encodings, answer-set scores 0..10 with fractions

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


_SALVAGE_TEXT = {"1": "pass", "0": "fail", "true": "pass", "false": "fail", "pass": "pass", "fail": "fail"}


def _salvage(p: Any) -> str | None:
    """"pass"/"fail" from an unambiguous non-standard encoding, else None."""
    if isinstance(p, bool):
        return "pass" if p else "fail"
    if isinstance(p, (int, float)) and p in (0, 1):
        return "pass" if p == 1 else "fail"
    if isinstance(p, str):
        return _SALVAGE_TEXT.get(p.strip().lower())
    return None


def _read_pass(value: Any) -> tuple[str | None, str | None, str | None, bool]:
    """(status, rationale, error, salvaged) from one checkpoint's entry ``{"pass": 0|1, "reason": ...}``."""
    if not isinstance(value, dict):
        status = _salvage(value)
        if status is not None:  # a bare 1 / "pass" / true instead of {"pass": 1}
            return status, None, None, True
        return None, None, f'entry is {type(value).__name__} {_show(value)}, expected {{"pass": 0 or 1}}', False
    if "pass" not in value:
        return None, None, f"entry has no 'pass' key (keys: {sorted(value)[:6]})", False
    p = value["pass"]
    reason = value.get("reason")
    rationale = reason if isinstance(reason, str) else None
    if isinstance(p, bool):
        return ("pass" if p else "fail"), rationale, None, False
    if isinstance(p, int) and p in (0, 1):
        return ("pass" if p == 1 else "fail"), rationale, None, False
    status = _salvage(p)
    if status is not None:
        return status, rationale, None, True
    return None, None, f"'pass' is {_show(p)}, expected the integer 0 or 1", False


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)[:40]


def _finite(value: Any) -> bool:
    """Whether a JSON value holds no NaN or Infinity anywhere (they cannot be written as JSON)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _extras(obj: dict[str, Any]) -> dict[str, Any]:
    """The reply's extra fields; a field holding a non-finite number is an error for that field."""
    extras: dict[str, Any] = {}
    for k in ("hard_constraint_results", "flags", "rationale"):
        if k not in obj:
            continue
        if _finite(obj[k]):
            extras[k] = obj[k]
        else:
            extras.setdefault("field_errors", {})[k] = "holds a non-finite number (NaN or Infinity)"
    return extras


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
    extras = _extras(obj)
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
        status, rationale, err, salvaged = _read_pass(results[cid])
        piece = json.dumps(results[cid], ensure_ascii=False)
        if status is None:
            verdicts.append(Verdict(cid, "error", raw=piece, error=f"{err}{suffix}"))
        else:
            verdicts.append(Verdict(cid, status, raw=piece, rationale=rationale or overall,  # type: ignore[arg-type]
                                    salvaged=salvaged))
    return verdicts, extras


def parse_single_reply(text: str | None, checkpoint_id: str, *, note: str | None = None) -> Verdict:
    """One checkpoint's verdict from a per-checkpoint reply ``{"pass": 0|1, "reason": ...}``."""
    suffix = f" ({note})" if note else ""
    obj, why = extract_object(text, "pass")
    if obj is None:
        return Verdict(checkpoint_id, "error", raw=text, error=f"{why}{suffix}")
    status, rationale, err, salvaged = _read_pass(obj)
    if status is None:
        return Verdict(checkpoint_id, "error", raw=text, error=f"{err}{suffix}")
    return Verdict(checkpoint_id, status, raw=text, rationale=rationale, salvaged=salvaged)  # type: ignore[arg-type]


@dataclass
class ParsedScore:
    score: float | None
    status: str  # "pass" = a score was read; "error" = unreadable (score None, never a stand-in)
    rationale: str | None = None
    error: str | None = None
    salvaged: bool = False  # read from a quoted number ("7")


def parse_score_reply(text: str | None, *, note: str | None = None,
                      rationale_keys: tuple[str, ...] = ("reason",)) -> ParsedScore:
    """The story answer-set score: a number 0..10 under ``"score"`` (7, 7.5, or "7" flagged salvaged).

    Outside 0..10, NaN, or anything else is an error: never clamped, never a stand-in. The rationale is
    the first text among ``rationale_keys`` (a rubric reply says ``"reasoning"``), read in the same pass.
    """
    suffix = f" ({note})" if note else ""
    obj, why = extract_object(text, "score")
    if obj is None:
        return ParsedScore(None, "error", error=f"{why}{suffix}")
    s = obj["score"]
    reason = next((obj[k] for k in rationale_keys if isinstance(obj.get(k), str)), None)
    salvaged = False
    if isinstance(s, str):
        try:
            s, salvaged = float(s.strip()), True
        except ValueError:
            return ParsedScore(None, "error", error=f"'score' is {_show(s)}, expected a number 0..10{suffix}")
    if isinstance(s, bool) or not isinstance(s, (int, float)):
        return ParsedScore(None, "error", error=f"'score' is {_show(s)}, expected a number 0..10{suffix}")
    if not math.isfinite(s) or not 0 <= s <= 10:
        return ParsedScore(None, "error", error=f"'score' is {s}, expected a number 0..10{suffix}")
    return ParsedScore(float(s), "pass", rationale=reason, salvaged=salvaged)
