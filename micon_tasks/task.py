"""The Task: a benchmark task's cases, checkpoint set and scoring hook, behind one small class.

    task = load_task("spatial_composition", source="sample")
    len(task); case = task[0]; [c.case_id for c in task]; task.checkpoints; task.dataset

A task is declared by a YAML card (data source, checkpoints, scoring) plus, where it needs behaviour of
its own, a Python subclass. Users add task variants without Python through ``include_path`` folders of
YAML cards in lm-eval's dialect (``task:``, ``class:``, ``include:``, ``group:``).
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import registry
from micon_tasks.checkpoints import build_checkpoints, read_qa_file
from micon_tasks.config import TaskConfig, read_yaml
from micon_tasks.errors import CaseValidationError, ConfigError
from micon_tasks.images import open_lazy, to_rgb
from micon_tasks.types import AnswerSet, Case, CaseScore, Checkpoint, JudgeResult

if TYPE_CHECKING:
    import datasets

__all__ = ["Task", "load_task", "list_tasks", "include_path", "IncludeReport", "declare"]

log = logging.getLogger(__name__)


class Task:
    """Base class of every task. Subclasses set ``config`` (a TaskConfig) and are registered.

    The dataset is loaded on first use; every case is validated then, and an invalid one raises an
    error naming the task, the case and the field.
    """

    config: ClassVar[TaskConfig]
    registered_name: ClassVar[str]

    def __init__(
        self,
        source: str = "hub",
        *,
        dataset_path: str | None = None,
        revision: str | None = None,
        checkpoints_from: str | Path | None = None,
        dataset: datasets.Dataset | None = None,
    ):
        self.source = str(source)
        self.dataset_path = dataset_path
        self.revision = revision
        self._dataset = dataset
        self._undecoded: datasets.Dataset | None = None  # the dataset with its references left encoded
        self._location: dict[str, Any] | None = None
        cfg = self.config
        qa_file = checkpoints_from or cfg.checkpoints_from
        if cfg.scoring.kind != "checkpoints":  # rubric and metric tasks have no checkpoint set
            if checkpoints_from:
                raise ConfigError(f"task {cfg.task!r} is scored by kind {cfg.scoring.kind!r}: it has no checkpoints "
                                  "for checkpoints_from to replace")
            self.checkpoints, self.checkpoints_source = [], None
        elif qa_file:
            self.checkpoints: list[Checkpoint] = read_qa_file(_relative_to(qa_file, cfg.source_file), task=cfg.task)
            self.checkpoints_source = str(qa_file)
        else:
            self.checkpoints = build_checkpoints(cfg.checkpoints, task=cfg.task)
            self.checkpoints_source = "builtin" if _is_builtin(cfg) else str(cfg.source_file)

    # -- identity -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config.task

    @property
    def is_story(self) -> bool:
        return self.config.scoring.story_hybrid

    @property
    def scoring_kind(self) -> Any:
        """The :class:`~micon_tasks.scoring.ScoringKind` named by the card's ``scoring.kind``."""
        return registry.scoring_kinds.get(self.config.scoring.kind)

    @property
    def suite(self) -> str | None:
        """The suite (a group card with a ``suite:`` block) this task reports under, or None."""
        for name in registry.suites.list():
            if self.name in registry.suites.get(name)["tasks"]:
                return name
        return None

    @property
    def version(self) -> Any:
        return self.config.metadata.get("version")

    @property
    def dimensions(self) -> list[str]:
        """The dimension letters this task scores, in order."""
        return sorted({cp.dimension for cp in self.checkpoints})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} source={self.source!r}>"

    # -- data -----------------------------------------------------------------------------------
    @property
    def dataset(self) -> datasets.Dataset:
        if self._dataset is None:
            from micon_tasks.data.sources import load_source

            where: dict[str, Any] = {}
            ds = load_source(self.config, self.source, dataset_path=self.dataset_path, revision=self.revision, location=where)
            self._validate(ds)
            self._dataset, self._location = ds, where
        return self._dataset

    @property
    def data_location(self) -> dict[str, Any] | None:
        """Which data this task reads: kind (sample / folder / hub), the absolute folder or Hub repo id
        after ``dataset_path`` / ``$MICON_DATASET`` resolution, the revision asked for, what chose it, and
        (once a Hub snapshot is loaded) its commit. None for a task built from an in-memory dataset."""
        if self._location is None and self._dataset is None:  # not loaded yet: where it would be read from
            from micon_tasks.data.sources import resolve_data_location

            return resolve_data_location(self.config, self.source, dataset_path=self.dataset_path, revision=self.revision)
        return self._location

    def _validate(self, ds: datasets.Dataset) -> None:
        """Schema-check every row without decoding its images."""
        import pyarrow.compute as pc

        from micon_tasks.data.checks import check_ref_bytes
        from micon_tasks.data.raw import validate_record

        check_ref_bytes(ds, task=self.name)
        n_refs = pc.list_value_length(ds.data.column("refs")).to_pylist()
        rows = ds.remove_columns(["refs"]).to_list()
        lo, hi = self.config.refs.get("min", 1), self.config.refs.get("max", 8)
        for row, n in zip(rows, n_refs):
            row["refs"] = [None] * (n or 0)
            if row.get("answer_set") is None:
                row["answer_set"] = None
            validate_record(row, task=self.name)
            if row["task"] != self.name and row["task"] not in self.config.aliases:
                warnings.warn(f"task {self.name!r}, case {row['case_id']!r}: row says task {row['task']!r}", stacklevel=3)
            if not lo <= n <= hi:
                log.warning("task %r, case %r: %d references, expected %d-%d", self.name, row["case_id"], n, lo, hi)

    @cached_property
    def case_ids(self) -> list[str]:
        return list(self.dataset["case_id"])

    def __len__(self) -> int:
        return self.dataset.num_rows

    def __getitem__(self, index: int) -> Case:
        if not -len(self) <= index < len(self):
            raise IndexError(f"task {self.name!r} has {len(self)} cases; index {index} is out of range")
        try:
            row = self.dataset[index]
        except Exception as exc:  # noqa: BLE001 - datasets decodes the images here; name the case, not a bare OSError
            cid = self.case_ids[index]
            raise CaseValidationError(self.name, cid, "refs", f"cannot decode a reference: {type(exc).__name__}: {exc}") from None
        return self.row_to_case(row)

    def __iter__(self) -> Iterator[Case]:
        for index in range(len(self)):
            yield self[index]

    def case(self, case_id: str) -> Case:
        """The case with this id."""
        try:
            return self[self.case_ids.index(case_id)]
        except ValueError:
            raise KeyError(f"task {self.name!r} has no case {case_id!r}") from None

    def lazy_case(self, index: int) -> Case:
        """The case with references that decode only when their pixels are touched (``images.open_lazy``):
        a judge then sends the stored bytes as they are, and nothing is decoded that nobody looks at."""
        if self._undecoded is None:
            from datasets import Image, List

            self._undecoded = self.dataset.cast_column("refs", List(Image(decode=False)))
        row = self._undecoded[index]
        row["refs"] = [open_lazy(ref["bytes"]) for ref in row["refs"]]
        return self.row_to_case(row, decode=False)

    def row_to_case(self, row: dict[str, Any], *, decode: bool = True) -> Case:
        refs = []
        for role, im in zip(row["ref_roles"], row["refs"]):
            try:
                refs.append(to_rgb(im) if decode else im)
            except Exception as exc:
                raise CaseValidationError(self.name, row["case_id"], f"refs.{role}", f"cannot decode image: {exc}") from None
        ans = row.get("answer_set")
        answer_set = (
            AnswerSet(ans["background_summary"], tuple(ans["positive_candidates"]), tuple(ans["negative_candidates"]))
            if ans
            else None
        )
        return Case(
            task=self.name,
            case_id=row["case_id"],
            refs=refs,
            ref_roles=list(row["ref_roles"]),
            prompt=row["prompt"],
            goal=row.get("goal") or "",
            constraints_hard=list(row.get("constraints_hard") or []),
            constraints_soft=list(row.get("constraints_soft") or []),
            answer_set=answer_set,
            extra={
                k: row.get(k)
                for k in ("task_type", "notes", "expectation_list", "participating_dimensions", "ref_paths")
            },
        )

    # -- scoring --------------------------------------------------------------------------------
    def score_case(self, case: Case, result: JudgeResult | None, *, failure_reason: str | None = None) -> CaseScore:
        """Score one case from its judge result (None with ``failure_reason`` when no image exists)."""
        return self.scoring_kind.score_case(self, result, case_id=case.case_id, failure_reason=failure_reason)

    def describe(self) -> dict[str, Any]:
        """What goes into results files about this task."""
        return {
            "task": self.name,
            "version": self.version,
            "source": self.source,
            "dataset_path": self.dataset_path,
            "dataset": self.data_location,
            "checkpoints": self.checkpoints_source,
            "n_checkpoints": len(self.checkpoints),
        }


