"""OmniContext data: the Hub dataset ``OmniGen2/OmniContext`` (split ``train``), a local copy of it (parquet
files or a ``save_to_disk`` folder), or the bundled sample, turned into the project's one row schema
(:func:`micon_tasks.data.sources.features`), so the runner, input hashing, judge requests and reports need
nothing of their own.

Why one loader for eight tasks: the dataset holds every task type in one split and each task keeps its
own type, so the source is read once per process and location and shared.

What is refused, naming the task, the item (its ``key``) and the field: a row of any type whose
``task_type`` is not one of the eight; in a task's own rows, a missing key, a repeated key, a missing
language, an empty instruction, no input images, or an image carried without bytes (a path alone is never
opened). Rows whose ``instruction_language`` is not ``en`` are left out of scoring and counted as
``filtered``, never dropped without a word.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from micon_tasks.data.sources import features, resolve_data_location
from micon_tasks.errors import CaseValidationError, DataSourceError

if TYPE_CHECKING:
    import datasets

    from micon_tasks.config import TaskConfig

__all__ = ["TASK_TYPES", "HUB_REPO", "SCORED_LANGUAGE", "SAMPLE_ROOT", "FIELDS", "resolve_location", "load_source_rows",
           "convert", "load_task_rows"]

TASK_TYPES = (
    "single_character", "single_object",
    "multi_character", "multi_object", "multi_character_object",
    "scene_character", "scene_object", "scene_character_object",
)
HUB_REPO = "OmniGen2/OmniContext"
SCORED_LANGUAGE = "en"
SAMPLE_ROOT = Path(__file__).resolve().parent / "sample"
FIELDS = ("key", "task_type", "instruction", "instruction_language", "input_images")
_TEXT_FIELDS = [f for f in FIELDS if f != "input_images"]

_LOADED: dict[tuple[Any, ...], datasets.Dataset] = {}  # one read of a source per process (eight tasks share it)


def resolve_location(config: TaskConfig, source: str | os.PathLike = "hub", *, dataset_path: str | None = None,
                     revision: str | None = None) -> dict[str, Any]:
    """Which data a source means, without reading it: the project's resolver
    (:func:`micon_tasks.data.sources.resolve_data_location`) with OmniContext's sample and Hub repo, and no
    environment variable (``$MICON_DATASET`` names MICON-Bench's data, never this)."""
    return resolve_data_location(config, source, dataset_path=dataset_path, revision=revision,
                                 sample_root=SAMPLE_ROOT, env_var=None, default_repo=HUB_REPO)


def _folder_files(path: Path, split: str) -> list[Path]:
    files = sorted(p for p in path.rglob("*.parquet") if "__pycache__" not in p.parts)
    named = [p for p in files if p.name.startswith(f"{split}-") or split in p.relative_to(path).parts[:-1]]
    return named or files


def _load_folder(path: Path, *, task: str, split: str) -> datasets.Dataset:
    import datasets

    if (path / "dataset_dict.json").is_file():
        dd = datasets.load_from_disk(str(path))
        if split not in dd:
            raise DataSourceError(f"task {task!r}: {path} holds splits {sorted(dd)}, not {split!r}")
        return dd[split]
    if (path / "state.json").is_file():
        return datasets.load_from_disk(str(path))
    files = _folder_files(path, split)
    if not files:
        raise DataSourceError(f"task {task!r}: {path} holds neither parquet files nor a save_to_disk dataset")
    return datasets.load_dataset("parquet", data_files={split: [str(p) for p in files]}, split=split)


def _signature(where: dict[str, Any], split: str) -> tuple[Any, ...]:
    """A key for the in-process cache that changes when a local folder's files change."""
    base = (where["kind"], where["location"], where.get("revision"), split)
    if where["kind"] == "hub":
        return base
    stats = []
    for p in sorted(Path(where["location"]).rglob("*")):
        if p.is_file():
            st = p.stat()
            stats.append((str(p), st.st_size, st.st_mtime_ns))
    return (*base, tuple(stats))


def load_source_rows(where: dict[str, Any], *, task: str, split: str) -> datasets.Dataset:
    """The source's rows in OmniContext's own schema (every task type), read once per process."""
    key = _signature(where, split)
    if key in _LOADED:
        return _LOADED[key]
    import datasets

    if where["kind"] == "hub":
        repo = where["location"]
        try:
            ds = datasets.load_dataset(repo, split=split, revision=where.get("revision"))
        except Exception as exc:  # offline, 401/404, a bad revision: one clear message, no fallback
            raise DataSourceError(
                f"task {task!r}: cannot load the Hub dataset {repo!r} (split {split!r}): {type(exc).__name__}: "
                f"{str(exc)[:200]}. Use --source sample (the bundled sample), or download the dataset once and pass "
                "its folder (parquet files or a save_to_disk folder) as --source"
            ) from None
    else:
        ds = _load_folder(Path(where["location"]), task=task, split=split)
    missing = [f for f in FIELDS if f not in ds.column_names]
    if missing:
        raise DataSourceError(f"task {task!r}: the OmniContext data at {where['location']} has no column(s) {missing} "
                              f"(columns: {ds.column_names})")
    _LOADED[key] = ds
    return ds


def _key(row: dict[str, Any]) -> str | None:
    """The item's id as text (an integer key is accepted), or None when it has none."""
    key = row.get("key")
    ok = isinstance(key, (str, int)) and not isinstance(key, bool) and str(key).strip()
    return str(key) if ok else None


def _select(rows: list[dict[str, Any]], *, task: str, task_type: str) -> tuple[list[int], dict[str, int]]:
    """(indices of the task's scored rows, languages filtered out -> count); refuses bad rows by name."""
    picked: list[int] = []
    filtered: Counter[str] = Counter()
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        key = _key(row)
        item = key if key is not None else f"row {i}"
        kind = row.get("task_type")
        if kind not in TASK_TYPES:
            raise CaseValidationError(task, item, "task_type",
                                      f"unknown task type {kind!r}; OmniContext's are {', '.join(TASK_TYPES)}")
        if kind != task_type:
            continue
        if key is None:
            raise CaseValidationError(task, item, "key", "must be a non-empty string (the item's id)")
        lang = row.get("instruction_language")
        if not isinstance(lang, str) or not lang.strip():
            raise CaseValidationError(task, item, "instruction_language", "must name the instruction's language, e.g. 'en'")
        if lang.strip() != SCORED_LANGUAGE:
            filtered[lang.strip()] += 1
            continue
        text = row.get("instruction")
        if not isinstance(text, str) or not text.strip():
            raise CaseValidationError(task, item, "instruction", "is empty")
        if item in seen:
            raise CaseValidationError(task, item, "key", f"repeats (rows {seen[item]} and {i})")
        seen[item] = i
        picked.append(i)
    return picked, dict(sorted(filtered.items()))


def _to_rows(batch: dict[str, list[Any]], *, task: str) -> dict[str, list[Any]]:
    """One batch of OmniContext rows -> the project's row schema (images stay encoded bytes)."""
    out: dict[str, list[Any]] = {name: [] for name in features()}
    for key, kind, text, images in zip(batch["key"], batch["task_type"], batch["instruction"], batch["input_images"]):
        key = str(key)
        if not images:
            raise CaseValidationError(task, key, "input_images", "has no images")
        roles = [f"R{chr(ord('A') + k)}" for k in range(len(images))]
        refs, paths = [], []
        for k, (role, im) in enumerate(zip(roles, images)):
            if not isinstance(im, dict) or not im.get("bytes"):
                raise CaseValidationError(task, key, f"input_images[{k}]",
                                          "carries no image bytes (a path alone is never opened)")
            name = Path(im.get("path") or "").name or f"{key}_{role}"
            refs.append({"bytes": im["bytes"], "path": name})
            paths.append(name)
        row = {"case_id": key, "task": task, "task_type": kind, "refs": refs, "ref_roles": roles,
               "ref_paths": paths, "prompt": text.strip(), "goal": "", "constraints_hard": [], "constraints_soft": [],
               "expectation_list": [], "participating_dimensions": [], "notes": "", "answer_set": None}
        for name, value in row.items():
            out[name].append(value)
    return out


def convert(source: datasets.Dataset, *, task: str, task_type: str) -> tuple[datasets.Dataset, dict[str, Any]]:
    """The task's scored rows in the project's schema, and what was left out (``filtered``)."""
    import datasets
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    meta = source.select_columns(_TEXT_FIELDS).to_list()  # no image is read for rows of other types
    picked, by_language = _select(meta, task=task, task_type=task_type)
    quiet = are_progress_bars_disabled()
    disable_progress_bars()  # eight small conversions per run: their bars would only be noise
    try:
        sub = source.select_columns(list(FIELDS)).select(picked)
        try:
            sub = sub.cast_column("input_images", datasets.List(datasets.Image(decode=False)))
        except (TypeError, ValueError) as exc:
            raise DataSourceError(f"task {task!r}: column 'input_images' is not a list of images ({exc})") from None
        rows = sub.map(_to_rows, batched=True, batch_size=16, remove_columns=list(FIELDS), features=features(),
                       fn_kwargs={"task": task})
    finally:
        if not quiet:
            enable_progress_bars()
    info = {
        "rule": f"instruction_language == {SCORED_LANGUAGE!r}",
        "n_rows_of_type": len(picked) + sum(by_language.values()),
        "n_scored": len(picked),
        "n_filtered": sum(by_language.values()),
        "filtered_languages": by_language,
        "n_source_rows": len(meta),
    }
    return rows, info


def load_task_rows(config: TaskConfig, task_type: str, source: str | os.PathLike = "hub", *,
                   dataset_path: str | None = None, revision: str | None = None) -> tuple[datasets.Dataset, dict[str, Any], dict[str, Any]]:
    """(the task's rows, where they came from, what was filtered) for one OmniContext task."""
    where = resolve_location(config, source, dataset_path=dataset_path, revision=revision)
    raw = load_source_rows(where, task=config.task, split=config.test_split)
    rows, info = convert(raw, task=config.task, task_type=task_type)
    return rows, where, info
