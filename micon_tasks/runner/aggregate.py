"""Stage 3: merge every rank's shards into ``samples_<task>.jsonl`` and compute ``results.json``.

Runs on rank 0 only, after the other stages' barrier. Scores are computed here from the recorded
verdicts (``task.score_case`` / ``scoring.aggregate``), so ``micon aggregate`` can re-score a run
without calling anything. Every selected case appears exactly once, in dataset order; a case with no
image (a generation failure, or a missing file) is scored as a failure with its reason, never dropped.
"""

from __future__ import annotations

import datetime
import logging
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from micon_tasks.checkpoints import checkpoint_identity
from micon_tasks.errors import MiconError
from micon_tasks.runner.config import RunConfig, fingerprint
from micon_tasks.runner.generate import valid_generations
from micon_tasks.runner.inputs import case_inputs
from micon_tasks.runner.judge_stage import record_to_result, task_judge_fp, valid_judgements
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.records import atomic_write_json, atomic_write_text, dumps_record

__all__ = ["merge_samples", "write_samples", "build_results", "summarise_suites", "package_versions", "git_hash", "IncompleteRunError"]

log = logging.getLogger(__name__)


class IncompleteRunError(MiconError):
    """Aggregation was asked for before the judge stage finished."""


def _failure_reason(gen: dict[str, Any] | None) -> str:
    if gen is None:
        return "missing image: the case was never generated (or its image file is gone, or the case changed since)"
    err = gen["error"]
    return f"generation failed ({err.get('reason')}): {err.get('message')}"


def _drop_file_times(rec: dict[str, Any]) -> None:
    """An image's mtime only lets a resume skip re-hashing it; samples stay equal bytes across equal runs."""
    for image in [rec.get("image"), *(rec.get("images") or [])]:
        if isinstance(image, dict):
            image.pop("mtime_ns", None)


