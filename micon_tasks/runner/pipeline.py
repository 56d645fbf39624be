"""``evaluate()``: generate -> judge -> aggregate, each stage resumable from the files of the last.

The CLI is a thin layer over :func:`evaluate`, :func:`judge_outputs` and :func:`aggregate_outputs`.
Under ``torchrun`` / ``accelerate launch`` every rank runs the same function on its shard of the
cases; rank 0 checks the output folder first, and merges and aggregates last (other ranks return None).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters import load_adapter
from micon_tasks.argstr import parse_args_string
from micon_tasks.errors import CaseValidationError, ConfigError
from micon_tasks.judges import load_judge
from micon_tasks.runner import distributed
from micon_tasks.runner.aggregate import IncompleteRunError, build_results, merge_samples, write_results
from micon_tasks.runner.config import RunConfig, config_diff, load_run_config, refuse_secrets
from micon_tasks.runner.generate import GenerateStage
from micon_tasks.runner.judge_stage import JudgeStage, check_judge_kinds, preflight
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.lock import RunLock
from micon_tasks.runner.records import atomic_write_json
from micon_tasks.runner.report import results_markdown
from micon_tasks.runner.stages import run_stage
from micon_tasks.task import load_task

__all__ = ["evaluate", "judge_outputs", "aggregate_outputs", "find_model_dir", "DEFAULT_JUDGE", "DEFAULT_JUDGE_ARGS"]

log = logging.getLogger("micon_tasks.runner")

#: The paper's judge: Qwen3-VL-32B-Instruct behind a local vLLM server (see judge_stage.VLLM_COMMAND).
DEFAULT_JUDGE = "openai"
DEFAULT_JUDGE_ARGS: dict[str, Any] = {"base_url": "http://localhost:8000/v1"}


def evaluate(
    model: Any,
    model_args: str | Mapping[str, Any] | None = None,
    tasks: str | Sequence[str] = ("micon",),
    judge: Any = None,
    judge_args: str | Mapping[str, Any] | None = None,
    source: str = "hub",
    output_path: str | Path | None = None,
    *,
    dar: Any = None,
    dar_args: str | Mapping[str, Any] | None = None,
    limit: int | float | None = None,
    seed: int | None = 0,
    predict_only: bool = False,
    overwrite: bool = False,
    include_path: str | Path | None = None,
    dataset_path: str | None = None,
    checkpoints_from: str | None = None,
    batch_size: int = 1,
    redo_failed: bool = False,
    progress: bool = True,
    num_images: int | None = None,
    results_name: str | None = None,
) -> dict[str, Any] | None:
    """Run a model on tasks, judge the images and aggregate; returns what ``results.json`` holds.

    ``model``/``judge``: registered names (or built ``ModelAdapter`` / ``Judge`` objects).
    ``*_args``: ``"k=v,..."``, JSON or a mapping. ``dar``: True (the paper's defaults), a dict or a
    ``DARConfig``; ``dar_args`` sets DAR fields (and turns DAR on). ``limit``: a case count per task
    or a fraction below 1. ``num_images``: images per case (default: each task card's). ``results_name``:
    write this run's selection as ``<results_name>.json/.md`` instead of results.json (a narrower view of a
    folder that holds more). Resuming: call again with the same arguments. Returns None on ranks > 0.
    """
    import registry

    if output_path is None:
        raise ConfigError("output_path is required: the generate, judge and aggregate stages keep their files there")
    if include_path is not None:
        _include(include_path)
    adapter_obj, model_name, margs = _named(model, model_args, "model")
    judge_obj = None
    if predict_only:
        judge_name, jargs = None, {}
    elif judge is None:
        raise ConfigError("no judge given: pass judge='openai' with judge_args base_url=..., or predict_only=True")
    else:
        judge_obj, judge_name, jargs = _named(judge, judge_args, "judge")
        if judge_obj is None:
            judge_name = registry.judges.canonical(judge_name)
    if adapter_obj is None:
        model_name = registry.adapters.canonical(model_name)
    dar_obj = _resolve_dar(dar, dar_args)
    if dar_obj is not None and not getattr(adapter_obj or registry.get_adapter(model_name), "supports_dar", False):
        raise ConfigError(f"adapter {model_name!r} cannot apply DAR (it has no attention to rebalance); run it without --dar")
    cfg = RunConfig(
        model=model_name, model_args=margs, tasks=registry.expand_task_names(tasks), source=str(source),
        dataset_path=_resolve_dataset_path(str(source), dataset_path), include_path=str(include_path) if include_path else None,
        checkpoints_from=str(checkpoints_from) if checkpoints_from else None, limit=limit, seed=seed,
        dar=_dar_dict(dar_obj), judge=judge_name, judge_args=jargs, batch_size=batch_size, predict_only=predict_only,
        num_images=num_images,
    )
    if adapter_obj is None:
        adapter_obj = _load_adapter(cfg)  # checks model_args now; adapters load their weights on first use
    layout = Layout(Path(output_path) / cfg.dir_name)
    return _run(cfg, layout, mode="generate" if predict_only else "run", overwrite=overwrite, adapter_obj=adapter_obj,
                judge_obj=judge_obj, dar_obj=dar_obj, redo_failed=redo_failed, progress=progress, results_name=results_name)


def judge_outputs(
    output_dir: str | Path,
    judge: Any = None,
    judge_args: str | Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
    redo_failed: bool = False,
    progress: bool = True,
    results_name: str | None = None,
) -> dict[str, Any] | None:
    """Judge what a run generated (possibly with another judge: ``overwrite=True`` replaces old verdicts)."""
    import registry

    layout = Layout(find_model_dir(output_dir))
    cfg = _stored_config(layout)
    judge_obj = None
    if judge is not None:
        judge_obj, name, args = _named(judge, judge_args, "judge")
        refuse_secrets(args, "--judge_args")  # before anything compares, shows or records them
        cfg.judge = name if judge_obj is not None else registry.judges.canonical(name)
        cfg.judge_args = args
    elif judge_args is not None:
        args = parse_args_string(judge_args, what="--judge_args")
        refuse_secrets(args, "--judge_args")
        cfg.judge_args = args
    if cfg.judge is None:
        raise ConfigError(f"{layout.root} was generated without a judge; name one (--judge)")
    cfg.predict_only = False
    if cfg.include_path:
        _include(cfg.include_path)
    return _run(cfg, layout, mode="judge", overwrite=overwrite, judge_obj=judge_obj, redo_failed=redo_failed, progress=progress,
                results_name=results_name)


def aggregate_outputs(output_dir: str | Path, results_name: str | None = None) -> dict[str, Any]:
    """Re-merge the shards and recompute results.json / results.md from the recorded verdicts."""
    layout = Layout(find_model_dir(output_dir))
    cfg = _stored_config(layout)
    if cfg.judge is None:
        raise ConfigError(f"{layout.root} has not been judged; run `micon judge {layout.root}` first")
    if cfg.include_path:
        _include(cfg.include_path)
    return _run(cfg, layout, mode="aggregate", progress=False, results_name=results_name)  # type: ignore[return-value]


def find_model_dir(path: str | Path) -> Path:
    """``path`` itself when it holds a run, else its only sub-folder that does."""
    root = Path(path)
    if (root / "run_config.json").exists():
        return root
    found = sorted(p.parent for p in root.glob("*/run_config.json")) if root.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(f"{root} holds no micon run (no run_config.json in it or in a sub-folder)")
    raise ConfigError(f"{root} holds several runs; name one: {', '.join(str(p) for p in found)}")


# -- internals ----------------------------------------------------------------------------------
def _run(cfg: RunConfig, layout: Layout, *, mode: str, overwrite: bool = False, adapter_obj: Any = None,
         judge_obj: Any = None, dar_obj: Any = None, redo_failed: bool = False, progress: bool = True,
         results_name: str | None = None) -> dict[str, Any] | None:
    dist = distributed.from_env()
    _check_output_path(layout.root)
    # Rank 0 holds the folder's lock for the whole command; the other ranks work inside it.
    with RunLock(layout.root, enabled=dist.is_main):
        try:
            return _stages(cfg, layout, dist, mode=mode, overwrite=overwrite, adapter_obj=adapter_obj,
                           judge_obj=judge_obj, dar_obj=dar_obj, redo_failed=redo_failed, progress=progress,
                           results_name=_results_name(results_name))
        finally:
            dist.close()


def _stages(cfg: RunConfig, layout: Layout, dist: distributed.Dist, *, mode: str, overwrite: bool, adapter_obj: Any,
            judge_obj: Any, dar_obj: Any, redo_failed: bool, progress: bool,
            results_name: str | None = None) -> dict[str, Any] | None:
    tasks: dict[str, Any] = {}
    selected: dict[str, list[tuple[int, str]]] = {}
    folder_cfg = cfg
    new_work = 0
    with dist.stage("the output folder check and data loading"):
        if dist.is_main:  # rank 0 first: it checks the folder and fills the dataset cache the others read
            folder_cfg = _prepare(layout, cfg, mode=mode, overwrite=overwrite)
            tasks, selected = _load_tasks(cfg)

    built: list[Any] = [judge_obj] if judge_obj is not None else []

    def load_judge() -> Any:  # one judge object per process, built on first need (constructors are cheap)
        if not built:
            built.append(_load_judge(cfg))
        return built[0]

    with dist.stage("generation"):
        if not tasks:
            tasks, selected = _load_tasks(cfg)
        if mode in ("run", "judge"):
            preflight(load_judge())  # an unreachable judge server fails now, not after hours of generation
            check_judge_kinds(load_judge(), list(tasks.values()))
        if mode in ("run", "generate"):
            stage = GenerateStage(cfg, layout, lambda: adapter_obj or _load_adapter(cfg), dar=dar_obj,
                                  redo_failed=redo_failed, is_main=dist.is_main)
            stats = run_stage(stage, dist, layout, tasks, selected, progress=progress)
            new_work += stats.done
            log.info("generation: %d generated, %d failed (%d adapter calls)", stats.done - stats.problems,
                     stats.problems, stats.calls)
            _free()

    if mode in ("run", "judge"):
        with dist.stage("judging"):
            if dist.is_main and not layout.judge_info.exists():
                atomic_write_json(layout.judge_info, load_judge().provenance())
            jstats = run_stage(JudgeStage(cfg, layout, load_judge, redo_failed=redo_failed), dist, layout, tasks,
                               selected, progress=progress)
            new_work += jstats.done
            log.info("judging: %d cases judged (%d judge calls)", jstats.done, jstats.calls)
            if jstats.problems:
                log.warning("judging: %d of %d cases have judge errors (recorded; they count as fails; --redo_failed "
                            "retries them)", jstats.problems, jstats.done)
            _free()

    results = None
    with dist.stage("aggregation"):
        if dist.is_main:
            results = _aggregate(cfg, folder_cfg, layout, tasks, selected, mode=mode, new_work=new_work,
                                 results_name=results_name, world_size=dist.world_size)
    return results


def _aggregate(cfg: RunConfig, folder_cfg: RunConfig, layout: Layout, tasks: dict[str, Any],
               selected: dict[str, list[tuple[int, str]]], *, mode: str, new_work: int, results_name: str | None,
               world_size: int) -> dict[str, Any]:
    """Merge and score. results.json covers what the folder holds (the widest selection run in it): a narrower
    re-run that made nothing new leaves it as it is; ``results_name`` writes the narrower view under its own name."""
    if results_name is None and folder_cfg.selection() != cfg.selection():
        if new_work == 0 and layout.results_json.exists():
            log.warning("results.json left as it is: it covers the wider selection run in %s earlier, and this run "
                        "(%s) made nothing new; pass --results_name NAME to write this narrower view as NAME.json",
                        layout.root, cfg.describe_selection())
            return json.loads(layout.results_json.read_text("utf-8"))
        wide_tasks, wide_selected = _load_tasks(folder_cfg, loaded=tasks)
        if _complete(folder_cfg, layout, wide_tasks, wide_selected):
            cfg, tasks, selected = folder_cfg, wide_tasks, wide_selected
    merged = merge_samples(cfg, layout, tasks, selected, write=results_name is None)
    results = build_results(cfg, layout, tasks, merged, world_size=world_size)
    if cfg.judge is not None and mode != "generate":
        write_results(layout, results, results_markdown(results), name=results_name or "results")
    return results


def _complete(cfg: RunConfig, layout: Layout, tasks: dict[str, Any], selected: dict[str, list[tuple[int, str]]]) -> bool:
    """Whether every selected case has its records (so the folder's whole selection can be scored)."""
    try:
        merge_samples(cfg, layout, tasks, selected, write=False)
    except IncompleteRunError:
        return False
    return True


def _results_name(name: str | None) -> str | None:
    """A results view name usable as a file stem (``results`` itself is the folder's own results)."""
    if name is None or name == "results":
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) or name.endswith((".json", ".md")):
        raise ConfigError(f"--results_name {name!r}: use letters, digits, '_', '-' or '.', without an extension")
    return name


def _check_output_path(root: Path) -> None:
    """One clear line when the run folder cannot be a folder (a file stands in its way)."""
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                raise ConfigError(f"output path {str(path)!r} is a file, not a folder; choose another --output_path")
            return


def _prepare(layout: Layout, cfg: RunConfig, *, mode: str, overwrite: bool) -> RunConfig:
    """Refuse a folder made by another configuration (naming what differs), or clear it on overwrite.

    Returns the folder's configuration as now recorded: its selection is the widest run in it (the union of
    the tasks, the wider limit), so a narrower re-run never narrows what ``micon aggregate`` covers. A folder
    holding no record yet takes a new configuration without complaint.
    """
    refuse_secrets(cfg.model_args, "--model_args")  # every path, before any comparison or write
    refuse_secrets(cfg.judge_args, "--judge_args")
    stored = load_run_config(layout.root)
    if stored is not None and not _has_records(layout):
        log.info("%s holds no records yet: its configuration is replaced", layout.root)
        stored = None
    if stored is not None:
        problems: list[str] = []
        if mode in ("run", "generate"):
            problems += config_diff(stored.get("generation_identity"), cfg.generation_identity())
        judged = any((layout.root / "shards").glob("judge_*.jsonl"))
        if mode in ("run", "judge") and judged and stored.get("judge_identity") is not None:
            problems += config_diff(stored.get("judge_identity"), cfg.judge_identity())
        if problems and not overwrite and mode != "aggregate":
            what = "generated" if any(p.split(":")[0].split(".")[0] in cfg.generation_identity() for p in problems) else "judged"
            raise ConfigError(
                f"{layout.root} was {what} with another configuration ({'; '.join(problems)}); "
                "use another --output_path, or --overwrite to replace it"
            )
        if overwrite and mode in ("run", "generate"):
            log.warning("--overwrite: removing %s", layout.root)
            shutil.rmtree(layout.root)
            stored = None
        elif overwrite and mode == "judge":
            log.warning("--overwrite: removing the verdicts and results in %s (images are kept)", layout.root)
            for p in [*(layout.root / "shards").glob("judge_*.jsonl"), layout.judge_info, layout.results_json,
                      layout.results_md, *layout.root.glob("samples_*.jsonl")]:
                p.unlink(missing_ok=True)
    if mode == "aggregate":
        return cfg
    data = cfg.to_dict()
    if stored is not None:
        keep = stored.get("config", {})
        if cfg.judge is None:  # `micon generate` after a judged run keeps the judge
            data.update(judge=keep.get("judge"), judge_args=keep.get("judge_args", {}))
        data.update(RunConfig.from_dict(keep).widest_selection(cfg))
    written = RunConfig.from_dict(data)
    layout.root.mkdir(parents=True, exist_ok=True)
    import micon_tasks

    atomic_write_json(layout.run_config, {
        "config": data,
        "generation_identity": written.generation_identity(),
        "judge_identity": written.judge_identity(),
        "micon_version": micon_tasks.__version__,
    })
    return written


def _has_records(layout: Layout) -> bool:
    shards = layout.root / "shards"
    return shards.is_dir() and any(p.stat().st_size > 0 for p in shards.glob("*.jsonl"))


def _stored_config(layout: Layout) -> RunConfig:
    stored = load_run_config(layout.root)
    if stored is None or "config" not in stored:
        raise ConfigError(f"{layout.root} holds no run_config.json")
    return RunConfig.from_dict(stored["config"])


def _load_tasks(cfg: RunConfig, loaded: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, list[tuple[int, str]]]]:
    """The selected tasks (``loaded`` ones reused) and their selected (index, case id) pairs."""
    tasks, selected = {}, {}
    for name in cfg.tasks:
        task = (loaded or {}).get(name) or load_task(name, cfg.source, dataset_path=cfg.dataset_path,
                                                     checkpoints_from=cfg.checkpoints_from)
        ids = task.case_ids[: cfg.limit_count(len(task))]
        seen: set[str] = set()
        for cid in ids:
            if cid in seen:
                raise CaseValidationError(name, cid, "case_id", "appears twice in the task")
            seen.add(cid)
        tasks[name], selected[name] = task, list(enumerate(ids))
    return tasks, selected


