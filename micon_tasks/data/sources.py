"""Turn a data source into a ``datasets.Dataset``: ``datasets`` is the only road to data.

Sources: ``"hub"`` (a Hub dataset repo, raw or published layout), a local folder (raw layout or a
published parquet folder) and ``"sample"`` (the bundled sample split). There is no silent fallback from
one to another. A raw layout is converted once and cached by a fingerprint of its cards and images.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from micon_tasks.data.raw import find_raw_root, read_raw_task
from micon_tasks.devices import cpu_cores
from micon_tasks.errors import DataSourceError, MiconError
from micon_tasks.images import decode_fully

if TYPE_CHECKING:
    import datasets

    from micon_tasks.config import TaskConfig

__all__ = [
    "SAMPLE_ROOT",
    "CONVERTER_VERSION",
    "cache_dir",
    "features",
    "load_source",
    "raw_to_dataset",
    "resolve_data_location",
]

log = logging.getLogger(__name__)

SAMPLE_ROOT = Path(__file__).resolve().parent.parent / "sample"
CONVERTER_VERSION = "3"  # 2: every reference decoded at conversion; 3: Arrow parts + converted.ok
DEFAULT_REPO = "Hangliuuu/MICON-Bench"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def features() -> datasets.Features:
    """The one row schema every source yields and ``micon publish`` writes."""
    from datasets import Features, Image, List, Value

    text_list = List(Value("string"))
    return Features(
        {
            "case_id": Value("string"),
            "task": Value("string"),
            "task_type": Value("string"),
            "refs": List(Image()),
            "ref_roles": text_list,
            "ref_paths": text_list,
            "prompt": Value("string"),
            "goal": Value("string"),
            "constraints_hard": text_list,
            "constraints_soft": text_list,
            "expectation_list": text_list,
            "participating_dimensions": text_list,
            "notes": Value("string"),
            "answer_set": {
                "background_summary": Value("string"),
                "positive_candidates": text_list,
                "negative_candidates": text_list,
            },
        }
    )


def cache_dir() -> Path:
    """Where converted datasets live: ``$MICON_CACHE_DIR`` or ``~/.cache/micon_bench``."""
    return Path(os.environ.get("MICON_CACHE_DIR") or Path.home() / ".cache" / "micon_bench")


# -- raw layout -> Dataset ------------------------------------------------------------------------
def _fingerprint(root: Path, config: TaskConfig) -> str:
    h = hashlib.sha256(f"micon-raw/{CONVERTER_VERSION}/{config.task}/{config.official_folder}".encode())
    folder = root / config.official_folder
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        if path.suffix in (".yaml", ".yml"):
            h.update(path.read_bytes())
    if config.answer_set_file and (root / config.answer_set_file).is_file():
        h.update((root / config.answer_set_file).read_bytes())
    return h.hexdigest()[:24]


def _image_bytes(path: str, *, task: str, case_id: str, field: str) -> bytes:
    """The file's bytes, once every pixel has been decoded (a truncated or corrupt file is named here, once:
    the conversion is cached, so a re-run does not decode again)."""
    data = Path(path).read_bytes()
    decode_fully(data, task=task, case_id=case_id, field=field, name=Path(path).name)
    return data


def raw_to_dataset(root: Path, config: TaskConfig) -> datasets.Dataset:
    """Convert one task of a raw layout, or reuse the cached conversion with the same fingerprint."""
    import datasets

    target = cache_dir() / "converted" / f"{config.task}-{_fingerprint(root, config)}"
    if (target / _DONE).is_file():
        log.debug("task %r: reusing converted dataset %s", config.task, target)
        return _open_converted(target)
    cases = read_raw_task(root, task=config.task, folder=config.official_folder, answer_set_file=config.answer_set_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # our own log line says what is going on
    try:
        # Streamed to an Arrow file a few cases at a time: the decoded benchmark is never held in memory.
        log.info("task %r: converting %d cases of %s (every reference is decoded once; cached)", config.task,
                 len(cases), root)
        try:
            ds = datasets.Dataset.from_generator(
                _converted_rows, gen_kwargs={"records": [c.record for c in cases], "task": config.task},
                features=features(), cache_dir=str(tmp / "build"), writer_batch_size=_WINDOW,
            )
        except datasets.exceptions.DatasetGenerationError as exc:  # our own error (a broken image) inside
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, MiconError):
                raise cause from None
            raise
        files = sorted(Path(f["filename"]) for f in ds.cache_files)
        del ds
        (tmp / "data").mkdir()
        for n, file in enumerate(files):  # moved, not copied: the Arrow files are the cache
            file.rename(tmp / "data" / f"part-{n:05d}.arrow")
        shutil.rmtree(tmp / "build", ignore_errors=True)
        (tmp / _DONE).write_text(CONVERTER_VERSION, "utf-8")
        if target.exists() and not (target / _DONE).is_file():
            shutil.rmtree(target, ignore_errors=True)  # left by another version of the converter: replaced
        if not target.exists():
            tmp.rename(target)  # atomic: a half-written cache is never picked up
    finally:
        if bars:
            datasets.enable_progress_bars()
        shutil.rmtree(tmp, ignore_errors=True)
    return _open_converted(target)


_DONE = "converted.ok"  # written last: a conversion folder without it is incomplete and never read


def _open_converted(target: Path) -> datasets.Dataset:
    """The cached conversion, memory-mapped from its Arrow file(s)."""
    import datasets

    parts = [datasets.Dataset.from_file(str(p)) for p in sorted((target / "data").glob("part-*.arrow"))]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


_WINDOW = 16  # cases decoded (in parallel threads) and written per step of a conversion


def _converted_rows(records: list[dict[str, Any]], task: str) -> Iterator[dict[str, Any]]:
    """The dataset rows of a raw task, in order; each reference decoded fully on the way (Pillow releases the
    GIL while decoding, so the threads use every core)."""
    from concurrent.futures import ThreadPoolExecutor

    names = list(features())
    with ThreadPoolExecutor(max_workers=cpu_cores(), thread_name_prefix="micon-decode") as pool:

        def submit(start: int) -> list[tuple[dict[str, Any], list[Any]]]:
            return [(rec, [pool.submit(_image_bytes, p, task=task, case_id=rec["case_id"], field=f"refs.{role}")
                           for p, role in zip(rec["refs"], rec["ref_roles"])]) for rec in records[start : start + _WINDOW]]

        ahead = submit(0)
        for start in range(0, len(records), _WINDOW):
            window, ahead = ahead, submit(start + _WINDOW)  # the next window decodes while this one is written
            for rec, refs in window:
                row = {name: rec.get(name) for name in names}
                row["refs"] = [{"bytes": f.result(), "path": rel} for f, rel in zip(refs, rec["ref_paths"])]
                yield row


# -- published (parquet) layout -------------------------------------------------------------------
def _is_published(path: Path, config: TaskConfig) -> bool:
    return any((path / "data" / config.config_name).glob("*.parquet"))


def _load_published(path: Path, config: TaskConfig) -> datasets.Dataset:
    import datasets

    files = sorted(str(p) for p in (path / "data" / config.config_name).glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files={config.test_split: files}, split=config.test_split)
    return ds.cast(features()) if ds.features != features() else ds


# -- source resolution ----------------------------------------------------------------------------
def _offline_message(repo: str, config: TaskConfig, exc: BaseException) -> str:
    return (
        f"task {config.task!r}: cannot reach the Hub dataset {repo!r} and nothing is cached "
        f"({type(exc).__name__}). Use source=\"sample\" (the bundled sample split, also `--source sample`), "
        f"or download the data once and pass its folder: load_task({config.task!r}, source=\"/path/to/MICON-Bench\")."
    )


def resolve_data_location(
    config: TaskConfig, source: str | os.PathLike = "hub", *, dataset_path: str | None = None, revision: str | None = None,
    sample_root: Path = SAMPLE_ROOT, env_var: str | None = "MICON_DATASET", default_repo: str = DEFAULT_REPO,
) -> dict[str, Any]:
    """Which data a source means, without downloading anything; the one resolver of every Hub-backed suite.

    ``{"kind": "sample" | "folder" | "hub", "location": <absolute folder or Hub repo id>, "revision":
    <the requested revision or None>, "chosen_by": "source" | "dataset_path" | "$<env_var>" |
    "task card" | "default"}``. :func:`load_source` reads exactly this location. A suite with its own data
    passes its bundled sample (``sample_root``), the variable that may name a local copy (``env_var``,
    None for none) and its Hub repo (``default_repo``). A name that is neither an existing folder nor a
    Hub repo id (``owner/name``) is refused here, naming what chose it.
    """
    src = os.fspath(source)
    if src == "sample":
        return {"kind": "sample", "location": str(sample_root), "revision": None, "chosen_by": "source"}
    if src == "hub":
        if dataset_path:
            repo, chosen = dataset_path, "dataset_path"
        elif env_var and os.environ.get(env_var):
            repo, chosen = os.environ[env_var], f"${env_var}"
        elif config.dataset_path:
            repo, chosen = config.dataset_path, "task card"
        else:
            repo, chosen = default_repo, "default"
    else:
        repo, chosen = src, "source"
    path = Path(repo).expanduser()
    if path.is_dir():  # a source, dataset_path or the variable may name a local copy
        return {"kind": "folder", "location": str(path.resolve()), "revision": None, "chosen_by": chosen}
    if not _REPO_ID.fullmatch(repo):
        what = f"source {repo!r} is neither 'hub', 'sample'," if chosen == "source" else f"{chosen} {repo!r} is neither"
        raise DataSourceError(f"task {config.task!r}: {what} a Hub repo id (owner/name) nor an existing folder")
    return {"kind": "hub", "location": repo, "revision": revision, "chosen_by": chosen}


def _download(repo: str, config: TaskConfig, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    folder = config.official_folder
    patterns = [
        "README.md",
        f"data/{config.config_name}/*",  # published layout
        f"{folder}/**",
        f"data/{folder}/**",  # raw layout, with or without the data/ prefix
    ]
    if config.answer_set_file:
        patterns += [config.answer_set_file, f"data/{config.answer_set_file}"]
    try:
        local = snapshot_download(repo_id=repo, repo_type="dataset", revision=revision, allow_patterns=patterns)
    except Exception as exc:  # offline, DNS, 401/404: one clear message, no fallback
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        if isinstance(exc, (RepositoryNotFoundError, GatedRepoError)):
            raise DataSourceError(f"task {config.task!r}: Hub dataset {repo!r} not found or not accessible ({type(exc).__name__})") from None
        raise DataSourceError(_offline_message(repo, config, exc)) from None
    return Path(local)


def load_source(
    config: TaskConfig,
    source: str | os.PathLike = "hub",
    *,
    dataset_path: str | None = None,
    revision: str | None = None,
    location: dict[str, Any] | None = None,
) -> datasets.Dataset:
    """The task's cases as a ``datasets.Dataset`` with the project's features.

    ``location``: a dict to fill with :func:`resolve_data_location`'s answer, plus ``commit`` (the Hub
    snapshot actually downloaded) for a Hub source.
    """
    where = resolve_data_location(config, source, dataset_path=dataset_path, revision=revision)
    if where["kind"] == "hub":
        path = _download(where["location"], config, revision)
        where["commit"] = path.name if path.parent.name == "snapshots" else None
    else:
        path = Path(where["location"])
    if location is not None:
        location.update(where)
    if _is_published(path, config):
        return _load_published(path, config)
    root = find_raw_root(path, [config.official_folder])
    if location is not None and root is not None:
        location["decoded"] = True  # a raw folder's conversion decodes every reference (see _image_bytes)
    if root is None:
        raise DataSourceError(
            f"task {config.task!r}: {path} holds neither the raw layout ({config.official_folder}/cases/*.yaml) "
            f"nor a published dataset (data/{config.config_name}/*.parquet)"
        )
    return raw_to_dataset(root, config)

