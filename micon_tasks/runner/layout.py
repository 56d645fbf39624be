"""Where each stage keeps its files inside ``<output_path>/<model>[__dar]/`` (one place, so stages agree).

    run_config.json                     the configuration (checked on every resume)
    model_info.json, judge_info.json    adapter model_info() and judge provenance
    images/<task>/<case_id>.png         generated images
    shards/generate_<task>_rank<R>.jsonl, shards/judge_<task>_rank<R>.jsonl   per-rank stage records
    samples_<task>.jsonl                merged per-case records (rank 0)
    results.json, results.md            aggregate figures and the table
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Layout", "safe_file_stem"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_file_stem(case_id: str) -> str:
    """A case id usable as a file name (ids in the official data already are; others are escaped)."""
    stem = _SAFE.sub("_", case_id)
    if stem != case_id or stem in ("", ".", ".."):
        import hashlib

        stem = f"{stem.strip('.') or 'case'}-{hashlib.sha256(case_id.encode()).hexdigest()[:8]}"
    return stem


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def run_config(self) -> Path:
        return self.root / "run_config.json"

    @property
    def model_info(self) -> Path:
        return self.root / "model_info.json"

    @property
    def judge_info(self) -> Path:
        return self.root / "judge_info.json"

    @property
    def results_json(self) -> Path:
        return self.root / "results.json"

    @property
    def results_md(self) -> Path:
        return self.root / "results.md"

    def image(self, task: str, case_id: str, k: int = 0) -> Path:
        """Image k of a case: ``<case_id>.png`` for the first, ``<case_id>__<k>.png`` after it."""
        suffix = f"__{k}" if k else ""
        return self.root / "images" / task / f"{safe_file_stem(case_id)}{suffix}.png"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def shard(self, stage: str, task: str, rank: int) -> Path:
        return self.root / "shards" / f"{stage}_{task}_rank{rank}.jsonl"

    def shards(self, stage: str, task: str) -> list[Path]:
        """Every rank's shard of a stage, whatever world size wrote them (sorted by rank)."""
        folder = self.root / "shards"
        found = folder.glob(f"{stage}_{task}_rank*.jsonl") if folder.is_dir() else []
        pattern = re.compile(rf"^{re.escape(stage)}_{re.escape(task)}_rank(\d+)\.jsonl$")
        ranked = [(int(m.group(1)), p) for p in found if (m := pattern.match(p.name))]
        return [p for _, p in sorted(ranked)]

    def samples(self, task: str) -> Path:
        return self.root / f"samples_{task}.jsonl"
