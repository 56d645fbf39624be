"""Thumbnails for the report: 256 px WebP files named by the hash of the image they show.

Made once: a thumbnail whose file already exists is never made again, and an index keyed by each
source file's (path, size, mtime) remembers its content hash, so a warm rebuild only stats the files.
Everything lives under ``<REPORT_DIR>/assets/thumbs/``; images are decoded in worker processes.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from micon_tasks.devices import cpu_cores
from micon_tasks.hashing import sha256_bytes
from micon_tasks.runner.records import atomic_write_text

__all__ = ["ThumbSource", "Thumb", "ThumbMaker", "THUMB_SIZE"]

log = logging.getLogger(__name__)

THUMB_SIZE = 256
INDEX_NAME = "index.json"
_CHUNK = 16


@dataclass(frozen=True)
class ThumbSource:
    """An image to show: a file on disk, or encoded bytes held by a dataset (parquet references)."""

    path: Path | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Thumb:
    """What the page needs: the thumbnail's file name, or why there is none; and the content hash."""

    name: str | None
    sha256: str | None
    width: int | None = None
    height: int | None = None
    error: str | None = None


def _stat_key(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


_Answer = tuple["str | None", "int | None", "int | None", "str | None", bool]


def _make_one(source: Path | bytes, folder: str, size: int) -> _Answer:
    """(sha256, width, height, error, wrote) for one image; writes ``<folder>/<sha256[:32]>.webp`` if absent."""
    from PIL import Image

    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as exc:
        return None, None, None, f"cannot read: {exc.strerror or exc}", False
    digest = sha256_bytes(data)
    target = Path(folder) / f"{digest[:32]}.webp"
    wrote = False
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if not target.exists():
                im.draft("RGB", (size, size))  # JPEG decodes at a reduced scale; a no-op for PNG
                if im.mode not in ("RGB", "RGBA"):  # converting costs a full-size copy: only when needed
                    im = im.convert("RGBA" if im.mode in ("LA", "P", "PA") else "RGB")
                # a box reduce to about the target size, then Lanczos: 4x cheaper than reducing_gap=2
                im.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=1.0)
                tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
                im.save(tmp, "WEBP", quality=80, method=2)
                os.replace(tmp, target)
                wrote = True
    except Exception as exc:  # Pillow raises many types for a broken file; the card says which
        return digest, None, None, f"not a readable image ({type(exc).__name__}: {exc})", False
    return digest, width, height, None, wrote


def _make_chunk(items: list[tuple[Path | bytes, str, int]]) -> list[_Answer]:
    return [_make_one(*item) for item in items]


class ThumbMaker:
    """Collects every image of the report, then makes the missing thumbnails in one parallel pass."""

    def __init__(self, folder: Path, *, size: int = THUMB_SIZE, workers: int | None = None):
        self.folder = Path(folder)
        self.size = size
        self.workers = workers or cpu_cores()
        self._index_path = self.folder / INDEX_NAME
        self._index: dict[str, list] = {}
        if self._index_path.is_file():
            try:
                self._index = json.loads(self._index_path.read_text("utf-8"))
            except ValueError:
                self._index = {}
        self._wanted: dict[str, ThumbSource] = {}  # request key -> source
        self.done: dict[str, Thumb] = {}
        self.made = 0  # thumbnails written by the last run() (distinct images)

    def want(self, source: ThumbSource) -> str:
        """Register an image; returns the key under which :meth:`get` answers once :meth:`run` ran."""
        if source.data is not None:
            key = "bytes:" + sha256_bytes(source.data)
        else:
            key = "file:" + str(source.path)
        self._wanted.setdefault(key, source)
        return key

    def get(self, key: str) -> Thumb:
        return self.done[key]

    def run(self) -> None:
        """Make what is missing (in parallel), fill :attr:`done`, save the index, drop unused thumbnails."""
        self.folder.mkdir(parents=True, exist_ok=True)
        todo: list[tuple[str, Path | bytes, str | None]] = []
        new_index: dict[str, list] = {}
        for key, src in self._wanted.items():
            # the index key: bytes by their hash (the request key), a file by its (path, size, mtime)
            stat_key = key if src.data is not None else _stat_key(src.path)
            cached = self._index.get(stat_key) if stat_key else None
            if cached and (self.folder / f"{cached[0][:32]}.webp").exists():
                self.done[key] = Thumb(f"{cached[0][:32]}.webp", cached[0], cached[1], cached[2])
                new_index[stat_key] = cached
                continue
            if src.path is not None and stat_key is None:
                self.done[key] = Thumb(None, None, error=f"file not found: {src.path}")
                continue
            todo.append((key, src.data if src.data is not None else src.path, stat_key))
        items = [(payload, str(self.folder), self.size) for _, payload, _ in todo]
        chunks = [items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK)]
        if len(items) > _CHUNK and self.workers > 1:
            with ProcessPoolExecutor(max_workers=self.workers) as pool:
                answers = [a for chunk in pool.map(_make_chunk, chunks) for a in chunk]
        else:
            answers = [a for chunk in chunks for a in _make_chunk(chunk)]
        made: set[str] = set()
        for (key, _, stat_key), (digest, w, h, err, wrote) in zip(todo, answers):
            if err is not None:
                self.done[key] = Thumb(None, digest, error=err)
                continue
            if wrote:
                made.add(digest)  # type: ignore[arg-type]
            self.done[key] = Thumb(f"{digest[:32]}.webp", digest, w, h)  # type: ignore[index]
            if stat_key:
                new_index[stat_key] = [digest, w, h]
        self.made = len(made)
        self._index = new_index
        atomic_write_text(self._index_path, json.dumps(new_index))
        self._prune({t.name for t in self.done.values() if t.name})

    def _prune(self, keep: Iterable[str]) -> None:
        """Remove thumbnails no image of this report uses any more (and leftovers of killed builds)."""
        keep = set(keep)
        for path in self.folder.iterdir():
            if path.name != INDEX_NAME and path.name not in keep and (path.suffix in (".webp", ".tmp")):
                path.unlink(missing_ok=True)
