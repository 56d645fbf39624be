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
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters import load_adapter
from micon_tasks.argstr import parse_args_string
from micon_tasks.errors import CaseValidationError, ConfigError
from micon_tasks.judges import load_judge as load_judge_by_name
from micon_tasks.runner import distributed
from micon_tasks.runner.aggregate import IncompleteRunError, build_results, merge_samples, write_results, write_samples
from micon_tasks.runner.config import RunConfig, per_suite_args, refuse_secrets
from micon_tasks.runner.folder import check_output_path, check_results_name, find_model_dir, prepare, stored_config
from micon_tasks.runner.generate import GenerateStage
from micon_tasks.runner.inputs import persist_all
from micon_tasks.runner.judge_stage import JudgeStage, check_judge_kinds, preflight
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.lock import RunLock
from micon_tasks.runner.records import atomic_write_json
from micon_tasks.runner.report import results_markdown
from micon_tasks.runner.stages import run_stage
from micon_tasks.task import include_path as include_path_cards
from micon_tasks.task import load_task

__all__ = ["evaluate", "judge_outputs", "aggregate_outputs", "find_model_dir", "DEFAULT_JUDGE", "DEFAULT_JUDGE_ARGS"]

log = logging.getLogger("micon_tasks.runner")

#: The paper's judge: Qwen3-VL-32B-Instruct behind a local vLLM server (see judge_stage.VLLM_COMMAND).
DEFAULT_JUDGE = "openai"
#: No endpoint here: the judge resolves it once (base_url, else $OPENAI_BASE_URL, else http://localhost:8000/v1).
DEFAULT_JUDGE_ARGS: dict[str, Any] = {}


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
    checkpoints_from: str | Mapping[str, str] | Sequence[str] | None = None,
    batch_size: int = 1,
    redo_failed: bool = False,
    progress: bool = True,
    num_images: int | None = None,
    results_name: str | None = None,
    run_name: str | None = None,
) -> dict[str, Any] | None:
    """Run a model on tasks, judge the images and aggregate; returns what ``results.json`` holds.

    ``model``/``judge``: registered names (or built ``ModelAdapter`` / ``Judge`` objects).
    ``*_args``: ``"k=v,..."``, JSON or a mapping. ``dar``: True (the paper's defaults), a dict or a
    ``DARConfig``; ``dar_args`` sets DAR fields (and turns DAR on). ``limit``: a case count per task
    or a fraction below 1. ``num_images``: images per case (default: each task card's). ``results_name``:
    write this run's selection as ``<results_name>.json/.md`` instead of results.json (a narrower view of a
    folder that holds more). Resuming: call again with the same arguments. Returns None on ranks > 0.
    ``run_name``: the run folder's name under ``output_path`` instead of ``<model>[__dar]`` (dar-sweep).
    """
    import registry

    if output_path is None:
        raise ConfigError("output_path is required: the generate, judge and aggregate stages keep their files there")
    if include_path is not None:
        include_path_cards(include_path)
    adapter_obj, model_name, margs = _named(model, model_args, "model")
    judge_obj = None
    if predict_only:
        judge_name, jargs = None, {}
    elif judge is None:
        raise ConfigError("no judge given: pass judge='openai' with judge_args base_url=..., or predict_only=True")
    else:
        judge_obj, judge_name, jargs = _judges(judge, judge_args)
    if adapter_obj is None:
        model_name = registry.adapters.canonical(model_name)
    dar_obj = _resolve_dar(dar, dar_args)
    if dar_obj is not None and not getattr(adapter_obj or registry.get_adapter(model_name), "supports_dar", False):
        raise ConfigError(f"adapter {model_name!r} cannot apply DAR (it has no attention to rebalance); run it without --dar")
    cfg = RunConfig(
        model=model_name, model_args=margs, tasks=registry.expand_task_names(tasks), source=str(source),
        dataset_path=_resolve_dataset_path(str(source), dataset_path), include_path=str(include_path) if include_path else None,
        checkpoints_from=checkpoints_from, limit=limit, seed=seed,
        dar=_dar_dict(dar_obj), judge=judge_name, judge_args=jargs, batch_size=batch_size, predict_only=predict_only,
        num_images=num_images,
    )
    if adapter_obj is None:
        adapter_obj = _load_adapter(cfg)  # checks model_args now; adapters load their weights on first use
    layout = Layout(Path(output_path) / (run_name or cfg.dir_name))
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

    layout = Layout(find_model_dir(output_dir))
    cfg = stored_config(layout)
    judge_obj = None
    if judge is not None:
        judge_obj, cfg.judge, cfg.judge_args = _judges(judge, judge_args)
        refuse_secrets(cfg.judge_args, "--judge_args")  # before anything compares, shows or records them
    elif judge_args is not None:
        suites = list(cfg.judge) if isinstance(cfg.judge, dict) else None
        args = per_suite_args(judge_args, suites) if suites else parse_args_string(judge_args, what="--judge_args")
        refuse_secrets(args, "--judge_args")
        cfg.judge_args = args
    if cfg.judge is None:
        raise ConfigError(f"{layout.root} was generated without a judge; name one (--judge)")
    cfg.predict_only = False
    if cfg.include_path:
        include_path_cards(cfg.include_path)
    return _run(cfg, layout, mode="judge", overwrite=overwrite, judge_obj=judge_obj, redo_failed=redo_failed, progress=progress,
                results_name=results_name)


