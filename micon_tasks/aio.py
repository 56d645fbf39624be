"""One event loop in a daemon thread, for the life of a component (a judge, an API adapter).

Why: an async HTTP client belongs to the event loop that created it. Running each batch with
``asyncio.run`` forced a new client (and new connections, a new TLS context) per batch; a loop that
lives as long as the judge keeps one client for the whole run. Sync callers hand coroutines over and
wait for the result; it also works when the caller already runs an event loop (a notebook).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundLoop"]

T = TypeVar("T")


class BackgroundLoop:
    """Start lazily; ``run(coro)`` from any thread but the loop's own; ``close()`` stops it."""

    def __init__(self, name: str = "micon-loop"):
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if not self.running:  # never started, closed, its thread died, or inherited through fork
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            assert self._loop is not None
            return self._loop

    @property
    def running(self) -> bool:
        return self._loop is not None and self._pid == os.getpid() and bool(self._thread and self._thread.is_alive())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (exceptions propagate)."""
        return self.submit(coro).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop; its future (several loops can then work at once)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self, final: Coroutine[Any, Any, Any] | None = None) -> None:
        """Run ``final`` (e.g. closing a client) on the loop, then stop the loop and its thread."""
        if not self.running:
            if final is not None:
                final.close()
            return
        loop, thread = self._loop, self._thread
        assert loop is not None and thread is not None
        if final is not None:
            try:
                asyncio.run_coroutine_threadsafe(final, loop).result(timeout=10)
            except Exception:  # noqa: BLE001,S110 - closing must not mask the run's own outcome
                pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None
