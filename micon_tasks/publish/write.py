"""Write the Hub-ready folder: parquet shards per task, checkpoint sets as JSON, a manifest.

```
data/<config>/test-00000-of-0000N.parquet   rows with the project's features (images embedded)
checkpoints/<task>.json                     the task's checkpoint set (checkpoints.schema.json)
micon_bench.json                            what was published: version, tasks, counts, shards
README.md                                   the dataset card (card.py)
```
Shards hold whole cases, split greedily so that each stays under ``max_shard_bytes`` of image data
(a single case larger than the bound gets a shard of its own). Reading the images again here keeps
memory bounded by one shard, not one task.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from micon_tasks.data.sources import features
from micon_tasks.publish.collect import Collection, TaskCases

__all__ = ["SPLIT", "MANIFEST", "plan_shards", "write_task", "write_checkpoints", "write_manifest"]

SPLIT = "test"
MANIFEST = "micon_bench.json"


def plan_shards(cases: TaskCases, max_shard_bytes: int) -> list[list[dict[str, Any]]]:
    """Consecutive groups of case records, each under ``max_shard_bytes`` of reference images."""
    shards: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for rec in cases.records:
        n = cases.image_bytes[rec["case_id"]]
        if current and size + n > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(rec)
        size += n
    if current:
        shards.append(current)
    return shards


def _ref_rel(abs_path: str, root: Path) -> str:
    return Path(abs_path).relative_to(root.resolve()).as_posix()


def _columns(records: list[dict[str, Any]], root: Path) -> dict[str, list[Any]]:
    """Rows in the project's features; each image struct carries its bytes and its root-relative path."""
    columns: dict[str, list[Any]] = {name: [] for name in features()}
    for rec in records:
        for name in columns:
            if name == "refs":
                columns[name].append(
                    [{"bytes": Path(p).read_bytes(), "path": _ref_rel(p, root)} for p in rec["refs"]]
                )
            else:
                columns[name].append(rec.get(name))
    return columns


def write_task(cases: TaskCases, root: Path, out: Path, *, max_shard_bytes: int) -> list[str]:
    """Write one task's shards under ``out/data/<config>/``; returns their paths relative to ``out``."""
    import datasets

    shards = plan_shards(cases, max_shard_bytes)
    folder = out / "data" / cases.config.config_name
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for i, records in enumerate(shards):
        path = folder / f"{SPLIT}-{i:05d}-of-{len(shards):05d}.parquet"
        ds = datasets.Dataset.from_dict(_columns(records, root), features=features())
        ds.to_parquet(str(path))
        written.append(path.relative_to(out).as_posix())
        del ds
    return written


def _checkpoint_entries(cases: TaskCases) -> list[dict[str, Any]]:
    import registry

    task = registry.get_task(cases.name)(source="sample")  # no data is read: only the checkpoint set
    return [asdict(cp) for cp in task.checkpoints]


def write_checkpoints(cases: TaskCases, out: Path) -> str:
    """``checkpoints/<task>.json``: the task's fixed checkpoint set, valid under checkpoints.schema.json."""
    path = out / "checkpoints" / f"{cases.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_checkpoint_entries(cases), indent=2, ensure_ascii=False) + "\n", "utf-8")
    return path.relative_to(out).as_posix()


def write_manifest(collection: Collection, out: Path, shards: dict[str, list[str]], *, version: str,
                   checkpoints: dict[str, str]) -> dict[str, Any]:
    """``micon_bench.json``: what this folder holds, read back by the round-trip check and the card."""
    manifest = {
        "micon_bench_version": version,
        "split": SPLIT,
        "tasks": {
            t.name: {
                "config_name": t.config.config_name,
                "official_folder": t.config.official_folder,
                "aliases": list(t.config.aliases),
                "num_cases": len(t.records),
                "num_refs": t.n_refs,
                "case_ids": t.case_ids,
                "shards": shards[t.name],
                "checkpoints": checkpoints[t.name],
                "scoring": {"hard_cap": t.config.scoring.hard_cap, "story_hybrid": t.config.scoring.story_hybrid},
            }
            for t in collection.tasks
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return manifest
