"""Crash-safe JSONL record files and atomic file writes.

Why: a run may be killed at any moment (SIGKILL included) and resumed by running the same command.
Every record is one JSON line written with write + flush + fsync, so a kill leaves at most one torn
final line; the writer that owns a file drops that line (truncating it away) when it reopens the file,
and the case it described is simply redone. Readers of files they do not own ignore a torn tail.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "RecordWriter",
    "read_records",
    "read_shards",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "dumps_record",
]

log = logging.getLogger(__name__)


def dumps_record(record: dict[str, Any]) -> str:
    """One record as one line: sorted keys and no NaN, so equal records are equal bytes."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of a JSON line; a lone surrogate (a judge reply can carry one) is written as its JSON
    escape ``\\udc80``, which reads back as the same string, instead of crashing the write."""
    return text.encode("utf-8", errors="backslashreplace")


def _valid_prefix(data: bytes) -> tuple[int, list[dict[str, Any]], list[int]]:
    """Parse complete lines; returns (bytes of the good prefix, records, line numbers of bad middle lines)."""
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    end = 0
    lines = data.split(b"\n")
    # The last element is b"" when the file ends with a newline; otherwise it is a torn line.
    for n, line in enumerate(lines[:-1], start=1):
        end += len(line) + 1
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
            records.append(rec)
        except ValueError:
            if n == len(lines) - 1:  # a final line that is complete but unparsable is torn too
                end -= len(line) + 1
            else:
                bad.append(n)
    return end, records, bad


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete record of a JSONL file (a torn final line is ignored, a missing file is empty)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return []
    _, records, bad = _valid_prefix(data)
    for n in bad:
        log.warning("%s: line %d is not valid JSON; ignored (its case will be redone)", p, n)
    return records


def read_shards(paths: Iterable[str | os.PathLike[str]]) -> Iterator[dict[str, Any]]:
    """Records of several files in the given order."""
    for path in paths:
        yield from read_records(path)


class RecordWriter:
    """Appends records to a JSONL file this process owns; recovers a torn tail on open."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dropped_torn_line = False
        if self.path.exists():
            data = self.path.read_bytes()
            good, _, _ = _valid_prefix(data)
            if good != len(data):
                log.warning("%s: dropping a torn final line (%d bytes) left by an interrupted run", self.path, len(data) - good)
                with open(self.path, "r+b") as fh:
                    fh.truncate(good)
                    fh.flush()
                    os.fsync(fh.fileno())
                self.dropped_torn_line = True
        self._fh = open(self.path, "ab")

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably: write, flush, fsync."""
        self._fh.write(_utf8(dumps_record(record) + "\n"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then os.replace: readers never see half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.parent / f".{p.name}.{secrets.token_hex(6)}.tmp"
    # Mode 0666 less the umask, as for any file the user makes (mkstemp's 0600 would keep results private);
    # the kernel applies the umask, so nothing reads or changes the process-wide setting.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, _utf8(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")
