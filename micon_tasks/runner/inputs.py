"""What a case's image and verdict depend on, hashed from the dataset as stored (no image decoding).

Why: resuming reuses an image only while the case it was made for is unchanged. A generation depends
on the prompt and the references; a verdict also on the goal, constraints and answer set the judge
reads. Hashing the references' encoded bytes (as the dataset stores them, zero-copy from Arrow) is
exact and cheap; decoding every reference on every resume would not be. A record made before these
hashes were kept is checked against the decoded pixels instead (the hashes it does hold).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import weakref
from pathlib import Path
from typing import Any

from micon_tasks.hashing import sha256_file, sha256_json
from micon_tasks.runner.records import atomic_write_text

__all__ = ["CaseInputs", "case_inputs", "persist_all", "release_rows"]

_STORE_VERSION = 1

log = logging.getLogger(__name__)

# The columns a judge request can read besides the references (ref_paths is only a file name).
_REF_COLUMNS = ("refs", "ref_paths")


class CaseInputs:
    """Per-case input hashes of one loaded task, computed on first need and kept.

    For a dataset backed by Arrow files (a cached conversion, a published or Hub dataset) the digests are
    also kept on disk, keyed by those files' paths, sizes and mtimes: hashing every reference of a full
    benchmark again on each resume cost seconds, and unchanged files cannot give other digests.
    """

    def __init__(self, task: Any):
        self._task = weakref.ref(task)  # weak: these inputs live in a cache keyed by the task, and must not keep it
        self._index: dict[str, int] | None = None
        self._arrow: Any = None
        self._digests: dict[str, tuple[str, str, str]] = {}  # case_id -> (generation, judge, prompt)
        self._pixels: dict[str, list[str]] = {}
        self._store: Path | None | bool = False  # False: not looked up yet
        self._dirty = False

    @property
    def task(self) -> Any:
        task = self._task()
        if task is None:
            raise ReferenceError("the task these case inputs belong to is gone")
        return task

    def _store_path(self) -> Path | None:
        if self._store is False:
            self._store = None
            files = [f.get("filename") for f in getattr(self.task.dataset, "cache_files", None) or []]
            if files and all(files):
                try:
                    stats = [[f, os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in files]
                except OSError:
                    return None
                from micon_tasks.data.sources import cache_dir

                key = sha256_json({"version": _STORE_VERSION, "task": self.task.name, "files": stats,
                                   **self._size_part()})
                self._store = cache_dir() / "inputs" / f"{key[:40]}.json"
                try:
                    loaded = json.loads(self._store.read_text("utf-8"))
                    self._digests.update({cid: tuple(v) for cid, v in loaded.items()})
                except (OSError, ValueError):
                    pass
        return self._store or None

    def persist(self) -> None:
        """Write the digests computed so far beside the dataset's other caches (atomic; best effort)."""
        path = self._store_path()
        if not self._dirty or path is None:
            return
        try:
            atomic_write_text(path, json.dumps(self._digests))
            self._dirty = False
        except OSError as exc:  # a read-only cache slows resumes, it does not stop them
            log.debug("input digests not cached (%s)", exc)

    def release_rows(self) -> None:
        """Drop the batch of rows in hand (see ``Task.release_rows``)."""
        if self._arrow is not None:
            self._arrow.release()

    def index(self, case_id: str) -> int | None:
        if self._index is None:
            self._index = {cid: n for n, cid in enumerate(self.task.case_ids)}
        return self._index.get(case_id)

    def _size_part(self) -> dict[str, Any]:
        """The card's generation size, when it declares one: an image made at another size is not current.
        (Cards that declare none keep the digests they always had.)"""
        size = getattr(getattr(self.task, "config", None), "generation_size", None)
        return {"size": list(size)} if size else {}

    def _row(self, case_id: str) -> tuple[str, str, str] | None:
        """(generation sha256, judge sha256, prompt) of a case, or None when the task has no such case."""
        self._store_path()  # the first call loads the digests kept on disk for this dataset
        if case_id in self._digests:
            return self._digests[case_id]
        n = self.index(case_id)
        if n is None:
            return None
        if self._arrow is None:  # streamed, not memory-mapped (data/rows.py)
            from micon_tasks.data.rows import RowReader

            self._arrow = RowReader(self.task.dataset)
        row = self._arrow.row(n)
        roles = row["ref_roles"]
        ref_hashes = [self._ref_hash(case_id, ref, k) for k, ref in enumerate(row["refs"] or [])]
        text = {name: value for name, value in row.items() if name not in _REF_COLUMNS}
        gen = sha256_json({"prompt": text.get("prompt"), "ref_roles": roles, "refs": ref_hashes, **self._size_part()})
        judge = sha256_json({**text, "refs": ref_hashes})
        self._digests[case_id] = (gen, judge, text.get("prompt"))
        self._dirty = True
        return self._digests[case_id]

    def _ref_hash(self, case_id: str, ref: dict[str, Any] | None, k: int) -> str:
        data = (ref or {}).get("bytes")
        if data is not None:
            return "bytes:" + hashlib.sha256(data).hexdigest()
        path = (ref or {}).get("path")
        if path and Path(path).is_file():  # a dataset that stores the image by path only
            return "file:" + sha256_file(path)
        return "pixels:" + self.pixel_hashes(case_id)[k]

    def pixel_hashes(self, case_id: str, case: Any = None) -> list[str]:
        """sha256 of each reference's decoded pixels (what generation records hold under ``refs``);
        ``case`` may pass the case already decoded, so its images are not decoded twice."""
        if case_id not in self._pixels:
            from micon_tasks.judges.cache import image_digest

            case = case if case is not None else self.task[self.index(case_id)]
            self._pixels[case_id] = [image_digest(im) for im in case.refs]
        return self._pixels[case_id]

    def generation_sha256(self, case_id: str) -> str | None:
        row = self._row(case_id)
        return None if row is None else row[0]

    def judge_sha256(self, case_id: str) -> str | None:
        row = self._row(case_id)
        return None if row is None else row[1]

    def generation_is_current(self, rec: dict[str, Any]) -> bool:
        """Whether a generation record was made from the case's current prompt and references."""
        cid = rec.get("case_id")
        row = self._row(cid) if isinstance(cid, str) else None
        if row is None:
            return True  # not a case of this task now: nothing to compare with (it is never selected)
        recorded = rec.get("inputs_sha256")
        if recorded is not None:
            return recorded == row[0]
        # a record from before inputs_sha256: compare the prompt, then the references' pixels
        if rec.get("prompt") != row[2]:
            return False
        refs = rec.get("refs") or []
        return [r.get("sha256") for r in refs] == self.pixel_hashes(cid)

    def judgement_is_current(self, rec: dict[str, Any]) -> bool:
        """Whether a judge record was made for the case as it is now (records without the hash: trusted
        as far as their generation record is current)."""
        cid = rec.get("case_id")
        recorded = rec.get("case_sha256")
        if recorded is None or not isinstance(cid, str):
            return True
        current = self.judge_sha256(cid)
        return current is None or recorded == current




_CACHE: weakref.WeakKeyDictionary[Any, CaseInputs] = weakref.WeakKeyDictionary()


def persist_all() -> None:
    """Keep every loaded task's digests on disk (called when a stage ends)."""
    for inputs in list(_CACHE.values()):
        inputs.persist()


def release_rows(task: Any) -> None:
    """Drop the batches of rows a task and its case inputs keep in hand (``Task.release_rows``)."""
    release = getattr(task, "release_rows", None)
    if callable(release):
        release()
    found = _CACHE.get(task)
    if found is not None:
        found.release_rows()


def case_inputs(task: Any) -> CaseInputs:
    """The (shared) CaseInputs of a loaded task: the stages of one run hash each case once."""
    found = _CACHE.get(task)
    if found is None:
        found = _CACHE[task] = CaseInputs(task)
    return found
