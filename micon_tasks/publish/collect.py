"""Read a raw layout for publishing, collecting EVERY problem instead of stopping at the first.

``read_raw_task`` (data/raw.py) raises on the first bad card, which suits loading. A publish must tell
the maintainer everything that is wrong in one go, so this module walks the same cards with raw.py's
per-card reader (``read_card``) and the sources' image
check (``_image_bytes``), catching ``MiconError`` per card and per reference image.

Granularity: every card is checked; within one card the structural check (YAML, schema, path
confinement) stops at that card's first problem, then each of its reference images is checked on its own.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from micon_tasks.data.raw import find_raw_root, read_answer_sets, read_card, validate_record
from micon_tasks.data.sources import _image_bytes
from micon_tasks.errors import CaseValidationError, MiconError

if TYPE_CHECKING:
    from micon_tasks.config import TaskConfig

__all__ = ["Problem", "TaskCases", "Collection", "collect", "check_image"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One reason a publish is refused: where (task, card, file) and what."""

    task: str
    where: str  # the card (or file) relative to the raw root, or "-" for a task-level problem
    message: str

    def __str__(self) -> str:
        return f"[{self.task}] {self.where}: {self.message}"


@dataclass
class TaskCases:
    """The valid cases of one task, ready to be written (records hold absolute reference paths)."""

    config: TaskConfig
    records: list[dict[str, Any]] = field(default_factory=list)
    image_bytes: dict[str, int] = field(default_factory=dict)  # case_id -> total bytes of its references

    @property
    def name(self) -> str:
        return self.config.task

    @property
    def case_ids(self) -> list[str]:
        return [r["case_id"] for r in self.records]

    @property
    def n_refs(self) -> int:
        return sum(len(r["refs"]) for r in self.records)


@dataclass
class Collection:
    """Everything read from a raw layout: the cases per task, the problems and the warnings."""

    root: Path
    tasks: list[TaskCases]
    problems: list[Problem]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_image(path: Path, *, task: str, case_id: str, field: str) -> None:
    """Refuse a file Pillow cannot fully decode, or whose pixel count passes Pillow's limit.

    ``_image_bytes`` checks the container (``verify``) and Pillow's hard limit (twice
    ``MAX_IMAGE_PIXELS``); between one and two times the limit Pillow only warns, and a publish refuses
    that too, then decodes the pixels so a truncated file is caught here and not by a user.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # turned into an error below
        _image_bytes(str(path), task=task, case_id=case_id, field=field)
        try:
            with Image.open(path) as im:
                limit = Image.MAX_IMAGE_PIXELS
                if limit and im.width * im.height > limit:
                    raise CaseValidationError(
                        task, case_id, field,
                        f"refused as a decompression bomb: {im.width}x{im.height} pixels is over Pillow's limit "
                        f"of {limit}",
                    )
                im.load()
        except MiconError:
            raise
        except Exception as exc:  # Pillow raises many types for a broken file
            raise CaseValidationError(task, case_id, field, f"{path.name} does not decode ({exc})") from None


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _collect_task(root: Path, config: TaskConfig, problems: list[Problem], notes: list[str]) -> TaskCases:
    task = config.task
    out = TaskCases(config=config)
    cases_dir = root / config.official_folder / "cases"
    if not cases_dir.is_dir():
        problems.append(Problem(task, "-", f"no folder {config.official_folder}/cases under the raw root {root}"))
        return out
    answer_sets: dict[str, dict[str, Any]] = {}
    if config.answer_set_file:
        path = root / config.answer_set_file
        if not path.is_file():
            problems.append(Problem(task, config.answer_set_file, "the answer set file is missing"))
        else:
            try:
                answer_sets = read_answer_sets(path, task=task)
            except MiconError as exc:
                problems.append(Problem(task, config.answer_set_file, str(exc)))
    seen: dict[str, str] = {}
    for card_path in sorted(cases_dir.glob("*.y*ml")):
        where = _rel(card_path, root)
        try:
            record = read_card(card_path, task=task, root=root)
            cid = record["case_id"]
            if cid in seen:
                raise CaseValidationError(task, cid, "case_id", f"duplicate: {seen[cid]} and {where}")
            seen[cid] = where
        except MiconError as exc:
            problems.append(Problem(task, where, str(exc)))
            continue
        bad_images = False
        total = 0
        for role, ref in zip(record["ref_roles"], record["refs"]):
            ref_path = Path(ref)
            try:
                if not ref_path.is_file():
                    raise CaseValidationError(task, cid, f"refs.{role}", f"file not found: {_rel(ref_path, root)}")
                check_image(ref_path, task=task, case_id=cid, field=f"refs.{role}")
                total += ref_path.stat().st_size
            except MiconError as exc:
                problems.append(Problem(task, where, f"{exc} (file {_rel(ref_path, root)})"))
                bad_images = True
        if config.answer_set_file:
            record["answer_set"] = answer_sets.get(cid)
            try:  # the answer set is only known now: check it against the case schema too
                validate_record(record, task=task)
            except MiconError as exc:
                problems.append(Problem(task, config.answer_set_file, str(exc)))
                continue
        if not bad_images:
            lo, hi = config.refs.get("min", 1), config.refs.get("max", 8)
            if not lo <= len(record["refs"]) <= hi:
                notes.append(f"task {task!r}, case {cid!r}: {len(record['refs'])} references, the task expects {lo}-{hi}")
            out.records.append(record)
            out.image_bytes[cid] = total
    if not seen and not any(p.task == task for p in problems):
        problems.append(Problem(task, config.official_folder + "/cases", "holds no task cards (*.yaml)"))
    if config.answer_set_file and answer_sets:
        missing = sorted(c for c in seen if c not in answer_sets)
        if missing:
            notes.append(f"task {task!r}: {len(missing)} case(s) without an answer set: {', '.join(missing)}")
        unknown = sorted(c for c in answer_sets if c not in seen)
        if unknown:
            notes.append(f"task {task!r}: the answer set names {len(unknown)} unknown case(s): {', '.join(unknown)}")
    out.records.sort(key=lambda r: r["case_id"])
    return out


def collect(raw: str | Path, configs: list[TaskConfig]) -> Collection:
    """Read and check every task of ``configs`` under ``raw`` (or its ``data/`` child)."""
    raw = Path(raw).expanduser()
    root = find_raw_root(raw, [c.official_folder for c in configs])
    problems: list[Problem] = []
    notes: list[str] = []
    if root is None:
        folders = ", ".join(c.official_folder for c in configs)
        problems.append(Problem("-", str(raw), f"not a raw MICON-Bench layout: none of {folders} has a cases/ folder "
                                               f"here or under data/"))
        return Collection(root=raw, tasks=[], problems=problems, warnings=notes)
    tasks = [_collect_task(root, cfg, problems, notes) for cfg in configs]
    for note in notes:
        log.warning(note)
    return Collection(root=root, tasks=tasks, problems=problems, warnings=notes)
