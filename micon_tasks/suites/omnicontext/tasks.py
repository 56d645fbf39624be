"""The eight OmniContext tasks (``omnicontext_<task_type>``) and the ``omnicontext`` group (a suite).

Each task is one YAML card beside this module over :class:`OmniContextTask` (the shared template names it
with ``class:``); the card's ``metadata.task_type``
says which rows of the dataset it scores. Sources: ``hub`` (``OmniGen2/OmniContext``, split ``train``),
a local folder (parquet files or ``save_to_disk``) and ``sample`` (bundled, built by
``scripts/build_omnicontext_sample.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from micon_tasks.errors import ConfigError
from micon_tasks.suites.omnicontext import data
from micon_tasks.task import Task, _class_name, declare, register_yaml_group

__all__ = ["OmniContextTask", "CARDS", "TASK_NAMES", "card_task_type"]

CARDS = Path(__file__).resolve().parent


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


def _declare_all() -> list[str]:
    names = []
    for card in sorted(CARDS.glob("omnicontext_*.yaml")):
        cls = type(_class_name(card.stem), (OmniContextTask,), {"__module__": __name__,
                                                                "__doc__": f"OmniContext task card {card.name}."})
        declare(card)(cls)
        card_task_type(cls.config)  # a card naming no known task type is refused here, naming the task
        names.append(cls.config.task)
    return names


TASK_NAMES = _declare_all()
register_yaml_group(CARDS / "omnicontext.yaml")
