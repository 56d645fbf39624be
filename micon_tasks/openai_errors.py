"""How a failed ``openai`` SDK call is read: one classifier for the ``openai`` judge and the ``gpt_image`` adapter.

Why one place: both talk to OpenAI-style servers through the same SDK, and the project's retry rules
(``micon_tasks.retry``) must mean the same for both: a 429 is retried unless its code is
``insufficient_quota`` (an exhausted quota does not come back by waiting), 5xx, 408 and 409 are retried,
any other status is final; timeouts and connection failures are retried; the server's ``Retry-After``
is honoured. What the server said is kept scrubbed of every known secret and cut short, so an echoed key
or a megabyte error page never reaches a record. Each caller only words the failure its own way (a judge
``error`` verdict, a ``GenerationError`` with a reason code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from micon_tasks.retry import retry_after_seconds
from micon_tasks.secrets import scrub_and_truncate

__all__ = ["OpenAIFailure", "classify_openai_error", "short_error", "is_retryable_status", "MESSAGE_LIMIT"]

MESSAGE_LIMIT = 300  # characters of what the server said that a record keeps


def short_error(exc: BaseException | str, limit: int = MESSAGE_LIMIT) -> str:
    """Scrubbed first, then cut to one line: a key echoed late in a long body leaves nothing behind."""
    return scrub_and_truncate(str(exc), limit) or ""


def is_retryable_status(status: int, code: str | None = None) -> bool:
    """Whether an HTTP failure may succeed when tried again (429 unless ``insufficient_quota``, 5xx, 408, 409)."""
    return (status == 429 and code != "insufficient_quota") or status >= 500 or status in (408, 409)


@dataclass(frozen=True)
class OpenAIFailure:
    """One failed call: ``kind`` is ``"timeout"``, ``"connection"`` or ``"status"`` (the server answered)."""

    kind: str
    retryable: bool
    message: str  # what the server or the client said: scrubbed, one line, at most MESSAGE_LIMIT characters
    status: int | None = None
    code: str | None = None  # the error body's ``code`` (or ``type``): ``rate_limit_exceeded``, ``moderation_blocked`` ...
    retry_after: float | None = None  # seconds the server asked to wait (``Retry-After``), when it did


def classify_openai_error(exc: BaseException) -> OpenAIFailure | None:
    """The failure an ``openai`` SDK call (or its total deadline) raised; None for any other exception."""
    import openai

    if isinstance(exc, (TimeoutError, openai.APITimeoutError)):  # APITimeoutError is a connection error too
        return OpenAIFailure("timeout", True, short_error(exc))
    if isinstance(exc, openai.APIConnectionError):
        return OpenAIFailure("connection", True, short_error(exc))
    if not isinstance(exc, openai.APIStatusError):
        return None
    status = int(exc.status_code)
    body = exc.body if isinstance(exc.body, dict) else {}
    err: Any = body.get("error", body)
    err = err if isinstance(err, dict) else {}
    code = err.get("code") or err.get("type")
    code = str(code) if code is not None else None
    message = short_error(str(err.get("message") or exc.message))
    return OpenAIFailure("status", is_retryable_status(status, code), message, status, code,
                         retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None)))