def aggregate_outputs(output_dir: str | Path, results_name: str | None = None) -> dict[str, Any]:
    """Re-merge the shards and recompute results.json / results.md from the recorded verdicts."""
    layout = Layout(find_model_dir(output_dir))
    cfg = stored_config(layout)
    if cfg.judge is None:
        raise ConfigError(f"{layout.root} has not been judged; run `micon judge {layout.root}` first")
    if cfg.include_path:
        include_path_cards(cfg.include_path)
    return _run(cfg, layout, mode="aggregate", progress=False, results_name=results_name)  # type: ignore[return-value]


def _run(cfg: RunConfig, layout: Layout, *, mode: str, overwrite: bool = False, adapter_obj: Any = None,
         judge_obj: Any = None, dar_obj: Any = None, redo_failed: bool = False, progress: bool = True,
         results_name: str | None = None) -> dict[str, Any] | None:
    dist = distributed.from_env()
    check_output_path(layout.root)
    # Rank 0 holds the folder's lock for the whole command; the other ranks work inside it.
    with RunLock(layout.root, enabled=dist.is_main):
        try:
            return _stages(cfg, layout, dist, mode=mode, overwrite=overwrite, adapter_obj=adapter_obj,
                           judge_obj=judge_obj, dar_obj=dar_obj, redo_failed=redo_failed, progress=progress,
                           results_name=check_results_name(results_name))
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
            folder_cfg = prepare(layout, cfg, mode=mode, overwrite=overwrite)
            tasks, selected = _load_tasks(cfg)

    built: dict[str | None, Any] = {None: judge_obj} if judge_obj is not None else {}

    def load_judge(key: str | None = None) -> Any:  # one object per judge and process, built on first need
        if key not in built:
            name, args = cfg.judge_spec(key)
            built[key] = load_judge_by_name(name, args)
        return built[key]

    with dist.stage("generation"):
        if not tasks:
            tasks, selected = _load_tasks(cfg)
        if mode in ("run", "judge"):
            for key, group in _by_judge(cfg, tasks).items():
                preflight(load_judge(key))  # an unreachable judge server fails now, not after hours of generation
                check_judge_kinds(load_judge(key), group)
        if mode in ("run", "generate"):
            if callable(getattr(adapter_obj, "preflight", None)):
                adapter_obj.preflight()  # weights that cannot be found fail now, in one line
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
                keys = list(_by_judge(cfg, tasks))
                info = load_judge().provenance() if keys == [None] else {k: load_judge(k).provenance() for k in keys}
                atomic_write_json(layout.judge_info, info)
            jstats = run_stage(JudgeStage(cfg, layout, load_judge, redo_failed=redo_failed), dist, layout, tasks,
                               selected, progress=progress)
            new_work += jstats.done
            log.info("judging: %d cases judged (%d judge calls)", jstats.done, jstats.calls)
            if jstats.problems:
                log.warning("judging: %d of %d cases have judge errors (recorded; they count as fails; --redo_failed "
                            "retries them)", jstats.problems, jstats.done)
            _free()

    persist_all()  # the case-input digests this run computed: the next resume hashes nothing again
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
    merged = None
    if results_name is None and folder_cfg.selection() != cfg.selection():
        if new_work == 0 and layout.results_json.exists():
            log.warning("results.json left as it is: it covers the wider selection run in %s earlier, and this run "
                        "(%s) made nothing new; pass --results_name NAME to write this narrower view as NAME.json",
                        layout.root, cfg.describe_selection())
            return json.loads(layout.results_json.read_text("utf-8"))
        wide_tasks, wide_selected = _load_tasks(folder_cfg, loaded=tasks)
        try:  # the folder's whole selection, when every case of it has its records
            merged = merge_samples(folder_cfg, layout, wide_tasks, wide_selected, write=False)
            write_samples(layout, merged)  # only once the whole selection is known to be complete
            cfg, tasks = folder_cfg, wide_tasks
        except IncompleteRunError:
            merged = None
    if merged is None:
        merged = merge_samples(cfg, layout, tasks, selected, write=results_name is None)
    results = build_results(cfg, layout, tasks, merged, world_size=world_size)
    if cfg.judge is not None and mode != "generate":
        write_results(layout, results, results_markdown(results), name=results_name or "results")
    return results


