"""SQLite verdict cache: a re-run makes no judge call for a case judged before with the same inputs.

Keyed by a sha256 over everything that can change a verdict (judge backend and model, template
hashes, the rendered prompts and their per-request seeds, checkpoint texts, case id, image pixels,
decoding settings, parser version). Only clean results are stored, so a transient failure is retried
on the next run. WAL mode plus a busy timeout and a retry loop make several processes writing one file safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from micon_tasks.hashing import sha256_json
from micon_tasks.types import JudgeResult, Verdict

__all__ = ["VerdictCache", "image_digest", "cache_key", "CACHE_SCHEMA"]

# 2: requests carry a seed derived per request (judges/base.py SEED_RULE) that is part of the key;
#    entries written before (unseeded, or one seed per batch) are never reused.
CACHE_SCHEMA = 2


def image_digest(image: Any) -> str:
    """sha256 of an image's decoded pixels (mode, size, bytes): independent of how it was encoded."""
    h = hashlib.sha256()
    h.update(f"{image.mode}|{image.size[0]}x{image.size[1]}|".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    return sha256_json({"schema": CACHE_SCHEMA, **parts})


def _result_to_json(result: JudgeResult) -> str:
    """Strict JSON (no NaN, ASCII-escaped): what cannot be written exactly raises, and is not cached."""
    data = asdict(result)
    data["provenance"] = {k: v for k, v in data["provenance"].items() if k != "cached"}
    return json.dumps(data, ensure_ascii=True, allow_nan=False)


def _result_from_json(text: str) -> JudgeResult:
    data = json.loads(text)
    data["verdicts"] = [Verdict(**v) for v in data["verdicts"]]
    return JudgeResult(**data)


class VerdictCache:
    """One SQLite file shared by every process of a run (WAL mode; writes retried while locked)."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0, retries: int = 20):
        self.path = Path(path)
        self.timeout = timeout
        self.retries = retries
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    def _connection(self) -> sqlite3.Connection:
        # A connection must not cross a fork: reopen in a child process.
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=self.timeout, check_same_thread=False, isolation_level=None)
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            self._retry(lambda: conn.execute("PRAGMA synchronous=NORMAL"))
            self._retry(
                lambda: conn.execute(
                    "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                    "model TEXT, case_id TEXT, created REAL)"
                )
            )
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _retry(self, fn: Any) -> Any:
        delay = 0.01
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or attempt == self.retries:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def get(self, key: str) -> JudgeResult | None:
        with self._lock:
            conn = self._connection()
            row = self._retry(lambda: conn.execute("SELECT value FROM verdicts WHERE key = ?", (key,)).fetchone())
        return _result_from_json(row[0]) if row else None

    def get_many(self, keys: list[str]) -> dict[str, JudgeResult]:
        out: dict[str, JudgeResult] = {}
        with self._lock:
            conn = self._connection()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._retry(
                    lambda: conn.execute(f"SELECT key, value FROM verdicts WHERE key IN ({marks})", chunk).fetchall()
                )
                for k, v in rows:
                    out[k] = _result_from_json(v)
        return out

    def put_many(self, items: list[tuple[str, str, str, JudgeResult]]) -> None:
        """Store (key, model, case_id, result) rows in one transaction."""
        rows = []
        for k, m, c, r in items:
            try:
                rows.append((k, _result_to_json(r), m, c, time.time()))
            except (ValueError, TypeError):  # never cache what cannot be written (it would poison re-runs)
                continue
        if not rows:
            return

        def write() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        with self._lock:
            conn = self._connection()
            self._retry(write)

    def __len__(self) -> int:
        with self._lock:
            conn = self._connection()
            return int(self._retry(lambda: conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
