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
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from micon_tasks.checkpoints import checkpoint_identity
from micon_tasks.errors import MiconError
from micon_tasks.runner.config import RunConfig, fingerprint
from micon_tasks.runner.distributed import Dist
from micon_tasks.runner.generate import _desc, valid_generations
from micon_tasks.runner.inputs import CaseInputs, case_inputs
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.records import RecordWriter, read_shards

__all__ = ["JudgeUnreachableError", "run_judging", "valid_judgements", "task_judge_fp", "preflight", "VLLM_COMMAND",
           "result_to_record", "record_to_result", "JudgeStats", "check_judge_kinds"]

log = logging.getLogger(__name__)

#: How to serve the paper's judge (PROTOCOL 5) with vLLM; printed when a judge server cannot be reached.
VLLM_COMMAND = (
    "vllm serve Qwen/Qwen3-VL-32B-Instruct --tensor-parallel-size 2 --max-model-len 32768 "
    "--limit-mm-per-prompt '{\"image\": 4}' --port 8000"
)
# Provenance entries that vary from call to call; kept out of the records that must compare equal.
_VOLATILE = ("latency_s", "cached", "attempts")


class JudgeUnreachableError(MiconError):
    """The judge server does not answer; nothing was judged."""


@dataclass
class JudgeStats:
    todo: int = 0
    judged: int = 0
    calls: int = 0  # judge_batch calls made
    with_errors: int = 0


def task_judge_fp(judge_identity: dict[str, Any], task: Any) -> str:
    """The judge configuration plus the task's checkpoint set: what a verdict depends on besides the image."""
    cps = checkpoint_identity(task.checkpoints)
    return fingerprint({"judge": judge_identity, "task": task.name, "checkpoints": cps, "story": task.is_story})


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


def record_to_result(rec: dict[str, Any]) -> Any:
    from micon_tasks.types import JudgeResult, Verdict

    return JudgeResult(
        verdicts=[Verdict(**v) for v in rec["verdicts"]],
        answer_set_score=rec.get("answer_set_score"),
        answer_set_status=rec.get("answer_set_status"),
        raw=rec.get("raw"),
        details=rec.get("details") or {},
    )


def has_errors(rec: dict[str, Any], story: bool) -> bool:
    res = rec.get("result") or {}
    if any(v.get("status") == "error" for v in res.get("verdicts", [])):
        return True
    return story and (res.get("answer_set_status") == "error" or res.get("answer_set_score") is None)


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
        if rec.get("image_sha256") != gen["image"]["sha256"] or "result" not in rec:
            continue
        if inputs is not None and not inputs.judgement_is_current(rec):
            continue
        if redo_failed and has_errors(rec, story):
            continue
        out[cid] = rec
    return out


