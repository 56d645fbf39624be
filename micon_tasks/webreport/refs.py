"""The cases' reference images and texts, read from the data location each run recorded.

Read-only on purpose: a raw layout is read card by card (no converted copy is cached), a published
folder straight from its parquet files, and a Hub dataset only from the local Hub cache (the report
never downloads). When the data cannot be read, :class:`TaskData` says why, and the gallery shows
the cases without references, with that reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from micon_tasks.errors import MiconError

__all__ = ["CaseData", "TaskData", "read_task_data", "describe_location"]

log = logging.getLogger(__name__)


@dataclass
class CaseData:
    """What the data says about one case: its references (file paths or encoded bytes) and texts."""

    roles: list[str]
    refs: list[Path | bytes]
    texts: dict[str, Any] = field(default_factory=dict)  # prompt, goal, constraints, answer_set
    error: str | None = None  # the card could not be read (the references are then unknown)


@dataclass
class TaskData:
    cases: dict[str, CaseData]
    unavailable: str | None = None  # why no case of this task has references


def describe_location(location: dict[str, Any] | None) -> str:
    if not location:
        return "unknown (the run did not record it)"
    text = f"{location.get('kind')}: {location.get('location')}"
    if location.get("commit") or location.get("revision"):
        text += f" @ {location.get('commit') or location.get('revision')}"
    return text


def _texts(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("prompt", "goal", "constraints_hard", "constraints_soft", "answer_set")
    return {k: row.get(k) for k in keys if row.get(k) not in (None, "", [])}


def _read_raw(root: Path, config: Any, wanted: set[str]) -> dict[str, CaseData]:
    """Each card on its own, so one broken card only takes its own case's references."""
    from micon_tasks.data.raw import read_answer_sets, read_card

    answer_sets: dict[str, dict[str, Any]] = {}
    if config.answer_set_file and (root / config.answer_set_file).is_file():
        try:
            answer_sets = read_answer_sets(root / config.answer_set_file, task=config.task)
        except MiconError as exc:
            log.warning("%s", exc)
    out: dict[str, CaseData] = {}
    for card in sorted((root / config.official_folder / "cases").glob("*.y*ml")):
        try:
            rec = read_card(card, task=config.task, root=root)
        except MiconError as exc:
            if card.stem in wanted:
                out[card.stem] = CaseData([], [], error=str(exc))
            continue
        cid = rec["case_id"]
        if cid not in wanted:
            continue
        rec["answer_set"] = answer_sets.get(cid)
        out[cid] = CaseData(list(rec["ref_roles"]), [Path(p) for p in rec["refs"]], _texts(rec))
    return out


def _read_published(path: Path, config: Any, wanted: set[str]) -> dict[str, CaseData]:
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    files = sorted(str(p) for p in (path / "data" / config.config_name).glob("*.parquet"))
    table = pads.dataset(files, format="parquet").to_table(
        filter=pc.field("case_id").isin(sorted(wanted)))
    out: dict[str, CaseData] = {}
    for row in table.to_pylist():
        refs = [r.get("bytes") for r in row.get("refs") or []]
        out[row["case_id"]] = CaseData(list(row.get("ref_roles") or []), [r for r in refs if r], _texts(row))
    return out


def _hub_snapshot(location: dict[str, Any], config: Any) -> Path:
    """The dataset's snapshot in the local Hub cache; nothing is downloaded."""
    from huggingface_hub import snapshot_download

    folder = config.official_folder
    patterns = ["README.md", f"data/{config.config_name}/*", f"{folder}/**", f"data/{folder}/**"]
    if config.answer_set_file:
        patterns += [config.answer_set_file, f"data/{config.answer_set_file}"]
    revision = location.get("commit") or location.get("revision")
    try:
        return Path(snapshot_download(repo_id=location["location"], repo_type="dataset", revision=revision,
                                      allow_patterns=patterns, local_files_only=True))
    except Exception as exc:  # not cached, or no such revision in the cache
        raise MiconError(f"the Hub dataset {location['location']!r} is not in the local Hub cache "
                         f"(the report never downloads; {type(exc).__name__})") from None


def read_task_data(task: str, location: dict[str, Any] | None, wanted: set[str]) -> TaskData:
    """References and texts of the ``wanted`` cases of ``task``, or why they are unavailable."""
    import registry
    from micon_tasks.data.raw import find_raw_root
    from micon_tasks.data.sources import _is_published

    if not location or not location.get("location"):
        return TaskData({}, "the run did not record where its data came from")
    try:
        config = registry.get_task(task).config
    except (MiconError, KeyError, ValueError) as exc:
        return TaskData({}, f"task {task!r} has no task card here ({exc})")
    try:
        if location.get("kind") == "hub":
            path = _hub_snapshot(location, config)
        else:
            path = Path(location["location"])
            if not path.is_dir():
                return TaskData({}, f"the data folder {path} is not there any more")
        if _is_published(path, config):
            return TaskData(_read_published(path, config, wanted))
        root = find_raw_root(path, [config.official_folder])
        if root is None:
            return TaskData({}, f"{path} holds neither the raw layout nor a published dataset of task {task!r}")
        return TaskData(_read_raw(root, config, wanted))
    except (MiconError, OSError) as exc:
        return TaskData({}, str(exc))
    except Exception as exc:  # a corrupt parquet file, say: the report still builds, without references
        log.warning("task %r: references unreadable from %s: %r", task, describe_location(location), exc)
        return TaskData({}, f"the data at {describe_location(location)} cannot be read ({type(exc).__name__}: {exc})")

