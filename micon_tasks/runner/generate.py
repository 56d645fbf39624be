"""Stage 1: generate one image per case, resumably.

A case is done when its record exists in any rank's shard, was made from the case's current prompt
and references (``inputs_sha256``), and either records a generation failure or points at an image
whose bytes still hash to the recorded sha256; anything else is (re)generated.
Images are written under a temporary name and moved into place before their record is appended, so
a record never points at half an image.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from micon_tasks.errors import ConfigError, MiconError
from micon_tasks.hashing import sha256_bytes, sha256_file
from micon_tasks.png import png_bytes
from micon_tasks.runner.config import RunConfig, case_seed
from micon_tasks.runner.distributed import Dist
from micon_tasks.runner.inputs import CaseInputs, case_inputs
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.records import RecordWriter, atomic_write_bytes, atomic_write_json, read_shards

__all__ = ["valid_generations", "run_generation", "GenerationStats", "png_bytes"]

log = logging.getLogger(__name__)


@dataclass
class GenerationStats:
    todo: int = 0
    generated: int = 0
    failed: int = 0
    calls: int = 0  # generate_batch calls made


def valid_generations(
    layout: Layout, task: str, *, redo_failed: bool = False, inputs: CaseInputs | None = None
) -> dict[str, dict[str, Any]]:
    """case_id -> its valid generation record (the last valid one when a case was redone).

    With ``inputs`` (the task's current case inputs), a record made from another prompt or other
    references than the case has now is stale, and so not valid: the case is generated again.
    """
    hashes: dict[str, str | None] = {}
    out: dict[str, dict[str, Any]] = {}
    stale: set[str] = set()
    for rec in read_shards(layout.shards("generate", task)):
        cid = rec.get("case_id")
        if not isinstance(cid, str):
            continue
        if inputs is not None and not inputs.generation_is_current(rec):
            stale.add(cid)
            continue
        if rec.get("error") is not None:
            if not redo_failed:
                out[cid] = rec
            continue
        image = rec.get("image") or {}
        rel = image.get("path")
        if not rel:
            continue
        if rel not in hashes:
            hashes[rel] = sha256_file(layout.root / rel)
        if hashes[rel] is not None and hashes[rel] == image.get("sha256"):
            out[cid] = rec
    stale -= set(out)
    if stale:
        log.info("task %r: %d case(s) changed since they were generated (prompt or references; first: %r); "
                 "their images are stale", task, len(stale), sorted(stale)[0])
    return out


def _ref_hashes(inputs: CaseInputs, case: Any) -> list[dict[str, str]]:
    return [{"role": role, "sha256": h} for role, h in zip(case.ref_roles, inputs.pixel_hashes(case.case_id, case))]


def run_generation(
    cfg: RunConfig,
    dist: Dist,
    layout: Layout,
    tasks: dict[str, Any],
    selected: dict[str, list[tuple[int, str]]],
    load_adapter: Callable[[], Any],
    *,
    dar: Any = None,
    redo_failed: bool = False,
    progress: bool = True,
) -> GenerationStats:
    """Generate this rank's missing cases of every task (``selected``: task -> [(index, case_id)])."""
    from adapters.base import GenerationError, GenerationRequest

    stats = GenerationStats()
    plan: list[tuple[str, list[tuple[int, str]]]] = []
    for name in cfg.tasks:
        done = valid_generations(layout, name, redo_failed=redo_failed, inputs=case_inputs(tasks[name]))
        todo = [(i, cid) for i, cid in dist.shard(selected[name]) if cid not in done]
        if todo:
            plan.append((name, todo))
        stats.todo += len(todo)
    if not stats.todo:
        log.info("generation: every case already has a valid image or recorded failure; nothing to do")
        return stats

    adapter = load_adapter()
    if dar is not None and not getattr(adapter, "supports_dar", False):
        raise ConfigError(f"adapter {cfg.model!r} cannot apply DAR; run it without --dar")
    if dist.is_main or not layout.model_info.exists():
        atomic_write_json(layout.model_info, adapter.model_info())

    from tqdm.auto import tqdm

    bar = tqdm(total=stats.todo, desc=_desc("generate", dist), unit="img", disable=not progress, dynamic_ncols=True)
    try:
        for name, todo in plan:
            task = tasks[name]
            inputs = case_inputs(task)
            with RecordWriter(layout.shard("generate", name, dist.rank)) as writer:
                for start in range(0, len(todo), cfg.batch_size):
                    chunk = todo[start : start + cfg.batch_size]
                    cases = [task[i] for i, _ in chunk]
                    seeds = [case_seed(cfg.seed, name, c.case_id) for c in cases]
                    requests = [GenerationRequest(refs=c.refs, prompt=c.prompt, seed=s, case_id=c.case_id) for c, s in zip(cases, seeds)]
                    t0 = time.perf_counter()
                    outputs = _generate(adapter, requests, dar, GenerationError)
                    per_case = (time.perf_counter() - t0) / len(chunk)
                    stats.calls += 1
                    for (index, _), case, seed, out in zip(chunk, cases, seeds, outputs):
                        rec = {
                            "task": name, "case_id": case.case_id, "index": index, "seed": seed, "prompt": case.prompt,
                            "refs": _ref_hashes(inputs, case), "inputs_sha256": inputs.generation_sha256(case.case_id),
                            "image": None, "error": None,
                            "timings": {"generate_s": round(per_case, 4)},
                        }
                        if isinstance(out, GenerationError):
                            rec["error"] = out.to_dict()
                            stats.failed += 1
                            log.warning("task %r, case %r: generation failed (%s): %s", name, case.case_id, out.reason, out.message)
                        else:
                            data = png_bytes(out)
                            path = layout.image(name, case.case_id)
                            atomic_write_bytes(path, data)
                            rec["image"] = {"path": layout.relative(path), "sha256": sha256_bytes(data), "width": out.width, "height": out.height}
                            if "dar_stats" in out.info:  # how many attention calls DAR rebalanced for this case
                                rec["dar_stats"] = out.info["dar_stats"]
                            stats.generated += 1
                        writer.append(rec)
                        bar.update(1)
    finally:
        bar.close()
    return stats


def _generate(adapter: Any, requests: list[Any], dar: Any, GenerationError: type) -> list[Any]:
    """The adapter's outputs in order (a GenerationError in a failed case's place, e.g. too many references)."""
    try:
        results = list(adapter.generate_batch(requests, dar=dar))
    except GenerationError as exc:  # an adapter that fails its whole batch at once
        results = [exc] * len(requests)
    if len(results) != len(requests):
        raise MiconError(f"adapter {adapter.name!r} returned {len(results)} images for {len(requests)} requests")
    return results


def _desc(stage: str, dist: Dist) -> str:
    return stage if dist.world_size == 1 else f"{stage} [rank {dist.rank}/{dist.world_size}]"
