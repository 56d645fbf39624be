"""Stage 1: generate each case's image(s), resumably.

A case is done when its record exists in any rank's shard, was made from the case's current prompt
and references (``inputs_sha256``), and either records a generation failure or points at images whose
bytes still hash to the recorded sha256; anything else is (re)generated.
Images are written under a temporary name and moved into place before their record is appended, so
a record never points at half an image. A task whose card asks for ``num_images`` N > 1 gets N images
per case: image 0 keeps ``<case_id>.png`` and the case's seed, image k is ``<case_id>__<k>.png`` with a
seed from (seed, task, case, k).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from adapters.base import GenerationError, GenerationRequest
from micon_tasks.errors import CaseValidationError, ConfigError, MiconError
from micon_tasks.hashing import sha256_bytes, sha256_file
from micon_tasks.png import png_bytes
from micon_tasks.runner.config import RunConfig, image_seed
from micon_tasks.runner.inputs import CaseInputs, case_inputs
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.protocols import Generator
from micon_tasks.runner.records import RecordWriter, atomic_write_bytes, atomic_write_json, read_shards
from micon_tasks.runner.stages import StageStats

__all__ = ["valid_generations", "GenerateStage", "record_images"]

log = logging.getLogger(__name__)


def record_images(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every image a generation record points at (``images`` for N > 1, else its one ``image``)."""
    if rec.get("images"):
        return list(rec["images"])
    return [rec["image"]] if rec.get("image") else []


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
        images = record_images(rec)
        for image in images:
            rel = image.get("path")
            if rel and rel not in hashes:
                hashes[rel] = sha256_file(layout.root / rel)
        if images and all(image.get("path") and hashes[image["path"]] == image.get("sha256") for image in images):
            out[cid] = rec
    stale -= set(out)
    if stale:
        log.info("task %r: %d case(s) changed since they were generated (prompt or references; first: %r); "
                 "their images are stale", task, len(stale), sorted(stale)[0])
    return out


class GenerateStage:
    """Generation as a :class:`~micon_tasks.runner.stages.Stage`: one record per case."""

    name = "generate"
    unit = "img"

    def __init__(self, cfg: RunConfig, layout: Layout, load_adapter: Callable[[], Generator], *, dar: Any = None,
                 redo_failed: bool = False, is_main: bool = True):
        self.cfg, self.layout, self.load_adapter, self.dar = cfg, layout, load_adapter, dar
        self.redo_failed, self.is_main = redo_failed, is_main
        self.adapter: Generator | None = None
        self.failed = 0

    def todo(self, task: Any, shard: list[tuple[int, str]]) -> list[tuple[int, str]]:
        done = valid_generations(self.layout, task.name, redo_failed=self.redo_failed, inputs=case_inputs(task))
        return [(i, cid) for i, cid in shard if cid not in done]

    def start(self) -> int:
        adapter = self.adapter = self.load_adapter()
        if self.dar is not None and not adapter.supports_dar:
            raise ConfigError(f"adapter {self.cfg.model!r} cannot apply DAR; run it without --dar")
        if self.is_main or not self.layout.model_info.exists():
            atomic_write_json(self.layout.model_info, adapter.model_info())
        return self.cfg.batch_size

    def finish(self) -> None:
        pass

    def process(self, task: Any, chunk: list[tuple[int, str]], writer: RecordWriter, stats: StageStats) -> None:
        inputs = case_inputs(task)
        n_images = self.cfg.images_for(task)
        cases, chunk = _decode_cases(task, chunk, writer, stats)
        if not cases:
            return
        # One request per (case, image); image k of a case draws its own seed.
        requests = [GenerationRequest(refs=c.refs, prompt=c.prompt, seed=image_seed(self.cfg.seed, task.name, c.case_id, k),
                                      case_id=c.case_id) for c in cases for k in range(n_images)]
        t0 = time.perf_counter()
        outputs = _generate(self.adapter, requests, self.dar)
        per_case = (time.perf_counter() - t0) / len(chunk)
        for n, ((index, _), case) in enumerate(zip(chunk, cases)):
            mine = outputs[n * n_images : (n + 1) * n_images]
            rec = {
                "task": task.name, "case_id": case.case_id, "index": index, "seed": requests[n * n_images].seed,
                "prompt": case.prompt, "refs": _ref_hashes(inputs, case), "inputs_sha256": inputs.generation_sha256(case.case_id),
                "image": None, "error": None, "timings": {"generate_s": round(per_case, 4)},
            }
            failure = next((out for out in mine if isinstance(out, GenerationError)), None)
            if failure is not None:
                rec["error"] = failure.to_dict()
                stats.problems += 1
                log.warning("task %r, case %r: generation failed (%s): %s", task.name, case.case_id, failure.reason,
                            failure.message)
            else:
                images = [self._write(task.name, case.case_id, k, out) for k, out in enumerate(mine)]
                rec["image"] = images[0]
                if n_images > 1:
                    rec["images"] = images
                    rec["seeds"] = [r.seed for r in requests[n * n_images : (n + 1) * n_images]]
                if "dar_stats" in mine[0].info:  # how many attention calls DAR rebalanced for this case
                    rec["dar_stats"] = mine[0].info["dar_stats"]
            writer.append(rec)

    def _write(self, task: str, case_id: str, k: int, image: Any) -> dict[str, Any]:
        data = png_bytes(image)
        path = self.layout.image(task, case_id, k)
        atomic_write_bytes(path, data)
        return {"path": self.layout.relative(path), "sha256": sha256_bytes(data), "width": image.width,
                "height": image.height}


def _decode_cases(task: Any, chunk: list[tuple[int, str]], writer: RecordWriter,
                  stats: StageStats) -> tuple[list[Any], list[tuple[int, str]]]:
    """The chunk's cases; one whose references cannot be decoded is recorded as that case's failure."""
    cases, kept = [], []
    for index, cid in chunk:
        try:
            cases.append(task[index])
            kept.append((index, cid))
        except CaseValidationError as exc:
            stats.problems += 1
            log.warning("%s", exc)
            writer.append({"task": task.name, "case_id": cid, "index": index, "seed": None, "prompt": None, "refs": None,
                           "inputs_sha256": case_inputs(task).generation_sha256(cid), "image": None, "timings": {},
                           "error": GenerationError(str(exc), reason="bad_input").to_dict()})
    return cases, kept


def _ref_hashes(inputs: CaseInputs, case: Any) -> list[dict[str, str]]:
    return [{"role": role, "sha256": h} for role, h in zip(case.ref_roles, inputs.pixel_hashes(case.case_id, case))]


def _generate(adapter: Any, requests: list[GenerationRequest], dar: Any) -> list[Any]:
    """The adapter's outputs in order (a GenerationError in a failed case's place, e.g. too many references)."""
    try:
        results = list(adapter.generate_batch(requests, dar=dar))
    except GenerationError as exc:  # an adapter that fails its whole batch at once
        results = [exc] * len(requests)
    if len(results) != len(requests):
        raise MiconError(f"adapter {adapter.name!r} returned {len(results)} images for {len(requests)} requests")
    return results
