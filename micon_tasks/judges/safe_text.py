"""Judge text safe to store: every reply, verdict, detail and error scrubbed of the secrets the run knows
(a server may quote a key back) and free of lone surrogates (a reply's JSON may decode to one, and a
record or cache write would then crash). Applied to every completion and every result.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from micon_tasks.secrets import known_secrets, scrub_deep
from micon_tasks.types import JudgeResult

if TYPE_CHECKING:
    from micon_tasks.judges.base import Completion

__all__ = ["clean_completion", "escape_surrogates", "safe_result"]


def clean_completion(c: Completion) -> Completion:
    """Reply and error text safe to store: lone surrogates escaped (never a crash when writing)."""
    if c.text is not None:
        c.text = escape_surrogates(c.text)
    if c.error is not None:
        c.error = escape_surrogates(c.error)
    return c


def escape_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_result(result: JudgeResult) -> JudgeResult:
    """Every text of a result safe to store: scrubbed of the secrets the run knows (a server may quote a
    key back) and with lone surrogates escaped (a reply's JSON may decode to one)."""
    secrets = known_secrets()  # once per result: the environment is not read per string

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return escape_surrogates(scrub_deep(value, secrets=secrets))  # type: ignore[arg-type]
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    result.verdicts = [replace(v, raw=clean(v.raw), rationale=clean(v.rationale), error=clean(v.error))
                       for v in result.verdicts]
    result.raw = clean(result.raw)
    result.details = clean(result.details)
    return result