def _load_tasks(cfg: RunConfig, loaded: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, list[tuple[int, str]]]]:
    """The selected tasks (``loaded`` ones reused) and their selected (index, case id) pairs."""
    tasks, selected = {}, {}
    for name in cfg.tasks:
        task = (loaded or {}).get(name) or load_task(name, cfg.source, dataset_path=cfg.dataset_path,
                                                     checkpoints_from=cfg.checkpoints_from)
        task.num_images = cfg.images_for(task)  # what a failed case owes is scored by this run's count
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


def _by_judge(cfg: RunConfig, tasks: dict[str, Any]) -> dict[str | None, list[Any]]:
    """The run's tasks grouped by the judge that scores them (one group unless --judge names one per suite)."""
    out: dict[str | None, list[Any]] = {}
    for task in tasks.values():
        out.setdefault(cfg.judge_key(task), []).append(task)
    return out


def _judges(judge: Any, judge_args: str | Mapping[str, Any] | None) -> tuple[Any, str | dict[str, str], dict[str, Any]]:
    """(built judge or None, name or {suite: name}, arguments) from ``--judge``: a registered name, a built
    judge, or one judge per suite (``micon=openai,xversebench=xversebench`` or a mapping)."""
    import registry

    if isinstance(judge, str) and "=" in judge:
        judge = parse_args_string(judge, what="--judge")
    if isinstance(judge, Mapping):
        names = {str(suite): registry.judges.canonical(str(name)) for suite, name in judge.items()}
        return None, names, per_suite_args(judge_args, list(names))
    judge_obj, name, args = _named(judge, judge_args, "judge")
    return judge_obj, (name if judge_obj is not None else registry.judges.canonical(name)), args


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
    # in the JSON form run_config.json stores (tuples as lists), so a resumed DAR run compares equal
    data = dataclasses.asdict(dar_obj) if dataclasses.is_dataclass(dar_obj) else dict(vars(dar_obj))
    return json.loads(json.dumps(data))


def _free() -> None:
    """Give memory back between stages (the generator and an in-process judge need not coexist)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
