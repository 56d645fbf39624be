"""The XVerseBench tasks: ``xversebench_single`` (90 cases) and ``xversebench_multi`` (210), group ``xversebench``.

Their cards (beside this file) name :class:`XVerseBenchTask`; the task index builds one subclass per card.

The data is never downloaded: ``--source sample`` reads the bundled synthetic sample, ``--source DIR``
(or ``--dataset_path DIR``, or ``$MICON_XVERSEBENCH``) a folder built by ``micon prepare xversebench``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from micon_tasks.errors import ConfigError, DataSourceError
from micon_tasks.suites.xversebench import data
from micon_tasks.task import Task
from micon_tasks.types import Case

__all__ = ["XVerseBenchTask", "ENV_VAR"]

ENV_VAR = "MICON_XVERSEBENCH"


class XVerseBenchTask(Task):
    """A task reading one split of a prepared XVerseBench folder (``config.dataset_name``: single / multi)."""

    @property
    def split(self) -> str:
        """The split, declared once by the card's ``dataset_name``: the data read and the scores' label follow it."""
        if not self.config.dataset_name:
            raise ConfigError(f"task {self.name!r}, field 'dataset_name': names the XVerseBench split to read "
                              "(single or multi)")
        return self.config.dataset_name

    def _root(self) -> tuple[Path, str, str]:
        """(folder, kind, what chose it)."""
        if self.source == "sample":
            return data.SAMPLE_ROOT, "sample", "--source sample"
        if self.source not in ("hub", ""):
            return Path(self.source).expanduser().resolve(), "folder", "--source"
        if self.dataset_path:
            return Path(self.dataset_path).expanduser().resolve(), "folder", "--dataset_path"
        if os.environ.get(ENV_VAR):
            return Path(os.environ[ENV_VAR]).expanduser().resolve(), "folder", f"${ENV_VAR}"
        raise DataSourceError(
            f"task {self.name!r}: XVerseBench has no Hub dataset; build a local folder with `micon prepare "
            "xversebench --xverse <XVerse checkout> --images <prepared DreamBench++ images> --output DIR` and pass "
            f"--source DIR (or set ${ENV_VAR}); --source sample runs the bundled synthetic sample"
        )

    @property
    def dataset(self) -> Any:
        if self._dataset is None:
            root, kind, chosen = self._root()
            rows = data.read_split(root, self.split, task=self.name)
            self._dataset = data.to_dataset(root, rows, task=self.name, split=self.split)
            self._location = {"kind": kind, "path": str(root), "split": self.split, "chosen_by": chosen}
        return self._dataset

    @property
    def data_location(self) -> dict[str, Any] | None:
        if self._location is None and self._dataset is None:
            try:
                root, kind, chosen = self._root()
            except DataSourceError as exc:
                return {"kind": "missing", "error": str(exc)}
            return {"kind": kind, "path": str(root), "split": self.split, "chosen_by": chosen}
        return self._location

    def row_to_case(self, row: dict[str, Any], *, decode: bool = True) -> Case:
        case = super().row_to_case(row, decode=decode)
        case.extra["subjects"] = [dict(s) for s in row["subjects"]]
        case.extra["questions"] = [dict(q) for q in row["questions"]]
        return case

    def subject_types(self, case_id: str) -> list[str]:
        """The case's subject types in reference order, read without decoding any image."""
        try:
            i = self.case_ids.index(case_id)
        except ValueError:
            raise KeyError(f"task {self.name!r} has no case {case_id!r}") from None
        return [s["type"] for s in self.dataset.select_columns(["subjects"])[i]["subjects"]]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "split": self.split, "num_images": self.num_images}