def preflight(judge: Any, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when an OpenAI-compatible judge server does not answer at all."""
    if getattr(judge, "backend", None) != "openai":
        return
    import importlib.util

    if importlib.util.find_spec("openai") is None:
        raise JudgeUnreachableError("the openai judge needs the openai package: pip install 'micon-bench[api]'")
    base_url = getattr(judge, "base_url", None)
    if not base_url:
        return
    url = base_url.rstrip("/") + "/models"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the server answered (401, 404, ...): reachable
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        from micon_tasks.judges.base import endpoint_host

        raise JudgeUnreachableError(
            f"the judge server at {endpoint_host(base_url)} does not answer ({reason}). Start it first, e.g. "
            f"`{VLLM_COMMAND}`, and pass --judge_args base_url=http://<host>:8000/v1"
        ) from None


def check_judge_kinds(judge: Any, tasks: list[Any]) -> None:
    """Refuse, before any request, a judge that cannot score a selected task's scoring kind."""
    kinds = tuple(getattr(judge, "kinds", ("checkpoints",)))
    for task in tasks:
        kind = task.config.scoring.kind
        if kind not in kinds:
            name = getattr(judge, "backend", type(judge).__name__)
            raise MiconError(f"task {task.name!r} is scored by kind {kind!r}, which the judge {name!r} cannot score "
                             f"(it scores {', '.join(kinds)}); choose a judge for it")


CHUNK_PER_SLOT = 4  # cases per concurrency slot in one judge_batch call


def _chunk_size(judge: Any) -> int:
    """Cases per judge_batch call: records are written after each call, so it bounds the work a kill loses.

    A concurrent backend gets several requests per slot, so one slow reply does not idle the others.
    """
    concurrency = getattr(judge, "concurrency", None)
    if isinstance(concurrency, int) and concurrency > 0:
        return CHUNK_PER_SLOT * concurrency
    batch = getattr(judge, "batch_size", None)
    return batch if isinstance(batch, int) and batch > 0 else 8


def run_judging(
    cfg: RunConfig,
    dist: Dist,
    layout: Layout,
    tasks: dict[str, Any],
    selected: dict[str, list[tuple[int, str]]],
    load_judge: Callable[[], Any],
    *,
    redo_failed: bool = False,
    progress: bool = True,
) -> JudgeStats:
    """Judge this rank's generated, not yet judged cases."""
    from PIL import Image

    from micon_tasks.judges.base import JudgeRequest

    identity = cfg.judge_identity()
    assert identity is not None
    stats = JudgeStats()
    plan = []
    for name in cfg.tasks:
        task = tasks[name]
        fp = task_judge_fp(identity, task)
        inputs = case_inputs(task)
        gens = valid_generations(layout, name, inputs=inputs)
        done = valid_judgements(layout, name, fp, gens, story=task.is_story, redo_failed=redo_failed, inputs=inputs)
        todo = [(i, cid) for i, cid in dist.shard(selected[name]) if cid in gens and gens[cid].get("image") and cid not in done]
        if todo:
            plan.append((name, fp, gens, todo))
        stats.todo += len(todo)
    if not stats.todo:
        log.info("judging: every generated image already has a valid verdict; nothing to do")
        return stats

    judge = load_judge()
    check_judge_kinds(judge, [tasks[name] for name, *_ in plan])
    from tqdm.auto import tqdm

    size = _chunk_size(judge)
    bar = tqdm(total=stats.todo, desc=_desc("judge", dist), unit="case", disable=not progress, dynamic_ncols=True)
    try:
        for name, fp, gens, todo in plan:
            task = tasks[name]
            with RecordWriter(layout.shard("judge", name, dist.rank)) as writer:
                for start in range(0, len(todo), size):
                    chunk = todo[start : start + size]
                    requests = []
                    for index, cid in chunk:
                        with Image.open(layout.root / gens[cid]["image"]["path"]) as im:
                            image = im.convert("RGB")
                        requests.append(JudgeRequest(task=name, case=task[index], image=image,
                                                     checkpoints=list(task.checkpoints), story=task.is_story,
                                                     kind=task.config.scoring.kind, scoring=task.config.scoring))
                    t0 = time.perf_counter()
                    results = judge.judge_batch(requests)
                    per_case = (time.perf_counter() - t0) / len(chunk)
                    stats.calls += 1
                    for (index, cid), res in zip(chunk, results):
                        stable, volatile = result_to_record(res)
                        rec = {"task": name, "case_id": cid, "index": index, "judge_fp": fp,
                               "image_sha256": gens[cid]["image"]["sha256"],
                               "case_sha256": case_inputs(task).judge_sha256(cid), "result": stable,
                               "timings": {"judge_s": round(per_case, 4), **volatile}}
                        if has_errors(rec, task.is_story):
                            stats.with_errors += 1
                        writer.append(rec)
                        stats.judged += 1
                        bar.update(1)
    finally:
        bar.close()
        close = getattr(judge, "close", None)
        if callable(close):
            close()
    if stats.with_errors:
        log.warning("judging: %d of %d cases have judge errors (recorded; they count as fails; --redo_failed retries them)",
                    stats.with_errors, stats.judged)
    return stats
