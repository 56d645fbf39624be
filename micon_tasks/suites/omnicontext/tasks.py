"""The eight OmniContext tasks (``omnicontext_<task_type>``) and the ``omnicontext`` group (a suite).

Each task is one YAML card beside this module, read by the task index (``micon_tasks/index.py``); the shared
template names :class:`OmniContextTask` with ``class:``, so every card gets its own subclass; the card's ``metadata.task_type``
says which rows of the dataset it scores. Sources: ``hub`` (``OmniGen2/OmniContext``, split ``train``),
a local folder (parquet files or ``save_to_disk``) and ``sample`` (bundled, built by
``scripts/build_omnicontext_sample.py``).
"""

from __future__ import annotations

from typing import Any

from micon_tasks.errors import ConfigError
from micon_tasks.suites.omnicontext import data
from micon_tasks.task import Task

__all__ = ["OmniContextTask", "card_task_type"]


def card_task_type(config: Any) -> str:
    """The OmniContext task type a card scores (``metadata.task_type``), checked against the eight."""
    kind = (config.metadata or {}).get("task_type")
    if kind not in data.TASK_TYPES:
        raise ConfigError(f"{config.source_file}: task {config.task!r}, field 'metadata.task_type': {kind!r} is not "
                          f"one of {', '.join(data.TASK_TYPES)}")
    return kind


class OmniContextTask(Task):
    """An OmniContext task type: the dataset's rows of that type whose instruction is in English."""

    _filtered: dict[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A card naming no known task type is refused when the index reads it, naming the task."""
        super().__init_subclass__(**kwargs)
        if "config" in vars(cls):
            card_task_type(cls.config)

    @property
    def task_type(self) -> str:
        return card_task_type(self.config)

    @property
    def dataset(self) -> Any:
        if self._dataset is None:
            rows, where, info = data.load_task_rows(self.config, self.task_type, self.source,
                                                    dataset_path=self.dataset_path, revision=self.revision)
            self._validate(rows)
            self._dataset, self._location, self._filtered = rows, where, info
        return self._dataset

    @property
    def data_location(self) -> dict[str, Any] | None:
        if self._location is None and self._dataset is None:
            return data.resolve_location(self.config, self.source, dataset_path=self.dataset_path, revision=self.revision)
        return self._location

    @property
    def filtered(self) -> dict[str, Any]:
        """What the task left out of scoring and why (``n_filtered``, ``filtered_languages``, ``rule``)."""
        if self._filtered is None:
            self.dataset  # noqa: B018 - loading counts them
        return self._filtered or {"n_filtered": 0, "filtered_languages": {}, "rule": None}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "task_type": self.task_type, "filtered": self.filtered if self._dataset is not None
                else None}
