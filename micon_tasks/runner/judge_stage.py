"""Stage 2: judge every generated image, resumably.

A judge record is valid for a case when it was made by the same judge configuration and checkpoint
set (``judge_fp``) for the image now on disk (its sha256) and the case as it is now (``case_sha256``:
prompt, goal, constraints, answer set, references); a regenerated image, a changed case or another
judge makes it stale, and the case is judged again. Cases whose generation failed are not sent to the judge: they
are scored as failures when the stages are merged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from micon_tasks.checkpoints import checkpoint_identity
from micon_tasks.errors import MiconError
from micon_tasks.images import open_lazy_file
from micon_tasks.judges.base import JudgeRequest, JudgeUnreachableError
from micon_tasks.judges.openai_judge import VLLM_COMMAND
from micon_tasks.runner.config import RunConfig, fingerprint
from micon_tasks.runner.generate import record_images, valid_generations
from micon_tasks.runner.inputs import CaseInputs, case_inputs
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.protocols import JudgeBackend
from micon_tasks.runner.records import RecordWriter, read_shards
from micon_tasks.runner.stages import StageStats
from micon_tasks.types import JudgeResult, Verdict

__all__ = ["JudgeUnreachableError", "JudgeStage", "valid_judgements", "task_judge_fp", "preflight", "VLLM_COMMAND",
           "result_to_record", "record_to_result", "check_judge_kinds", "judged_images"]

log = logging.getLogger(__name__)

# Provenance entries that vary from call to call; kept out of the records that must compare equal.
_VOLATILE = ("latency_s", "cached", "attempts")


def task_judge_fp(judge_identity: dict[str, Any], task: Any) -> str:
    """The judge configuration plus the task's checkpoint set: what a verdict depends on besides the image."""
    cps = checkpoint_identity(task.checkpoints)
    parts = {"judge": judge_identity, "task": task.name, "checkpoints": cps, "story": task.is_story}
    if task.config.scoring.kind != "checkpoints":  # other kinds' verdicts depend on their card settings
        parts["scoring"] = task.config.scoring.to_card()
    return fingerprint(parts)


