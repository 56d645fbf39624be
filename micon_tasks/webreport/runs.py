"""One run folder as the report reads it: results.json, run_config.json, samples_<task>.jsonl.

A folder that is not a run is refused (one line); a run with missing files still loads, and each
missing piece becomes a notice the page shows where it applies (the run, a task, or a case).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from micon_tasks.errors import MiconError
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.pipeline import find_model_dir
from micon_tasks.runner.records import read_records

__all__ = ["Run", "ReportInputError", "load_run", "inside"]


class ReportInputError(MiconError):
    """A folder given to ``micon report`` cannot be read as a run."""


@dataclass
class Run:
    root: Path
    name: str
    config: dict[str, Any]
    results: dict[str, Any] | None
    tasks: list[str]
    records: dict[str, list[dict[str, Any]]]
    notices: list[str] = field(default_factory=list)
    task_notices: dict[str, list[str]] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return Layout(self.root)

    @property
    def model(self) -> str:
        return str(self.config.get("model") or (self.results or {}).get("model_name") or "?")

    @property
    def dar(self) -> dict[str, Any] | None:
        return self.config.get("dar")

    def data_location(self, task: str) -> dict[str, Any] | None:
        """Where the run read ``task``'s data: results.json when present, else resolved from its config."""
        info = ((self.results or {}).get("tasks") or {}).get(task) or {}
        if info.get("dataset"):
            return info["dataset"]
        try:
            import registry
            from micon_tasks.data.sources import resolve_data_location

            return resolve_data_location(registry.get_task(task).config, self.config.get("source") or "hub",
                                         dataset_path=self.config.get("dataset_path"))
        except Exception:  # an unknown task, a source that no longer resolves: the card says "unknown"
            return None


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` resolves inside ``root`` (paths read from records stay in their run folder)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise ReportInputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: expected a JSON object")
    return data


def load_run(path: str | Path) -> Run:
    """Read a run folder (``<output_path>/<model>[__dar]``, or ``<output_path>`` holding one run)."""
    given = Path(path)
    if not given.is_dir():
        raise ReportInputError(f"{given} is not a folder (expected a micon run folder)")
    try:
        root = find_model_dir(given).resolve()
    except MiconError as exc:
        raise ReportInputError(str(exc)) from None
    layout = Layout(root)
    notices: list[str] = []
    stored = _read_json(layout.run_config)
    results = _read_json(layout.results_json) if layout.results_json.exists() else None
    if results is None:
        notices.append("results.json is missing: no scores (run `micon aggregate` on this folder)")
    config = dict((results or {}).get("config") or stored.get("config") or {})
    tasks = list(config.get("tasks") or (results or {}).get("n-samples") or [])
    if not tasks:
        raise ReportInputError(f"{layout.run_config}: names no tasks")
    records: dict[str, list[dict[str, Any]]] = {}
    task_notices: dict[str, list[str]] = {t: [] for t in tasks}
    for task in tasks:
        samples = layout.samples(task)
        if not samples.exists():
            records[task] = []
            task_notices[task].append(f"{samples.name} is missing: the run's cases of this task are unknown "
                                      "(run `micon aggregate` on this folder)")
            continue
        recs = read_records(samples)
        n_expected = ((results or {}).get("n-samples") or {}).get(task, {}).get("effective")
        if n_expected is not None and len(recs) < n_expected:
            task_notices[task].append(f"{samples.name} holds {len(recs)} records; results.json counts {n_expected}")
        records[task] = recs
    return Run(root=root, name=root.name, config=config, results=results, tasks=tasks, records=records,
               notices=notices, task_notices=task_notices)
