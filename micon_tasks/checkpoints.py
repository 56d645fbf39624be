"""Checkpoint sets: build them from a task's YAML, validate them, or read the official `.qa.txt` format.

The official templates store one checkpoint per line, ``- A_check_1 (H1): question``, under headers
such as ``A. Instruction Following``; ``(Hk)`` marks a hard checkpoint, which caps its own dimension.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from micon_tasks.errors import ConfigError
from micon_tasks.schemas import first_error
from micon_tasks.types import Checkpoint

__all__ = ["build_checkpoints", "parse_qa_text", "read_qa_file", "dimension_counts", "checkpoint_identity"]

_QA_LINE = re.compile(r"^\s*[-*]\s*([A-G])_check_(\d+)\s*(?:\((H\d+)\))?\s*:\s*(.+?)\s*$")


def build_checkpoints(entries: Iterable[Mapping[str, Any]], *, task: str) -> list[Checkpoint]:
    """Validate raw entries against the checkpoint schema and fill in derived fields.

    ``dimension`` defaults to the id's letter; a hard checkpoint caps its own dimension unless ``caps``
    says otherwise. Ids must be unique.
    """
    entries = [dict(e) for e in entries]
    problem = first_error("checkpoints", entries)
    if problem:
        field, rule = problem
        raise ConfigError(f"task {task!r}: checkpoint set, field {field!r}: {rule}")
    out: list[Checkpoint] = []
    seen: set[str] = set()
    for e in entries:
        cid = e["id"]
        if cid in seen:
            raise ConfigError(f"task {task!r}: checkpoint set, field 'id': duplicate id {cid!r}")
        seen.add(cid)
        letter = cid[0]
        dim = e.get("dimension", letter)
        if dim != letter:
            raise ConfigError(f"task {task!r}: checkpoint {cid!r}, field 'dimension': {dim!r} does not match the id")
        hard = bool(e.get("hard", False))
        caps = e.get("caps", dim if hard else None)
        if caps is not None and not hard:
            raise ConfigError(f"task {task!r}: checkpoint {cid!r}, field 'caps': only a hard checkpoint caps a dimension")
        out.append(Checkpoint(id=cid, dimension=dim, question=e["question"].strip(), hard=hard, caps=caps))
    return out


def parse_qa_text(text: str, *, task: str, source: str = "<text>") -> list[Checkpoint]:
    """Read the official line format. Lines that are not checkpoints (headers, prose) are ignored;
    a line that starts like a checkpoint but cannot be read is an error naming the line."""
    entries: list[dict[str, Any]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _QA_LINE.match(line)
        if m:
            letter, num, hard, question = m.groups()
            entries.append({"id": f"{letter}_check_{num}", "question": question, "hard": hard is not None})
        elif re.match(r"^\s*[-*]\s*[A-Z]_check", line):
            raise ConfigError(f"task {task!r}: {source} line {lineno}: cannot read checkpoint line {line.strip()!r}")
    if not entries:
        raise ConfigError(f"task {task!r}: {source} holds no checkpoint lines ('- A_check_1: question')")
    return build_checkpoints(entries, task=task)


def read_qa_file(path: str | Path, *, task: str) -> list[Checkpoint]:
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"task {task!r}: cannot read checkpoints file {str(path)!r}: {exc.strerror}") from None
    return parse_qa_text(text, task=task, source=str(path))


def dimension_counts(checkpoints: Iterable[Checkpoint]) -> dict[str, int]:
    """``{"A": 3, "B": 3, ...}`` in letter order."""
    counts: dict[str, int] = {}
    for cp in sorted(checkpoints, key=lambda c: c.dimension):
        counts[cp.dimension] = counts.get(cp.dimension, 0) + 1
    return counts


def checkpoint_identity(checkpoints: Iterable[Checkpoint]) -> list[list[Any]]:
    """What a verdict depends on in a checkpoint set, as plain JSON: the one form every fingerprint and
    cache key uses, so they agree on when a set has changed."""
    return [[c.id, c.dimension, c.question, c.hard, c.caps] for c in checkpoints]
