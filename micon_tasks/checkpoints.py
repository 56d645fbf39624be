"""Checkpoint sets: build them from a task's YAML, validate them, or read the official `.qa.txt` format.

The official templates store one checkpoint per line, ``- A_check_1 (H1): question``, under headers
such as ``A. Instruction Following``; ``(Hk)`` marks a hard checkpoint, which caps its own dimension.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from micon_tasks.errors import ConfigError
from micon_tasks.schemas import first_error
from micon_tasks.types import Checkpoint

__all__ = ["build_checkpoints", "parse_qa_text", "read_qa_file", "dimension_counts", "checkpoint_identity",
           "resolve_checkpoints_from"]

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


def dimension_counts(checkpoints: Sequence[Checkpoint]) -> dict[str, int]:
    """``{"A": 3, "B": 3, ...}``: checkpoints per dimension, in the scorer's dimension order."""
    from micon_tasks.scoring import dimension_order

    return {d: sum(1 for cp in checkpoints if cp.dimension == d) for d in dimension_order(checkpoints)}


def checkpoint_identity(checkpoints: Iterable[Checkpoint]) -> list[list[Any]]:
    """What a verdict depends on in a checkpoint set, as plain JSON: the one form every fingerprint and
    cache key uses, so they agree on when a set has changed."""
    return [[c.id, c.dimension, c.question, c.hard, c.caps] for c in checkpoints]


def resolve_checkpoints_from(spec: str | os.PathLike | Mapping[str, str] | Sequence[str] | None,
                             tasks: Sequence[str]) -> dict[str, str]:
    """Which official template replaces which selected task's checkpoint set: ``{task: absolute file}``.

    ``spec``: ``task=FILE`` pairs (comma-separated strings, or a mapping), a folder holding the official
    templates under their official names (each card's ``official_template``), or one file when a single
    task is selected. One template serves one task: the same file for several tasks is refused, since each
    task's template has its own checkpoints (the story's E dimension among them). Relative paths resolve
    against the current folder.
    """
    import registry

    if not spec:
        return {}
    if isinstance(spec, Mapping):
        pairs = [(str(k), str(v)) for k, v in spec.items()]
    else:
        items = [str(spec)] if isinstance(spec, (str, os.PathLike)) else [str(s) for s in spec]
        if not any("=" in item for item in items):
            if len(items) != 1:
                raise ConfigError(f"checkpoints_from: give one folder, one file or task=FILE pairs, not {len(items)} paths")
            return _from_path(Path(items[0]).expanduser().absolute(), list(tasks))
        pairs = []
        for part in (p.strip() for item in items for p in item.split(",")):
            if part:
                name, eq, file = part.partition("=")
                if not eq or not name.strip() or not file.strip():
                    raise ConfigError(f"checkpoints_from: expected task=FILE, got {part!r}")
                pairs.append((name.strip(), file.strip()))
    out: dict[str, str] = {}
    for name, file in pairs:
        task = name if name in tasks else registry.tasks.canonical(name)  # a stored mapping needs no lookup
        if task not in tasks:
            raise ConfigError(f"checkpoints_from names task {name!r}, which is not selected ({', '.join(tasks)})")
        if task in out:
            raise ConfigError(f"checkpoints_from names task {task!r} twice")
        out[task] = str(Path(file).expanduser().absolute())
    _one_file_per_task(out)
    return out


def _from_path(path: Path, tasks: list[str]) -> dict[str, str]:
    import registry

    if path.is_dir():
        out = {}
        for task in tasks:
            cfg = registry.get_task(task).config
            if cfg.scoring.kind != "checkpoints":
                continue  # a rubric or metric task has no checkpoint set to replace
            if not cfg.official_template:
                raise ConfigError(f"task {task!r}, field 'official_template': the card names no official template, so "
                                  f"a folder cannot supply it; pass {task}=FILE instead")
            file = path / cfg.official_template
            if not file.is_file():
                raise ConfigError(f"task {task!r}: checkpoints_from folder {str(path)!r} holds no {cfg.official_template}")
            out[task] = str(file)
        return out
    if not path.is_file():
        raise ConfigError(f"checkpoints_from {str(path)!r}: no such file or folder")
    if len(tasks) != 1:
        names = ", ".join(sorted(t for t in (registry.get_task(n).config.official_template for n in tasks) if t))
        raise ConfigError(f"checkpoints_from {str(path)!r}: one template file for {len(tasks)} tasks ({', '.join(tasks)}); "
                          f"each task has its own: pass task=FILE pairs, or a folder holding {names or 'the templates'}")
    return {tasks[0]: str(path)}


def _one_file_per_task(mapping: Mapping[str, str]) -> None:
    by_file: dict[str, list[str]] = {}
    for task, file in mapping.items():
        by_file.setdefault(str(Path(file).resolve()), []).append(task)
    for file, names in by_file.items():
        if len(names) > 1:
            raise ConfigError(f"checkpoints_from: one template file {file!r} for several tasks ({', '.join(names)}); "
                              "each task has its own template")
