"""The one retry policy for every remote call (the judge's and the provider adapters'), with a total deadline.

Why our own rather than each SDK's: neither SDK honours all of the project's rules. ``openai`` retries
every 429 (an exhausted quota, ``insufficient_quota``, must be final) and its ``timeout`` bounds each
socket read, not the attempt (a server dripping one byte a second keeps a request alive for ever);
``google-genai``'s retry options ignore ``Retry-After``. So SDK retries are switched off and this
module decides:

* each attempt runs under ``asyncio.wait_for(..., timeout)``: ``timeout`` bounds the whole attempt,
  connection, upload and the complete reply included;
* a failure is retried only when its classifier says so (429 but not ``insufficient_quota``, 5xx,
  408/409, timeouts, connection errors); anything else is final at once;
* between attempts the wait is 1, 2, 4, ... seconds with jitter, or the server's ``Retry-After`` when
  longer, never more than ``max_wait``;
* the worst case of one call is therefore ``(max_retries + 1) x timeout + max_retries x max_wait``
  (:meth:`RetryPolicy.worst_case_s`);
* the last failure is raised as the classifier's error (a ``GenerationError`` for adapters, an
  ``error`` verdict for judges) carrying how many attempts were made.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from micon_tasks.errors import ConfigError

__all__ = ["RetryPolicy", "retry_async", "AttemptTimeout", "REMOVED_RETRY_ARGS", "retry_after_seconds"]

T = TypeVar("T")

#: settings of the old hand-written loops, refused with the line naming their replacement
REMOVED_RETRY_ARGS: dict[str, str] = {
    "retry_base_delay": "the wait schedule is fixed (1, 2, 4 ... s with jitter); bound it with max_wait",
    "retry_max_delay": "renamed max_wait (the longest wait between attempts, Retry-After included)",
    "backoff": "the wait schedule is fixed (1, 2, 4 ... s with jitter); bound it with max_wait",
    "max_backoff": "renamed max_wait (the longest wait between attempts, Retry-After included)",
}


class AttemptTimeout(TimeoutError):
    """An attempt ran past its total deadline (``timeout``)."""

    def __init__(self, timeout: float):
        super().__init__(f"no complete reply within {timeout:g} s (the whole attempt)")
        self.timeout = timeout


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` extra attempts, each bounded by ``timeout`` seconds; waits at most ``max_wait``."""

    max_retries: int = 4
    timeout: float = 120.0
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        for name in ("timeout", "max_wait"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "timeout" and value == 0):
                raise ConfigError(f"retry setting {name} must be a finite number {'> 0' if name == 'timeout' else '>= 0'}")
        if self.max_retries < 0:
            raise ConfigError("retry setting max_retries must be >= 0")

    def wait(self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (0-based)."""
        base = min(self.max_wait, float(2**min(attempt, 30))) * (0.5 + 0.5 * (rng or random).random())
        if retry_after is not None and math.isfinite(retry_after):
            base = max(base, retry_after)
        return max(0.0, min(base, self.max_wait))

    def worst_case_s(self) -> float:
        """The longest one call can take, retries and waits included."""
        return (self.max_retries + 1) * self.timeout + self.max_retries * self.max_wait


def retry_after_seconds(headers: Any) -> float | None:
    """``Retry-After`` (seconds) or ``retry-after-ms`` from response headers; None when absent or a date."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return float(ms) / 1000.0
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


async def retry_async(
    attempt: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], tuple[Any, float | None] | None],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Await ``attempt()`` under the policy; return its value or raise the last classified error.

    ``classify(exc)`` returns (error, retry_after) where ``error`` has ``retryable`` and ``message``
    attributes (``GenerationError`` does), or None for an exception that is nobody's fault but ours (a
    bug), which propagates unchanged. An exception that already has ``retryable`` passes as it is.
    The raised error gets ``attempts`` (how many were made).
    """
    n = 0
    while True:
        try:
            return await asyncio.wait_for(attempt(), policy.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below, unknown ones re-raised
            if isinstance(exc, TimeoutError) and not isinstance(exc, AttemptTimeout):
                exc = AttemptTimeout(policy.timeout)
            if hasattr(exc, "retryable") and hasattr(exc, "message"):
                error, retry_after = exc, None
            else:
                mapped = classify(exc)
                if mapped is None:
                    raise
                error, retry_after = mapped
                error.__cause__ = None
        n += 1
        error.attempts = n
        if not error.retryable or n > policy.max_retries:
            if error.retryable and n > 1:
                error.message = f"{error.message} (gave up after {n} attempts)"
                error.args = (error.message,)
            raise error
        await sleep(policy.wait(n - 1, retry_after, rng))
