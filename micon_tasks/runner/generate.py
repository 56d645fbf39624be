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
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from adapters.base import GenerationError, GenerationRequest
from micon_tasks.devices import cpu_cores
from micon_tasks.errors import CaseValidationError, ConfigError, MiconError
from micon_tasks.hashing import sha256_bytes, sha256_file
from micon_tasks.images import to_rgb
from micon_tasks.png import png_bytes
from micon_tasks.runner.config import RunConfig, image_seed
from micon_tasks.runner.inputs import CaseInputs, case_inputs
from micon_tasks.runner.layout import Layout, safe_file_stem
from micon_tasks.runner.protocols import Generator
from micon_tasks.runner.records import RecordWriter, atomic_write_bytes, atomic_write_json, read_shards
from micon_tasks.runner.stages import StageStats
from micon_tasks.secrets import scrub_deep

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
        if images and all(_image_intact(layout, image, hashes) for image in images):
            out[cid] = rec
    stale -= set(out)
    if stale:
        log.info("task %r: %d case(s) changed since they were generated (prompt or references; first: %r); "
                 "their images are stale", task, len(stale), sorted(stale)[0])
    return out


def _image_intact(layout: Layout, image: dict[str, Any], hashes: dict[str, str | None]) -> bool:
    """Whether the file a record points at still holds the recorded bytes. A file whose size and mtime are
    those recorded when it was written is taken as is (re-hashing a full benchmark on every resume cost
    seconds); any other file is hashed."""
    rel = image.get("path")
    if not rel:
        return False
    path = layout.root / rel
    if image.get("size") is not None and image.get("mtime_ns") is not None:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if st.st_size == image["size"] and st.st_mtime_ns == image["mtime_ns"]:
            return True
    if rel not in hashes:
        hashes[rel] = sha256_file(path)
    return hashes[rel] is not None and hashes[rel] == image.get("sha256")


