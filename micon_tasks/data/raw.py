"""Read the official raw layout: one YAML task card per case plus reference images (PROTOCOL 2).

```
<root>/<official folder>/cases/<case_id>.yaml
<root>/<official folder>/refs/<case_id>_RA.png
<root>/story_infer/simple_candidate_template.json
```
Quirks handled: a ``data/`` folder above the task folders, ``data/``-prefixed reference paths, cards
without ``case_id`` (the file stem is used). Every reference path is confined to the data root: absolute
paths, ``..`` and links leading outside are refused with an error naming the task, the case and the field.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from micon_tasks.errors import CaseValidationError, DataSourceError, PathEscapeError
from micon_tasks.schemas import first_error
from micon_tasks.yaml_cards import CardYAMLError, describe_yaml_error, load_card_text

__all__ = ["RawCase", "find_raw_root", "is_raw_root", "confine_path", "read_answer_sets", "read_card", "read_raw_task",
           "validate_record"]

log = logging.getLogger(__name__)

_TEXT_LIST_FIELDS = ("constraints_hard", "constraints_soft", "expectation_list", "participating_dimensions")
_KEY_FIELDS = {"generation_prompt": "prompt"}  # a card key -> the record field it fills


@dataclass
class RawCase:
    """A validated case record whose references are files under the data root."""

    record: dict[str, Any]  # the case schema's fields, refs as absolute paths
    card: Path


def is_raw_root(path: Path, folders: list[str]) -> bool:
    return any((path / f / "cases").is_dir() for f in folders)


def find_raw_root(path: str | Path, folders: list[str]) -> Path | None:
    """The folder holding the task folders: ``path`` itself or its ``data/`` child."""
    path = Path(path)
    for candidate in (path, path / "data"):
        if is_raw_root(candidate, folders):
            return candidate
    return None


def confine_path(root: Path, rel: str, *, task: str, case_id: str, field: str) -> Path:
    """Resolve ``rel`` under ``root``, refusing anything that leads outside it."""
    if not isinstance(rel, str) or not rel.strip():
        raise CaseValidationError(task, case_id, field, "must be a non-empty relative path")
    text = rel.strip().replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise PathEscapeError(f"task {task!r}, case {case_id!r}, field {field!r}: absolute path {rel!r} is not allowed")
    parts = pure.parts
    if parts and parts[0] == "data":  # the official cards prefix paths with data/
        parts = parts[1:]
    if ".." in parts:
        raise PathEscapeError(f"task {task!r}, case {case_id!r}, field {field!r}: {rel!r} climbs out of the data root")
    root_resolved = root.resolve()
    target = root_resolved.joinpath(*parts)
    resolved = target.resolve()
    if not resolved.is_relative_to(root_resolved):
        raise PathEscapeError(
            f"task {task!r}, case {case_id!r}, field {field!r}: {rel!r} is a link leading outside the data root"
        )
    return resolved


def read_answer_sets(path: Path, *, task: str) -> dict[str, dict[str, Any]]:
    """The story answer sets keyed by case id (``{"cases": [{case_id, background_summary, ...}]}``)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise DataSourceError(f"task {task!r}: cannot read the answer set {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DataSourceError(f"task {task!r}: answer set {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise DataSourceError(f"task {task!r}: answer set {path} must be an object with a 'cases' list")
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(cases):
        if not isinstance(entry, dict) or not isinstance(entry.get("case_id"), str):
            raise DataSourceError(f"task {task!r}: answer set {path}, entry {i}: needs a string 'case_id'")
        out[entry["case_id"]] = {
            "background_summary": str(entry.get("background_summary", "")),
            "positive_candidates": [str(x) for x in entry.get("positive_candidates") or []],
            "negative_candidates": [str(x) for x in entry.get("negative_candidates") or []],
        }
    return out


def _card_to_record(card: dict[str, Any], path: Path, *, task: str, root: Path) -> dict[str, Any]:
    case_id = card.get("case_id")
    case_id = str(case_id) if case_id not in (None, "") else path.stem
    refs = card.get("refs")
    if isinstance(refs, list):  # tolerate a plain list: roles follow the order
        refs = {f"R{chr(ord('A') + i)}": r for i, r in enumerate(refs)}
    if not isinstance(refs, dict) or not refs:
        raise CaseValidationError(task, case_id, "refs", "must be a mapping RA, RB, ... -> path with at least one entry")
    roles = sorted(refs)  # RA, RB, RC order, whatever the card's key order
    ref_paths = [str(refs[r]) for r in roles]
    record: dict[str, Any] = {
        "case_id": case_id,
        "task": task,
        "task_type": str(card.get("task_type") or ""),
        "ref_roles": roles,
        "ref_paths": ref_paths,
        "prompt": card.get("generation_prompt", card.get("prompt")),
        "goal": card.get("goal") or "",
        "notes": card.get("notes") or "",
        "answer_set": None,
    }
    if not isinstance(record["notes"], str):
        record["notes"] = json.dumps(record["notes"], ensure_ascii=False)
    for key in _TEXT_LIST_FIELDS:
        value = card.get(key)
        record[key] = [] if value is None else ([value] if isinstance(value, str) else value)
    record["refs"] = [
        str(confine_path(root, p, task=task, case_id=case_id, field=f"refs.{role}")) for role, p in zip(roles, ref_paths)
    ]
    return record


def validate_record(record: dict[str, Any], *, task: str) -> None:
    """Schema-check a case record; the error names the task, the case and the field."""
    problem = first_error("case", record)
    if problem:
        field, rule = problem
        raise CaseValidationError(task, str(record.get("case_id", "?")), field, rule)
    if len(record["refs"]) != len(record["ref_roles"]):
        raise CaseValidationError(task, record["case_id"], "ref_roles", "must have one role per reference")


def read_card(card_path: Path, *, task: str, root: Path) -> dict[str, Any]:
    """Parse, confine and schema-check one task card; raises a MiconError naming the case and field."""
    try:
        card = load_card_text(card_path.read_text("utf-8"))
    except OSError as exc:
        raise CaseValidationError(task, card_path.stem, "(card)", f"{card_path.name} cannot be read: {exc.strerror}") from None
    except CardYAMLError as exc:
        field = _KEY_FIELDS.get(exc.key, exc.key) if exc.key else "(card)"
        raise CaseValidationError(task, card_path.stem, field, f"{card_path.name}: {exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CaseValidationError(task, card_path.stem, "(card)", f"{card_path.name} is not valid YAML: {describe_yaml_error(exc)}") from None
    if not isinstance(card, dict):
        raise CaseValidationError(task, card_path.stem, "(card)", f"{card_path.name} must be a YAML mapping")
    record = _card_to_record(card, card_path, task=task, root=root)
    validate_record(record, task=task)
    return record


def read_raw_task(root: Path, *, task: str, folder: str, answer_set_file: str | None = None) -> list[RawCase]:
    """Read, confine and validate every card of one task, sorted by case id."""
    cases_dir = root / folder / "cases"
    if not cases_dir.is_dir():
        raise DataSourceError(f"task {task!r}: no folder {folder}/cases under the data root {root}")
    if answer_set_file and not (root / answer_set_file).is_file():
        raise DataSourceError(f"task {task!r}: the answer set {answer_set_file} is missing under {root}")
    answer_sets = read_answer_sets(root / answer_set_file, task=task) if answer_set_file else {}
    out: list[RawCase] = []
    seen: dict[str, Path] = {}
    for card_path in sorted(cases_dir.glob("*.y*ml")):
        record = read_card(card_path, task=task, root=root)
        cid = record["case_id"]
        if cid in seen:
            raise CaseValidationError(task, cid, "case_id", f"duplicate: {seen[cid].name} and {card_path.name}")
        seen[cid] = card_path
        for role, ref in zip(record["ref_roles"], record["refs"]):
            if not Path(ref).is_file():
                raise CaseValidationError(task, cid, f"refs.{role}", f"file not found: {ref}")
        if answer_set_file:
            record["answer_set"] = answer_sets.get(cid)
        out.append(RawCase(record=record, card=card_path))
    if answer_set_file:
        missing = [c.record["case_id"] for c in out if c.record["answer_set"] is None]
        if missing:
            log.warning("task %r: %d case(s) without an answer set: %s", task, len(missing), ", ".join(missing[:10]))
    out.sort(key=lambda c: c.record["case_id"])
    return out
