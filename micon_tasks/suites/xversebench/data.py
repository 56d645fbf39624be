"""The prepared XVerseBench folder: what ``micon prepare xversebench`` writes and the tasks read.

    <root>/xversebench.json         {"format": "micon-xversebench", "version": 1, "splits": {...}, "source": {...}}
    <root>/single.jsonl             one case per line (90 in the full benchmark)
    <root>/multi.jsonl              (210)
    <root>/images/<human|object|animal>/<file>

A case line: ``{"case_id": "single_000", "index": 0, "prompt": ..., "subjects": [{"image":
"images/animal/13_polar bear.jpg", "type": "animal", "label": "polar bear", "caption": "a polar
bear"}, ...], "questions": [{"id": "1", "question": ..., "parents": ["0"], "tuple": ...}, ...]}``.
Subjects keep the order of the authors' ``src_inputs`` (the generation input order); ``label`` is the
detection label of the IP metric. The bundled sample (``sample/``) has the same layout.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from micon_tasks.data.raw import confine_path
from micon_tasks.errors import CaseValidationError, DataSourceError
from micon_tasks.suites.xversebench.entries import ROLES

if TYPE_CHECKING:
    import datasets

__all__ = ["FORMAT", "VERSION", "INDEX_FILE", "SPLITS", "SUBJECT_TYPES", "SAMPLE_ROOT", "ROLES",
           "read_split", "validate_row", "write_folder", "to_dataset", "features"]

FORMAT, VERSION = "micon-xversebench", 1
INDEX_FILE = "xversebench.json"
SPLITS = ("single", "multi")
SUBJECT_TYPES = ("human", "object", "animal")
SAMPLE_ROOT = Path(__file__).resolve().parent / "sample"


def _read_index(root: Path, *, task: str) -> dict[str, Any]:
    path = root / INDEX_FILE
    try:
        index = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise DataSourceError(
            f"task {task!r}: {root} is not a prepared XVerseBench folder (no {INDEX_FILE}); build one with "
            "`micon prepare xversebench --xverse <XVerse checkout> --images <prepared DreamBench++ images>`"
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataSourceError(f"task {task!r}: cannot read {path}: {exc}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataSourceError(f"task {task!r}: {path} is not a {FORMAT} index")
    if index.get("version") != VERSION:
        raise DataSourceError(f"task {task!r}: {path} has format version {index.get('version')!r}; "
                              f"this micon reads version {VERSION}: prepare the folder again")
    return index


def validate_row(row: Any, *, task: str, root: Path | None = None) -> None:
    """Check one case line; the error names the task, the case and the field."""
    cid = str(row.get("case_id", "?")) if isinstance(row, dict) else "?"

    def bad(field: str, rule: str) -> CaseValidationError:
        return CaseValidationError(task, cid, field, rule)

    if not isinstance(row, dict):
        raise bad("(line)", "must be a JSON object")
    for key in ("case_id", "prompt"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise bad(key, "must be a non-empty string")
    subjects = row.get("subjects")
    if not isinstance(subjects, list) or not 1 <= len(subjects) <= len(ROLES):
        raise bad("subjects", f"must be a list of 1-{len(ROLES)} subjects")
    for i, s in enumerate(subjects):
        where = f"subjects[{i}]"
        if not isinstance(s, dict):
            raise bad(where, "must be an object")
        if s.get("type") not in SUBJECT_TYPES:
            raise bad(f"{where}.type", f"must be one of {', '.join(SUBJECT_TYPES)}, got {s.get('type')!r}")
        for key in ("image", "label"):
            if not isinstance(s.get(key), str) or not s[key].strip():
                raise bad(f"{where}.{key}", "must be a non-empty string")
        if root is not None:
            path = confine_path(root, s["image"], task=task, case_id=cid, field=f"{where}.image")
            if not path.is_file():
                raise bad(f"{where}.image", f"file {s['image']!r} is missing under {root}")
    questions = row.get("questions")
    if not isinstance(questions, list) or not questions:
        raise bad("questions", "must be a non-empty list of DPG questions")
    ids = set()
    for i, q in enumerate(questions):
        if not isinstance(q, dict) or not isinstance(q.get("id"), str) or not isinstance(q.get("question"), str):
            raise bad(f"questions[{i}]", "needs a string 'id' and a string 'question'")
        if not isinstance(q.get("parents"), list) or not all(isinstance(p, str) for p in q["parents"]):
            raise bad(f"questions[{i}].parents", "must be a list of question ids ('0' for none)")
        if q["id"] in ids:
            raise bad(f"questions[{i}].id", f"question id {q['id']!r} repeats")
        ids.add(q["id"])


def read_split(root: str | os.PathLike[str], split: str, *, task: str) -> list[dict[str, Any]]:
    """Every case line of one split, checked (images exist under ``root``), in file order."""
    root = Path(root).expanduser().resolve()
    index = _read_index(root, task=task)
    name = (index.get("splits") or {}).get(split)
    if not isinstance(name, str):
        raise DataSourceError(f"task {task!r}: {root / INDEX_FILE} lists no split {split!r}")
    path = confine_path(root, name, task=task, case_id="-", field=f"splits.{split}")
    rows, seen = [], set()
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise DataSourceError(f"task {task!r}: cannot read {path}: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataSourceError(f"task {task!r}: {path.name} line {n} is not valid JSON: {exc.msg}") from None
        validate_row(row, task=task, root=root)
        if row["case_id"] in seen:
            raise CaseValidationError(task, row["case_id"], "case_id", f"repeats ({path.name} line {n})")
        seen.add(row["case_id"])
        rows.append(row)
    if not rows:
        raise DataSourceError(f"task {task!r}: {path} holds no case")
    return rows


def features() -> datasets.Features:
    """The core row schema plus ``subjects`` and ``questions``."""
    from datasets import List, Value

    from micon_tasks.data.sources import features as core

    f = core()
    f["subjects"] = List({"type": Value("string"), "label": Value("string"), "caption": Value("string")})
    f["questions"] = List({"id": Value("string"), "question": Value("string"), "parents": List(Value("string")),
                           "tuple": Value("string")})
    return f


def _read_image(root: Path, rel: str, *, task: str, case_id: str) -> bytes:
    path = confine_path(root, rel, task=task, case_id=case_id, field="subjects.image")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CaseValidationError(task, case_id, "subjects.image", f"cannot read {rel!r}: {exc.strerror}") from None


def to_dataset(root: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]], *, task: str, split: str) -> datasets.Dataset:
    """Rows as a ``datasets.Dataset`` in the core schema, each reference's file bytes embedded (decoded lazily)."""
    from datasets import Dataset

    root = Path(root).resolve()
    records = []
    for row in rows:
        subjects = row["subjects"]
        records.append({
            "case_id": row["case_id"], "task": task, "task_type": split,
            # the bytes travel with the row (never a bare path for datasets to open later)
            "refs": [{"path": s["image"], "bytes": _read_image(root, s["image"], task=task, case_id=row["case_id"])}
                     for s in subjects],
            "ref_roles": list(ROLES[: len(subjects)]), "ref_paths": [s["image"] for s in subjects],
            "prompt": row["prompt"], "goal": "", "constraints_hard": [], "constraints_soft": [],
            "expectation_list": [], "participating_dimensions": [],
            "notes": f"XVerseBench {split} index {row.get('index', '?')}", "answer_set": None,
            "subjects": [{"type": s["type"], "label": s["label"], "caption": s.get("caption") or ""} for s in subjects],
            "questions": [{"id": q["id"], "question": q["question"], "parents": list(q["parents"]),
                           "tuple": q.get("tuple") or ""} for q in row["questions"]],
        })
    return Dataset.from_list(records, features=features())


def write_folder(out: str | os.PathLike[str], splits: Mapping[str, Sequence[Mapping[str, Any]]],
                 images: Mapping[str, bytes], source: Mapping[str, Any], *, overwrite: bool = False) -> Path:
    """Write a prepared folder atomically (a temporary sibling renamed into place)."""
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataSourceError(f"{out} exists and is not empty; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, data in sorted(images.items()):
            target = confine_path(tmp, rel, task="xversebench", case_id="-", field="image")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        names = {}
        for split, rows in splits.items():
            names[split] = f"{split}.jsonl"
            text = "".join(json.dumps(dict(r), ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
            (tmp / names[split]).write_text(text, "utf-8")
        index = {"format": FORMAT, "version": VERSION, "splits": names,
                 "n_cases": {s: len(r) for s, r in splits.items()}, "source": dict(source)}
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", "utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private; the folder is data like any other
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