class MiconTask(Task):
    """A MICON-Bench task driven entirely by its YAML card."""


def _is_builtin(cfg: TaskConfig) -> bool:
    return bool(cfg.source_file) and Path(cfg.source_file).resolve().parent == _BUILTIN_DIR


def _relative_to(path: str | Path, source_file: str | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and source_file and Path(source_file).exists():
        return Path(source_file).parent / p
    return p


_BUILTIN_DIR = Path(__file__).resolve().parent / "tasks"


def declare(card: str | Path, *, override: bool = False):
    """Class decorator: attach a YAML card to a Task subclass and register it under the card's names."""

    def wrap(cls: type[Task]) -> type[Task]:
        path = Path(card) if Path(card).is_absolute() else _BUILTIN_DIR / card
        data = read_yaml(path)
        cls.config = TaskConfig.from_dict(data, source=str(path))
        registry.tasks.add(cls.config.task, cls, aliases=cls.config.aliases, override=override)
        return cls

    return wrap


# -- include_path: YAML-only tasks and groups -------------------------------------------------------
@dataclass
class IncludeReport:
    """What an include_path folder added, and every file that could not be used (never skipped silently)."""

    tasks: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def _resolve_class(spec: str | None, *, source: str) -> tuple[type[Task], TaskConfig | None]:
    """``class:`` names a registered task (inheriting its card) or ``module:Class``; default MiconTask."""
    if not spec:
        return MiconTask, None
    if ":" in spec or ("." in spec and spec not in registry.tasks):
        module, _, attr = spec.replace(":", ".").rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{source}: class {spec!r} cannot be imported: {exc}") from None
        if not (isinstance(obj, type) and issubclass(obj, Task)):
            raise ConfigError(f"{source}: class {spec!r} is not a Task subclass")
        return obj, getattr(obj, "config", None)
    base = registry.get_task(spec)
    return base, base.config


def register_yaml_task(path: str | Path, *, override: bool = False) -> str:
    """Register one YAML task card; returns its name."""
    data = read_yaml(path)
    base_cls, base_cfg = _resolve_class(data.get("class"), source=str(path))
    if base_cfg is not None:
        merged = {k: v for k, v in vars(base_cfg).items() if k not in ("source_file",)}
        merged["aliases"] = ()  # a variant does not inherit its base's names
        merged.update({k: v for k, v in data.items() if k not in ("class", "scoring")})
        # A variant overrides only the scoring keys it names (the rest, e.g. story_hybrid, is inherited).
        merged["scoring"] = {**base_cfg.scoring.to_card(), **(data.get("scoring") or {})}
        data = merged
    cfg = TaskConfig.from_dict(data, source=str(path))
    cls = type(_class_name(cfg.task), (base_cls,), {"config": cfg, "__module__": __name__})
    registry.tasks.add(cfg.task, cls, aliases=cfg.aliases, override=override)
    return cfg.task


def register_yaml_group(path: str | Path, data: dict[str, Any] | None = None, *, override: bool = False) -> str:
    data = data if data is not None else read_yaml(path)
    members = data.get("task")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ConfigError(f"{path}: group {data.get('group')!r} needs 'task' to be a list of task names")
    registry.register_group(data["group"], members, override=override)
    suite = data.get("suite")
    if suite is not None:
        if not isinstance(suite, dict):
            raise ConfigError(f"{path}: group {data['group']!r}, field 'suite' must be a mapping")
        registry.suites.add(data["group"], {**suite, "group": data["group"], "tasks": list(members)}, override=override)
    return data["group"]


def include_path(path: str | Path, *, override: bool = False) -> IncludeReport:
    """Register every ``*.yaml`` under ``path`` (sorted): tasks first, then groups.

    Files that fail to parse or validate are reported with a warning each and listed in the report.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"include_path {str(root)!r} is not a folder")
    report = IncludeReport()
    group_files: list[tuple[Path, dict[str, Any]]] = []
    for file in sorted(p for p in root.rglob("*.yaml") if "__pycache__" not in p.parts):
        try:
            data = read_yaml(file)
            if "group" in data and isinstance(data.get("task"), list):
                group_files.append((file, data))
            elif isinstance(data.get("task"), str):
                report.tasks.append(register_yaml_task(file, override=override))
            else:
                raise ConfigError(f"{file}: neither a task ('task: name') nor a group ('group:' + 'task: [...]')")
        except Exception as exc:  # report and go on: one broken file must not hide the others
            report.errors.append((str(file), str(exc)))
    for file, data in group_files:
        try:
            report.groups.append(register_yaml_group(file, data, override=override))
        except Exception as exc:
            report.errors.append((str(file), str(exc)))
    for file, msg in report.errors:
        warnings.warn(f"include_path: {file} was not loaded: {msg}", stacklevel=2)
    return report


def _class_name(task: str) -> str:
    return "".join(part.capitalize() for part in task.replace("-", "_").split("_")) or "YamlTask"


# -- public entry points ------------------------------------------------------------------------
def load_task(
    name: str,
    source: str = "hub",
    *,
    dataset_path: str | None = None,
    revision: str | None = None,
    checkpoints_from: str | Path | None = None,
    include: str | Path | None = None,
) -> Task:
    """A Task by name or alias (``"spatial_composition"``, ``"spatial_geometric_constraints"``).

    ``source``: ``"hub"`` (default; ``dataset_path`` or ``$MICON_DATASET`` picks the repo), ``"sample"``,
    or a local folder (raw layout or published parquet). ``include`` registers an include_path first.
    """
    if include is not None:
        include_path(include)
    cls = registry.get_task(name)
    return cls(source, dataset_path=dataset_path, revision=revision, checkpoints_from=checkpoints_from)


def list_tasks(pattern: str = "*") -> list[str]:
    return registry.list_tasks(pattern)
