"""Retries with exponential backoff for API adapters, and scrubbing secrets out of provider messages.

Why our own loop rather than each SDK's: one policy for every provider (what is retryable, how long to
wait, a bound on attempts), SDK retries switched off so that a test can count requests exactly, and the
last failure surfaces as a :class:`GenerationError` carrying the provider's reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from adapters.base import GenerationError
from micon_tasks.errors import ConfigError

__all__ = ["RetryPolicy", "call_with_retries", "redact", "api_key_from_env", "is_transport_error"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first try; waits ``backoff * 2**i`` seconds, capped at ``max_backoff``.

    A provider's Retry-After (when the classifier passes one) replaces the computed wait, within the cap.
    """

    max_retries: int = 4
    backoff: float = 2.0
    max_backoff: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ConfigError(f"retry settings must not be negative: {self}")

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        base = retry_after if retry_after is not None else self.backoff * (2**attempt)
        return max(0.0, min(base, self.max_backoff))


def call_with_retries(
    fn: Callable[[], T],
    classify: Callable[[BaseException], tuple[GenerationError, float | None] | None],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on an exception ``classify`` maps to a GenerationError, retry while it is retryable.

    ``classify`` returns (error, retry_after seconds or None), or None for an exception that is not the
    provider's doing (a bug), which propagates unchanged.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except GenerationError as exc:
            error, retry_after = exc, None
        except Exception as exc:  # noqa: BLE001 - classified below, unknown ones re-raised
            mapped = classify(exc)
            if mapped is None:
                raise
            error, retry_after = mapped
            error.__cause__ = None
        if not error.retryable or attempt >= policy.max_retries:
            if error.retryable:
                error.message = f"{error.message} (gave up after {attempt + 1} attempts)"
                error.args = (error.message,)
            raise error
        sleep(policy.wait(attempt, retry_after))
        attempt += 1


def redact(text: str | None, secrets: Iterable[str | None]) -> str | None:
    """``text`` with every secret (and its last-8-character tail, as providers echo it) replaced."""
    if text is None:
        return None
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, "[REDACTED]")
        if len(secret) > 12:
            text = text.replace(secret[-8:], "[REDACTED]")
    return text


def api_key_from_env(names: str | Iterable[str], adapter: str) -> str:
    """The first set variable among ``names``; a ConfigError naming them (never a value) otherwise."""
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    raise ConfigError(f"adapter {adapter!r} needs an API key in the environment variable {' or '.join(names)}")


def is_transport_error(exc: BaseException) -> bool:
    """A connection failure or timeout from whichever HTTP client an SDK uses (httpx, httpx2, requests)."""
    import importlib

    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    for module, names in (("httpx", ("TransportError", "TimeoutException")),
                          ("httpx2", ("TransportError", "TimeoutException")),
                          ("requests", ("ConnectionError", "Timeout"))):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        classes = tuple(c for c in (getattr(mod, n, None) for n in names) if isinstance(c, type))
        if classes and isinstance(exc, classes):
            return True
    return False
