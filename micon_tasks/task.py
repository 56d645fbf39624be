"""The Task: a benchmark task's cases, checkpoint set and scoring hook, behind one small class.

    task = load_task("spatial_composition", source="sample")
    len(task); case = task[0]; [c.case_id for c in task]; task.checkpoints; task.dataset

A task is declared by a YAML card (data source, checkpoints, scoring) plus, where it needs behaviour of
its own, a Python subclass. The task index (micon_tasks/index.py) reads the cards and registers the tasks;
users add variants without Python through ``include_path`` folders of cards in lm-eval's dialect
(``task:``, ``class:``, ``include:``, ``group:``; docs/tasks.md).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import registry
from micon_tasks.checkpoints import build_checkpoints, read_qa_file, resolve_checkpoints_from
from micon_tasks.config import TaskConfig
from micon_tasks.errors import CaseValidationError, ConfigError
from micon_tasks.images import open_lazy, to_rgb
from micon_tasks.index import IncludeReport, include_path, task_index
from micon_tasks.types import AnswerSet, Case, CaseScore, Checkpoint, JudgeResult

if TYPE_CHECKING:
    import datasets

__all__ = ["Task", "MiconTask", "load_task", "list_tasks", "include_path", "IncludeReport", "declare", "register_yaml_group"]

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
        self._undecoded: Any = None  # a RowReader over the dataset, references left encoded
        #: images generated per case in this run (the card's, unless the runner is told otherwise)
        self.num_images: int = int(self.config.num_images)
        #: whether loading decoded every reference already (a raw folder's conversion does)
        self.decoded_on_load = False
        self._location: dict[str, Any] | None = None
        cfg = self.config
        # The caller's file is relative to the current folder; the card's own, to the card.
        qa_file = Path(checkpoints_from).expanduser().absolute() if checkpoints_from else None
        if qa_file is None and cfg.checkpoints_from:
            qa_file = _relative_to(cfg.checkpoints_from, cfg.source_file)
        if cfg.scoring.kind != "checkpoints":  # rubric and metric tasks have no checkpoint set
            if checkpoints_from:
                raise ConfigError(f"task {cfg.task!r} is scored by kind {cfg.scoring.kind!r}: it has no checkpoints "
                                  "for checkpoints_from to replace")
            self.checkpoints, self.checkpoints_source = [], None
        elif qa_file:
            self.checkpoints: list[Checkpoint] = read_qa_file(qa_file, task=cfg.task)
            self.checkpoints_source = str(checkpoints_from or cfg.checkpoints_from)
        else:
            self.checkpoints = build_checkpoints(cfg.checkpoints, task=cfg.task)
            self.checkpoints_source = "builtin" if task_index().is_builtin(cfg.source_file) else str(cfg.source_file)

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
        """The dimension letters this task scores, in the checkpoint set's order (the scorer's own rule)."""
        from micon_tasks.scoring import dimension_order

        return dimension_order(self.checkpoints)

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
            self.decoded_on_load = bool(where.pop("decoded", False))
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
        if self._undecoded is None:  # streamed, not memory-mapped: a run's memory stays flat (data/rows.py)
            from micon_tasks.data.rows import RowReader

            self._undecoded = RowReader(self.dataset)
        row = self._undecoded.row(index)
        row["refs"] = [open_lazy(ref["bytes"]) for ref in row["refs"]]
        return self.row_to_case(row, decode=False)

    def release_rows(self) -> None:
        """Drop the batch of rows ``lazy_case`` keeps in hand: a finished task's images leave memory."""
        if self._undecoded is not None:
            self._undecoded.release()

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
    """A MICON-Bench task driven entirely by its YAML card (the default class of a card without ``class:``)."""


def declare(card: str | Path):
    """Class decorator binding a card to a class written for it, through the task index (for suites that
    name their cards from code; a card may instead name its class with ``class: module:Class``). A relative
    ``card`` is a built-in card of micon_tasks/tasks/."""

    def wrap(cls: type[Task]) -> type[Task]:
        path = Path(card) if Path(card).is_absolute() else Path(__file__).resolve().parent / "tasks" / card
        return task_index().bind(cls, path)

    return wrap


def register_yaml_group(path: str | Path) -> str:
    """Register a group card named from code, through the task index (see :func:`declare`)."""
    return task_index().add_group_card(path)


def _relative_to(path: str | Path, source_file: str | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and source_file and Path(source_file).exists():
        return Path(source_file).parent / p
    return p


# -- public entry points ------------------------------------------------------------------------
def load_task(
    name: str,
    source: str = "hub",
    *,
    dataset_path: str | None = None,
    revision: str | None = None,
    checkpoints_from: str | Path | Mapping[str, str] | Sequence[str] | None = None,
    include: str | Path | None = None,
) -> Task:
    """A Task by name or alias (``"spatial_composition"``, ``"spatial_geometric_constraints"``).

    ``source``: ``"hub"`` (default; ``dataset_path`` or ``$MICON_DATASET`` picks the repo), ``"sample"``,
    or a local folder (raw layout or published parquet). ``include`` indexes an include_path first.
    ``checkpoints_from``: an official ``.qa.txt`` file for this task, ``task=FILE`` pairs, a folder holding
    the official templates by their official names, or a task -> file mapping (relative paths resolve
    against the current folder).
    """
    if include is not None:
        include_path(include)
    cls = registry.get_task(name)
    task = cls.config.task
    if isinstance(checkpoints_from, Mapping):
        qa = {registry.tasks.canonical(k): v for k, v in checkpoints_from.items()}.get(task)
    else:
        qa = resolve_checkpoints_from(checkpoints_from, [task]).get(task)
    return cls(source, dataset_path=dataset_path, revision=revision, checkpoints_from=qa)


def list_tasks(pattern: str = "*") -> list[str]:
    return registry.list_tasks(pattern)
