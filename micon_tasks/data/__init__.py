"""Data sources: the raw layout reader and the ``datasets`` conversion (see sources.py)."""

from __future__ import annotations

from typing import Any

from micon_tasks.data.raw import confine_path, find_raw_root, read_raw_task
from micon_tasks.data.sources import SAMPLE_ROOT, cache_dir, features, load_source, raw_to_dataset

__all__ = ["FEATURES", "SAMPLE_ROOT", "cache_dir", "confine_path", "features", "find_raw_root", "load_source",
           "raw_to_dataset", "read_raw_task"]


def __getattr__(name: str) -> Any:
    if name == "FEATURES":
        return features()
    raise AttributeError(name)