def _load_adapter(cfg: RunConfig) -> Any:
    return load_adapter(cfg.model, cfg.model_args)


def _load_judge(cfg: RunConfig) -> Any:
    return load_judge(cfg.judge, dict(cfg.judge_args))


def _named(obj: Any, args: str | Mapping[str, Any] | None, kind: str) -> tuple[Any, str, dict[str, Any]]:
    """(built object or None, name, parsed args) for a name or an already built adapter / judge."""
    if isinstance(obj, str):
        return None, obj, parse_args_string(args, what=f"--{kind}_args")
    if kind == "model" and hasattr(obj, "generate_batch"):
        return obj, obj.name, {}
    if kind == "judge" and hasattr(obj, "judge_batch"):
        return obj, str(getattr(obj, "backend", type(obj).__name__)), {"provenance": obj._describe()}
    raise ConfigError(f"{kind} must be a registered name or a built {kind} object, not {type(obj).__name__}")


def _resolve_dataset_path(source: str, dataset_path: str | None) -> str | None:
    """The dataset a ``hub`` source reads, as recorded in the run configuration: ``dataset_path``, else
    ``$MICON_DATASET`` (so that switching it is a changed configuration, and ``micon judge`` later reads
    the same data); a local folder is recorded by its absolute path. None: each task card's default repo."""
    if source != "hub":
        return dataset_path
    chosen = dataset_path or os.environ.get("MICON_DATASET") or None
    if chosen and not dataset_path:
        log.info("data: $MICON_DATASET=%s (recorded in the run configuration as dataset_path)", chosen)
    if chosen and Path(chosen).expanduser().is_dir():
        return str(Path(chosen).expanduser().resolve())
    return chosen


def _resolve_dar(dar: Any, dar_args: str | Mapping[str, Any] | None) -> Any:
    spec = parse_args_string(dar_args, what="--dar_args") if dar_args else None
    if spec is None and not dar:
        return None
    if spec is not None and isinstance(dar, Mapping):
        spec = {**dar, **spec}
    from adapters.base import resolve_dar

    try:
        return resolve_dar(spec if spec is not None else dar)
    except ImportError as exc:
        raise ConfigError(f"DAR was asked for but the dar package cannot be imported ({exc})") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"--dar_args: {exc}") from None


def _dar_dict(dar_obj: Any) -> dict[str, Any] | None:
    if dar_obj is None:
        return None
    if dataclasses.is_dataclass(dar_obj):
        return dataclasses.asdict(dar_obj)
    return dict(vars(dar_obj))


def _include(path: str | Path) -> None:
    from micon_tasks.task import include_path

    report = include_path(path)
    for file, msg in report.errors:
        log.warning("include_path: %s was not loaded: %s", file, msg)


def _free() -> None:
    """Give memory back between stages (the generator and an in-process judge need not coexist)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