class GenerateStage:
    """Generation as a :class:`~micon_tasks.runner.stages.Stage`: one record per case.

    The harness keeps its own work off the model's path: the next chunk's rows are read by one reader thread,
    in order (data/rows.py reads forwards; pool threads racing for rows made it re-read the file from its
    start), their references decoded in worker threads while the model runs, and each finished case is
    encoded (PNG), hashed, written and recorded by one writer thread, in order (Pillow, numpy, zlib and hashlib release the GIL, so this uses the other
    cores). ``timings.harness_wait_s`` records what is left on the model's path: how long it waited.
    At most ``_MAX_PENDING`` chunks wait for the writer, so a kill loses at most those and the chunk in flight.
    """

    name = "generate"
    unit = "img"

    def __init__(self, cfg: RunConfig, layout: Layout, load_adapter: Callable[[], Generator], *, dar: Any = None,
                 redo_failed: bool = False, is_main: bool = True):
        self.cfg, self.layout, self.load_adapter, self.dar = cfg, layout, load_adapter, dar
        self.redo_failed, self.is_main = redo_failed, is_main
        self.adapter: Generator | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._decoder: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._prefetched: dict[tuple[str, tuple[tuple[int, str], ...]], list[Future[Any]]] = {}

    def todo(self, task: Any, shard: list[tuple[int, str]]) -> list[tuple[int, str]]:
        done = valid_generations(self.layout, task.name, redo_failed=self.redo_failed, inputs=case_inputs(task))
        return [(i, cid) for i, cid in shard if cid not in done]

    def start(self) -> int:
        adapter = self.adapter = self.load_adapter()
        if self.dar is not None and not adapter.supports_dar:
            raise ConfigError(f"adapter {self.cfg.model!r} cannot apply DAR; run it without --dar")
        if self.is_main or not self.layout.model_info.exists():
            atomic_write_json(self.layout.model_info, adapter.model_info())
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="micon-gen-rows")
        self._decoder = ThreadPoolExecutor(max_workers=cpu_cores(), thread_name_prefix="micon-decode")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="micon-write")
        return self.cfg.batch_size

    def prefetch(self, task: Any, chunk: list[tuple[int, str]]) -> None:
        """Start reading and decoding a later chunk's cases (their references) now."""
        self._prefetched[(task.name, tuple(chunk))] = self._submit(task, chunk)

    def _submit(self, task: Any, chunk: list[tuple[int, str]]) -> list[Future[Any]]:
        """One future per case: its row read by the reader thread (in order), its references decoded in the pool."""
        return [self._decoder.submit(_decoded_case, task, self._reader.submit(task.lazy_case, i)) for i, _ in chunk]

    def flush(self) -> None:
        """Wait until every finished case is written and recorded (raising the writer's error, if any)."""
        while self._pending:
            self._pending.pop(0).result()

    def finish(self) -> None:
        try:
            self.flush()
        finally:
            for pool in (self._reader, self._decoder, self._writer):
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
            self._prefetched.clear()
            close = getattr(self.adapter, "close", None)
            if callable(close):  # an API adapter's client and event loop (reopened if the adapter is used again)
                close()

    def process(self, task: Any, chunk: list[tuple[int, str]], writer: RecordWriter, stats: StageStats) -> None:
        futures = self._prefetched.pop((task.name, tuple(chunk)), None)
        if futures is None:
            futures = self._submit(task, chunk)
        cases, kept, bad = [], [], []
        waited = time.perf_counter()  # how long the model's thread waits for the harness (decoding, writing)
        for (index, cid), future in zip(chunk, futures):
            try:
                cases.append(future.result())
                kept.append((index, cid))
            except CaseValidationError as exc:  # this case's references cannot be decoded: its own failure
                bad.append((index, cid, exc))
        waited = time.perf_counter() - waited
        n_images = self.cfg.images_for(task)
        # One request per (case, image); image k of a case draws its own seed.
        requests = [GenerationRequest(refs=c.refs, prompt=c.prompt, seed=image_seed(self.cfg.seed, task.name, c.case_id, k),
                                      case_id=c.case_id, size=task.config.generation_size)
                    for c in cases for k in range(n_images)]
        outputs: list[Any] = []
        per_case = 0.0
        if requests:
            t0 = time.perf_counter()
            outputs = _generate(self.adapter, requests, self.dar)
            per_case = (time.perf_counter() - t0) / len(cases)
        stats.problems += len(bad) + sum(
            any(isinstance(o, GenerationError) for o in outputs[n * n_images : (n + 1) * n_images]) for n in range(len(cases)))
        t0 = time.perf_counter()
        while len(self._pending) >= _MAX_PENDING:
            self._pending.pop(0).result()
        timings = {"generate_s": round(per_case, 4),
                   "harness_wait_s": round((waited + time.perf_counter() - t0) / len(chunk), 4)}
        self._pending.append(self._writer.submit(self._record, task, kept, cases, requests, outputs, bad, timings,
                                                 n_images, writer))

    def _record(self, task: Any, chunk: list[tuple[int, str]], cases: list[Any], requests: list[GenerationRequest],
                outputs: list[Any], bad: list[tuple[int, str, CaseValidationError]], timings: dict[str, float], n_images: int,
                writer: RecordWriter) -> None:
        """The writer thread: images to disk first, then each case's record, in order."""
        inputs = case_inputs(task)
        for index, cid, exc in bad:
            log.warning("%s", exc)
            writer.append({"task": task.name, "case_id": cid, "index": index, "seed": None, "prompt": None, "refs": None,
                           "inputs_sha256": inputs.generation_sha256(cid), "image": None, "timings": {},
                           "error": GenerationError(str(exc), reason="bad_input").to_dict()})
        for n, ((index, _), case) in enumerate(zip(chunk, cases)):
            mine = outputs[n * n_images : (n + 1) * n_images]
            rec = {
                "task": task.name, "case_id": case.case_id, "index": index, "seed": requests[n * n_images].seed,
                "prompt": case.prompt, "refs": _ref_hashes(inputs, case), "inputs_sha256": inputs.generation_sha256(case.case_id),
                "image": None, "error": None, "timings": dict(timings),
            }
            failure = next((out for out in mine if isinstance(out, GenerationError)), None)
            if failure is not None:
                rec["error"] = scrub_deep(failure.to_dict())  # a provider's message may echo a key
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
                if "dar_maps" in mine[0].info:  # DARConfig(record_maps=True): maps/<task>/<case_id>/<role>.{npz,png}
                    from dar.maps import save_maps  # here: importing dar loads torch, which DAR runs have anyway

                    folder = self.layout.root / "maps" / task.name / safe_file_stem(case.case_id)
                    rec["dar_maps"] = save_maps(mine[0].info["dar_maps"], folder, case.refs, case.ref_roles,
                                                root=self.layout.root)
            writer.append(rec)

    def _write(self, task: str, case_id: str, k: int, image: Any) -> dict[str, Any]:
        data = png_bytes(image)
        path = self.layout.image(task, case_id, k)
        atomic_write_bytes(path, data)
        st = os.stat(path)
        return {"path": self.layout.relative(path), "sha256": sha256_bytes(data), "width": image.width,
                "height": image.height, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


_MAX_PENDING = 2  # chunks waiting for the writer thread


def _decoded_case(task: Any, row: Future[Any]) -> Any:
    """A case with its references decoded to RGB (in a worker thread), once the reader thread has read its row."""
    case = row.result()
    case.refs = [_decode(task, case, role, im) for role, im in zip(case.ref_roles, case.refs)]
    return case


def _decode(task: Any, case: Any, role: str, image: Any) -> Any:
    try:
        image.load()
        return to_rgb(image)
    except Exception as exc:  # noqa: BLE001 - a broken reference is this case's named failure
        raise CaseValidationError(task.name, case.case_id, f"refs.{role}",
                                  f"cannot decode the reference: {type(exc).__name__}: {exc}") from None


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