def merge_samples(
    cfg: RunConfig, layout: Layout, tasks: dict[str, Any], selected: dict[str, list[tuple[int, str]]], *,
    write: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """One record per selected case, in dataset order; writes ``samples_<task>.jsonl`` atomically (``write``)."""
    from micon_tasks.types import Case

    identity = cfg.judge_identity()
    merged: dict[str, list[dict[str, Any]]] = {}
    for name in cfg.tasks:
        task = tasks[name]
        inputs = case_inputs(task)
        gens = valid_generations(layout, name, inputs=inputs)
        judged: dict[str, dict[str, Any]] = {}
        if identity is not None:
            judged = valid_judgements(layout, name, task_judge_fp(identity, task), gens, story=task.is_story, inputs=inputs)
        records, not_judged = [], []
        for index, cid in selected[name]:
            gen = gens.get(cid)
            rec: dict[str, Any] = {"task": name, "case_id": cid, "index": index}
            if gen is not None:
                rec.update({k: gen.get(k) for k in ("seed", "prompt", "refs", "image", "dar_stats")})
                rec.update({k: gen[k] for k in ("images", "seeds", "dar_maps") if k in gen})
                _drop_file_times(rec)
                rec["generation_error"] = gen.get("error")
            else:
                rec.update({"seed": None, "prompt": None, "refs": None, "image": None, "dar_stats": None,
                            "generation_error": {"message": "no image on disk", "reason": "missing_image",
                                                 "provider_reason": None, "retryable": True}})
            timings = dict((gen or {}).get("timings") or {})
            rec["judge"] = None
            rec["score"] = None
            if identity is not None:
                stub = Case(task=name, case_id=cid, refs=[], ref_roles=[], prompt="")
                if gen is None or gen.get("error") is not None:
                    score = task.score_case(stub, None, failure_reason=_failure_reason(gen))
                elif cid in judged:
                    jrec = judged[cid]
                    rec["judge"] = jrec["result"]
                    timings.update(jrec.get("timings") or {})
                    score = task.score_case(stub, record_to_result(jrec["result"]))
                    if jrec.get("image_results"):  # several images judged one by one: the kind combines them
                        rec["image_judges"] = jrec["image_results"]
                        score = task.scoring_kind.combine_images(
                            [score, *(task.score_case(stub, record_to_result(r)) for r in jrec["image_results"])])
                else:
                    not_judged.append(cid)
                    continue
                rec["score"] = asdict(score)
            rec["timings"] = timings
            records.append(rec)
        if not_judged:
            raise IncompleteRunError(
                f"task {name!r}: {len(not_judged)} generated case(s) have no verdict yet (first: {not_judged[0]!r}); "
                f"run `micon judge {layout.root}` first"
            )
        merged[name] = records
    if write:
        write_samples(layout, merged)
    return merged


def write_samples(layout: Layout, merged: dict[str, list[dict[str, Any]]]) -> None:
    """``samples_<task>.jsonl`` for every merged task, each written atomically."""
    for name, records in merged.items():
        atomic_write_text(layout.samples(name), "".join(dumps_record(r) + "\n" for r in records))


def build_results(
    cfg: RunConfig, layout: Layout, tasks: dict[str, Any], merged: dict[str, list[dict[str, Any]]], *, world_size: int = 1
) -> dict[str, Any]:
    """The results dict (also written to results.json)."""
    import json

    from micon_tasks import scoring
    from micon_tasks.types import CaseScore

    blocks: dict[str, Any] = {}
    benchmark = None
    suites: dict[str, Any] = {}
    if cfg.judge is not None:
        seed = cfg.seed or 0
        scores = {t: [CaseScore(**r["score"]) for r in recs] for t, recs in merged.items()}
        blocks = {t: tasks[t].scoring_kind.summarise_task(tasks[t], scores[t], seed=seed) for t in merged}
        # MICON's benchmark keys keep their meaning: the checkpoint-kind tasks of the run, pooled.
        micon = [t for t in merged if tasks[t].config.scoring.kind == "checkpoints"]
        if micon:
            benchmark = scoring.aggregate_benchmark({t: blocks[t] for t in micon}, {t: scores[t] for t in micon})
        suites = summarise_suites(tasks, blocks, scores, seed=seed)
    read = lambda p: json.loads(p.read_text("utf-8")) if p.exists() else None  # noqa: E731
    task_info = {}
    for name in cfg.tasks:
        task = tasks[name]
        hashes = [[r["case_id"], r.get("prompt"), [x["sha256"] for x in (r.get("refs") or [])]] for r in merged[name]]
        task_info[name] = {**task.describe(), "checkpoints_sha256": fingerprint(
            checkpoint_identity(task.checkpoints)), "inputs_sha256": fingerprint(hashes)}
    out = {
        "results": blocks,
        "benchmark": benchmark,
        "n-samples": {t: {"original": len(tasks[t]), "effective": len(merged[t])} for t in cfg.tasks},
        "config": {**cfg.to_dict(), "output_dir": str(layout.root), "world_size": world_size},
        "model_name": cfg.model,
        "model_name_sanitized": cfg.dir_name,
        "model_info": read(layout.model_info),
        "judge": read(layout.judge_info) if cfg.judge is not None else None,
        "dar": cfg.dar,
        "tasks": task_info,
        "versions": package_versions(),
        "git_hash": git_hash(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if suites:
        out["suites"] = suites
    return out


def summarise_suites(tasks: dict[str, Any], blocks: dict[str, Any], scores: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """One block per suite among the run's tasks (never averaged across suites), in the run's task order."""
    import registry

    by_suite: dict[str, list[str]] = {}
    for name in blocks:
        suite = tasks[name].suite
        if suite is not None:
            by_suite.setdefault(suite, []).append(name)
    out = {}
    for suite, names in by_suite.items():
        card = registry.suites.get(suite)
        kind = registry.scoring_kinds.get(card.get("kind", tasks[names[0]].config.scoring.kind))
        out[suite] = kind.summarise_suite(card, {n: blocks[n] for n in names}, {n: scores[n] for n in names}, seed=seed)
    return out


def write_results(layout: Layout, results: dict[str, Any], table_md: str, *, name: str = "results") -> None:
    """``<name>.json`` and ``<name>.md`` in the run folder (``results`` unless a named view was asked for)."""
    atomic_write_json(layout.root / f"{name}.json", results)
    atomic_write_text(layout.root / f"{name}.md", table_md)


def package_versions() -> dict[str, str | None]:
    import importlib.metadata

    import micon_tasks

    out: dict[str, str | None] = {"python": platform.python_version(), "micon_tasks": micon_tasks.__version__}
    for pkg in ("torch", "transformers", "diffusers", "datasets", "pillow", "openai", "accelerate"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def git_hash() -> str | None:
    """The project's commit (None outside a git checkout)."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