def result_to_record(result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(stable part, volatile part) of a JudgeResult."""
    prov = dict(result.provenance or {})
    stable = {
        "verdicts": [asdict(v) for v in result.verdicts],
        "answer_set_score": result.answer_set_score,
        "answer_set_status": result.answer_set_status,
        "raw": result.raw,
        "details": result.details,
    }
    volatile = {k: prov.get(k) for k in _VOLATILE if k in prov}
    return stable, volatile


def record_to_result(rec: dict[str, Any]) -> JudgeResult:
    return JudgeResult(
        verdicts=[Verdict(**v) for v in rec["verdicts"]],
        answer_set_score=rec.get("answer_set_score"),
        answer_set_status=rec.get("answer_set_status"),
        raw=rec.get("raw"),
        details=rec.get("details") or {},
    )


def has_errors(rec: dict[str, Any], story: bool) -> bool:
    for res in [rec.get("result") or {}, *(rec.get("image_results") or [])]:
        if any(v.get("status") == "error" for v in res.get("verdicts", [])):
            return True
        if story and (res.get("answer_set_status") == "error" or res.get("answer_set_score") is None):
            return True
    return False


def judged_images(gen: dict[str, Any]) -> list[str]:
    """The sha256 of every image of a generation record (what a verdict was made for)."""
    return [image["sha256"] for image in record_images(gen)]


def valid_judgements(
    layout: Layout, task: str, judge_fp: str, gens: dict[str, dict[str, Any]], *, story: bool, redo_failed: bool = False,
    inputs: CaseInputs | None = None,
) -> dict[str, dict[str, Any]]:
    """case_id -> the valid judge record for the image now on disk (and, with ``inputs``, the case as it is now)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in read_shards(layout.shards("judge", task)):
        cid = rec.get("case_id")
        gen = gens.get(cid) if isinstance(cid, str) else None
        if gen is None or not gen.get("image") or rec.get("judge_fp") != judge_fp:
            continue
        shas = judged_images(gen)
        if rec.get("image_sha256") != shas[0] or rec.get("images_sha256", shas[:1]) != shas or "result" not in rec:
            continue
        if inputs is not None and not inputs.judgement_is_current(rec):
            continue
        if redo_failed and has_errors(rec, story):
            continue
        out[cid] = rec
    return out


def preflight(judge: Any) -> None:
    """Fail fast, in one line, when the judge cannot work at all (``Judge.preflight``: the endpoint does not
    answer, a remote host without a key, weights that cannot be resolved, code that cannot be imported)."""
    check = getattr(judge, "preflight", None)
    if callable(check):
        check()


def check_judge_kinds(judge: Any, tasks: list[Any]) -> None:
    """Refuse, before any request, a judge that cannot score a selected task's scoring kind."""
    kinds = tuple(getattr(judge, "kinds", ("checkpoints",)))
    for task in tasks:
        kind = task.config.scoring.kind
        if kind not in kinds:
            name = getattr(judge, "backend", type(judge).__name__)
            raise MiconError(f"task {task.name!r} is scored by kind {kind!r}, which the judge {name!r} cannot score "
                             f"(it scores {', '.join(kinds)}); choose a judge for it")


# Cases per concurrency slot in one judge_batch call. The next chunk is read while this one is judged
# (``JudgeStage.prefetch``), so two chunks' stored images (about 7 MB a case at 1024 x 1024) are in memory.
CHUNK_PER_SLOT = 1


def _chunk_size(judge: Any) -> int:
    """Cases per judge_batch call: records are written after each call, so it bounds the work a kill loses.

    A concurrent backend gets several requests per slot, so one slow reply does not idle the others.
    """
    concurrency = getattr(judge, "concurrency", None)
    if isinstance(concurrency, int) and concurrency > 0:
        return CHUNK_PER_SLOT * concurrency
    batch = getattr(judge, "batch_size", None)
    return batch if isinstance(batch, int) and batch > 0 else 8


class JudgeStage:
    """Judging as a :class:`~micon_tasks.runner.stages.Stage`: generated, not yet judged cases only.

    Cases whose generation failed are never sent (they are scored as failures when the stages are merged).
    A task with several images per case whose scoring kind judges one image per request gets one request
    per image; the record keeps image 0's result under ``result`` and the others under ``image_results``.
    """

    name = "judge"
    unit = "case"

    def __init__(self, cfg: RunConfig, layout: Layout, load_judge: Callable[[str | None], JudgeBackend], *,
                 redo_failed: bool = False):
        self.cfg, self.layout, self.load_judge, self.redo_failed = cfg, layout, load_judge, redo_failed
        identity = cfg.judge_identity()
        assert identity is not None
        self.identity = identity
        self.judges: dict[str | None, JudgeBackend] = {}
        self._keys: dict[str, str | None] = {}  # task -> which judge scores it (one per suite, or the one)
        self._gens: dict[str, dict[str, dict[str, Any]]] = {}
        self._fps: dict[str, str] = {}
        self._reader: ThreadPoolExecutor | None = None  # one thread: rows are read in order
        self._prefetched: dict[tuple[str, tuple[tuple[int, str], ...]], Future[Any]] = {}

    def todo(self, task: Any, shard: list[tuple[int, str]]) -> list[tuple[int, str]]:
        inputs = case_inputs(task)
        fp = self._fps[task.name] = task_judge_fp(self.identity, task)
        self._keys[task.name] = self.cfg.judge_key(task)
        gens = self._gens[task.name] = valid_generations(self.layout, task.name, inputs=inputs)
        done = valid_judgements(self.layout, task.name, fp, gens, story=task.is_story, redo_failed=self.redo_failed,
                                inputs=inputs)
        return [(i, cid) for i, cid in shard if cid in gens and gens[cid].get("image") and cid not in done]

    def start(self) -> int:
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="micon-judge-rows")
        for key in dict.fromkeys(self._keys.values()):
            judge = self.judges[key] = self.load_judge(key)
            load = getattr(judge, "load", None)
            if callable(load):  # weights load once, when this stage starts (never beside the generator's)
                load()
        return _chunk_size(next(iter(self.judges.values())))

    def chunk_size(self, task: Any) -> int:
        return _chunk_size(self.judges[self._keys[task.name]])

    def flush(self) -> None:
        pass  # records are written as each chunk comes back

    def finish(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=True, cancel_futures=True)
        self._prefetched.clear()
        for judge in self.judges.values():
            close = getattr(judge, "close", None)
            if callable(close):
                close()

    def prefetch(self, task: Any, chunk: list[tuple[int, str]]) -> None:
        """Read a later chunk's cases (their rows, from disk) in a thread while this one is judged: reading
        them between judge calls left the judge idle for about a quarter of the stage at full size."""
        self._prefetched[(task.name, tuple(chunk))] = self._reader.submit(self._requests, task, chunk)

    def _requests(self, task: Any, chunk: list[tuple[int, str]]) -> tuple[list[JudgeRequest], list[str]]:
        """The chunk's judge requests and, for each, the case it belongs to."""
        gens, scoring = self._gens[task.name], task.config.scoring
        per_image = task.scoring_kind.per_image
        requests, owners = [], []
        for index, cid in chunk:
            case = task.lazy_case(index)  # stored bytes travel to the judge as they are; nothing is decoded here
            images = [open_lazy_file(self.layout.root / image["path"]) for image in record_images(gens[cid])]
            groups = [[im] for im in images] if per_image else [images]
            for group in groups:
                requests.append(JudgeRequest(task=task.name, case=case, image=group[0], checkpoints=list(task.checkpoints),
                                             story=task.is_story, kind=scoring.kind, scoring=scoring, images=group))
                owners.append(cid)
        return requests, owners

    def process(self, task: Any, chunk: list[tuple[int, str]], writer: RecordWriter, stats: StageStats) -> None:
        gens = self._gens[task.name]
        future = self._prefetched.pop((task.name, tuple(chunk)), None)
        requests, owners = future.result() if future is not None else self._requests(task, chunk)
        t0 = time.perf_counter()
        results = self.judges[self._keys[task.name]].judge_batch(requests)
        per_case = (time.perf_counter() - t0) / len(chunk)
        by_case: dict[str, list[Any]] = {}
        for cid, res in zip(owners, results):
            by_case.setdefault(cid, []).append(res)
        inputs = case_inputs(task)
        for index, cid in chunk:
            first, *others = by_case[cid]
            stable, volatile = result_to_record(first)
            shas = judged_images(gens[cid])
            rec = {"task": task.name, "case_id": cid, "index": index, "judge_fp": self._fps[task.name],
                   "image_sha256": shas[0], "case_sha256": inputs.judge_sha256(cid), "result": stable,
                   "timings": {"judge_s": round(per_case, 4), **volatile}}
            if len(shas) > 1:
                rec["images_sha256"] = shas
            if others:
                rec["image_results"] = [result_to_record(r)[0] for r in others]
            if has_errors(rec, task.is_story):
                stats.problems += 1
            writer.append(rec)
