"""The ``micon`` command: a thin layer over :mod:`micon_tasks.runner`.

    micon run --model collage --tasks micon --source sample --judge hf \
        --judge_args pretrained=micon-tiny-random,mode=logits --output_path out/
    micon generate ... | micon judge OUT_DIR | micon aggregate OUT_DIR
    micon ls tasks|adapters|judges | micon validate --tasks micon --source sample

User errors (unknown names, bad arguments, an unreachable judge server, a changed configuration)
print one line and exit with status 2; a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "build_parser"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: Errors of the file system (full disk, quota, read-only, permissions, a file where a folder should be):
#: the user's to fix, so one line instead of a traceback.
_FILESYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                                errno.EEXIST, errno.EISDIR})

#: Modules adding subcommands through ``add_cli(subparsers)`` (each sets ``func`` on its parser).
COMMAND_MODULES = ("micon_tasks.publish", "micon_tasks.sweep", "micon_tasks.suites.xversebench", "micon_tasks.webreport")


def _limit(text: str) -> int | float:
    try:
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a case count or a fraction below 1, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _seed(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verbosity", "-v", default="INFO", type=str.upper, choices=LEVELS, help="log level (default INFO)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true", help="with an error, also print its whole traceback")


def _add_data_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--tasks", "-t", nargs="+", required=required, metavar="TASK",
                   help="task names, aliases, globs or groups (space- or comma-separated), e.g. micon")
    p.add_argument("--source", default="hub", help="hub (default), sample, or a local folder (raw layout or parquet)")
    p.add_argument("--dataset_path", default=None, help="Hub dataset id for --source hub")
    p.add_argument("--include_path", default=None, help="a folder of extra YAML task cards")
    p.add_argument("--limit", "-L", type=_limit, default=None, help="cases per task (N, or a fraction below 1)")


def _add_checkpoints_from(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoints_from", nargs="+", default=None, metavar="TASK=FILE|FOLDER",
                   help="official .qa.txt templates replacing built-in checkpoint sets: task=FILE pairs, or a folder "
                        "holding them by their official names (object_composition.qa.txt, ...); one FILE only with "
                        "one task. Relative paths start from the current folder")


def _add_run_args(p: argparse.ArgumentParser, *, judge: bool) -> None:
    p.add_argument("--model", "-M", required=True, help="adapter name (micon ls adapters)")
    p.add_argument("--model_args", "-a", default=None, help="k=v,... or JSON, e.g. pretrained=...,dtype=bfloat16")
    _add_data_args(p)
    _add_checkpoints_from(p)
    p.add_argument("--output_path", "-o", required=True, help="output folder; the run goes to <output_path>/<model>[__dar]/")
    p.add_argument("--dar", action="store_true", help="apply DAR with the paper's defaults")
    p.add_argument("--dar_args", default=None, help="DAR settings (turn DAR on), e.g. gamma=0.2,tau_high=0.8")
    p.add_argument("--seed", type=_seed, default=0, help="base seed; each case's seed derives from (seed, task, case_id)")
    p.add_argument("--batch_size", "-b", type=int, default=1, help="cases per adapter call")
    p.add_argument("--overwrite", action="store_true", help="replace an output folder made by another configuration")
    p.add_argument("--redo_failed", action="store_true", help="retry recorded generation failures and judge errors")
    p.add_argument("--num_images", type=int, default=None,
                   help="images per case, each from its own seed (default: the task card's, 1 for MICON)")
    _add_results_name(p)
    if judge:
        p.add_argument("--judge", default=None, help="judge backend (micon ls judges); default: openai, i.e. a local "
                       "OpenAI-compatible server at http://localhost:8000/v1 serving the paper's judge "
                       "(Qwen3-VL-32B-Instruct); $OPENAI_BASE_URL overrides that endpoint, --judge_args base_url=... "
                       "overrides both. Suites needing different judges take one each: "
                       "--judge micon=openai,xversebench=xversebench")
        p.add_argument("--judge_args", default=None, help="k=v,... or JSON, e.g. base_url=http://HOST:8000/v1,concurrency=32; "
                       "with one judge per suite, suite=k=v items, e.g. micon=concurrency=32,xversebench=device=cuda:0")
        p.add_argument("--predict_only", "-x", action="store_true", help="generate only (same as micon generate)")
    _common(p)


def _add_results_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results_name", default=None,
                   help="write this selection's results as NAME.json/NAME.md (a narrower view of a folder that "
                        "holds more); results.json always covers everything the folder holds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="micon", description="MICON-Bench evaluation harness (multi-image context generation).")
    import micon_tasks

    parser.add_argument("--version", action="version", version=f"micon {micon_tasks.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_args(sub.add_parser("run", help="generate, judge and aggregate"), judge=True)
    _add_run_args(sub.add_parser("generate", help="generate images only (run --predict_only)"), judge=False)

    p = sub.add_parser("judge", help="judge what a run generated (possibly with another judge)")
    p.add_argument("output_dir", help="<output_path>/<model> (or <output_path> when it holds one run)")
    p.add_argument("--judge", default=None, help="judge backend; default: the one recorded in the run")
    p.add_argument("--judge_args", default=None, help="k=v,... or JSON")
    p.add_argument("--overwrite", action="store_true", help="drop earlier verdicts (images are kept)")
    p.add_argument("--redo_failed", action="store_true", help="retry cases whose verdicts had errors")
    _add_results_name(p)
    _common(p)

    p = sub.add_parser("aggregate", help="recompute samples_*.jsonl, results.json and results.md")
    p.add_argument("output_dir")
    _add_results_name(p)
    _common(p)

    p = sub.add_parser("ls", help="list tasks, groups, adapters or judges")
    p.add_argument("what", choices=("tasks", "groups", "adapters", "judges"))
    p.add_argument("--include_path", default=None, help="a folder of extra YAML task cards to list too")
    _common(p)

    p = sub.add_parser("validate", help="load and schema-check tasks, print counts")
    _add_data_args(p)
    _add_checkpoints_from(p)
    _common(p)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)  # optional: the CLI works without it
        except ImportError as exc:
            if exc.name != module_name:  # the module is there but broken (or lacks a dependency): say so
                raise
            continue
        module.add_cli(sub)
    return parser


# -- commands -----------------------------------------------------------------------------------
def _tasks_arg(values: Sequence[str]) -> list[str]:
    return [v for v in values if v.strip()]


def judge_from_args(args: argparse.Namespace, *, predict_only: bool) -> tuple[Any, Any]:
    """(judge, judge_args) for evaluate() from --judge / --judge_args (None, None when only generating)."""
    from micon_tasks.argstr import parse_args_string
    from micon_tasks.runner import DEFAULT_JUDGE, DEFAULT_JUDGE_ARGS

    if predict_only:
        return None, None
    judge = args.judge or DEFAULT_JUDGE
    if "=" in judge:  # micon=openai,xversebench=xversebench: --judge_args in the suite=key=value form
        return judge, args.judge_args
    judge_args = parse_args_string(args.judge_args, what="--judge_args")
    if args.judge is None:
        judge_args = {**DEFAULT_JUDGE_ARGS, **judge_args}
    return judge, judge_args


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """evaluate()'s arguments that the run flags (:func:`_add_run_args`) give as they are: one list for every
    command that runs (``run``, ``generate``, ``dar-sweep``), so a new flag reaches them all."""
    return dict(model_args=args.model_args, source=args.source, limit=args.limit, seed=args.seed,
                overwrite=args.overwrite, include_path=args.include_path, dataset_path=args.dataset_path,
                checkpoints_from=args.checkpoints_from, batch_size=args.batch_size, redo_failed=args.redo_failed,
                progress=not args.no_progress, num_images=args.num_images, results_name=args.results_name)


def cmd_run(args: argparse.Namespace, *, predict_only: bool) -> int:
    from micon_tasks.runner import evaluate

    predict_only = predict_only or getattr(args, "predict_only", False)
    judge, judge_args = judge_from_args(args, predict_only=predict_only)
    results = evaluate(model=args.model, tasks=_tasks_arg(args.tasks), judge=judge, judge_args=judge_args,
                       output_path=args.output_path, dar=args.dar, dar_args=args.dar_args, predict_only=predict_only,
                       **run_options(args))
    _print_results(results, generated_only=predict_only)
    return 0


def _print_results(results: dict[str, Any] | None, *, generated_only: bool = False) -> None:
    if results is None:  # ranks > 0 print nothing
        return
    out_dir = results["config"]["output_dir"]
    if generated_only:
        n = sum(v["effective"] for v in results["n-samples"].values())
        print(f"generated {n} cases into {out_dir} (judge them with: micon judge {out_dir} --judge ...)")
        return
    from micon_tasks.runner.report import header_line, judge_note, suite_sections

    print(header_line(results))
    print()
    print("\n".join(suite_sections(results)))
    if note := judge_note(results):
        print(f"NOTE: {note}\n")
    print(f"results: {out_dir}/results.json, {out_dir}/results.md, samples: {out_dir}/samples_<task>.jsonl")


def cmd_judge(args: argparse.Namespace) -> int:
    from micon_tasks.runner import judge_outputs

    results = judge_outputs(args.output_dir, args.judge, args.judge_args, overwrite=args.overwrite,
                            redo_failed=args.redo_failed, progress=not args.no_progress, results_name=args.results_name)
    _print_results(results)
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from micon_tasks.runner import aggregate_outputs

    _print_results(aggregate_outputs(args.output_dir, results_name=args.results_name))
    return 0


def _include(args: argparse.Namespace) -> int:
    """Index ``--include_path`` (if given): every card that cannot be used is one error line (status 2)."""
    if not getattr(args, "include_path", None):
        return 0
    import warnings

    from micon_tasks.task import include_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # each problem is printed below, once
        report = include_path(args.include_path)
    for file, msg in report.errors:
        print(f"micon: error: include_path {file}: {msg}", file=sys.stderr)
    if args.command == "validate" and (report.tasks or report.groups):
        print(f"include_path {args.include_path}: tasks {report.tasks or '-'}, groups {report.groups or '-'}")
    return 2 if report.errors else 0


def cmd_ls(args: argparse.Namespace) -> int:
    import registry

    status = _include(args)
    if args.what == "tasks":
        for name in registry.list_tasks():
            aliases = [a for a in getattr(registry.get_task(name).config, "aliases", ()) if a != name]
            print(name + (f"  (aliases: {', '.join(aliases)})" if aliases else ""))
    elif args.what == "groups":
        for name in registry.groups.list():
            print(f"{name}: {', '.join(registry.groups.get(name))}")
    elif args.what == "adapters":
        print("\n".join(registry.list_adapters()))
    else:
        print("\n".join(registry.list_judges()))
    return status


def cmd_validate(args: argparse.Namespace) -> int:
    import registry
    from micon_tasks.checkpoints import resolve_checkpoints_from
    from micon_tasks.data.checks import decode_references
    from micon_tasks.task import load_task

    status = _include(args)
    names = registry.expand_task_names(_tasks_arg(args.tasks))
    qa_files = resolve_checkpoints_from(args.checkpoints_from, names)
    total = 0
    print(f"{'task':<28} {'cases':>6} {'refs':>6} {'checkpoints':>12} {'hard':>5}")
    for name in names:
        task = load_task(name, args.source, dataset_path=args.dataset_path, checkpoints_from=qa_files)
        n = len(task)  # loads and schema-checks every case (raises on the first invalid one)
        if args.limit is not None:
            from micon_tasks.runner.config import RunConfig

            n = RunConfig(model="-", tasks=[name], limit=args.limit).limit_count(n)
        if not task.decoded_on_load:  # a raw folder's conversion decoded every pixel already
            decode_references(task.dataset, task=name, limit=n)  # every pixel, not only the headers
        n_refs = sum(len(r) for r in task.dataset["ref_roles"][:n])
        hard = sum(1 for c in task.checkpoints if c.hard)
        print(f"{name:<28} {n:>6} {n_refs:>6} {len(task.checkpoints):>12} {hard:>5}")
        total += n
    print(f"{'total':<28} {total:>6}")
    return status


# -- entry point --------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["run", *argv]  # lm-eval habit: `micon --model ...` means `micon run --model ...`
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=getattr(args, "verbosity", "INFO"), format="%(levelname)s %(name)s: %(message)s")
    from micon_tasks.memory import limit_allocator_caches

    limit_allocator_caches()  # a long run's freed image buffers go back to the system
    import os

    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # our own bars say what is going on
    import registry
    from micon_tasks.errors import MiconError

    try:
        if args.command == "run":
            return cmd_run(args, predict_only=False)
        if args.command == "generate":
            return cmd_run(args, predict_only=True)
        if args.command == "judge":
            return cmd_judge(args)
        if args.command == "aggregate":
            return cmd_aggregate(args)
        if args.command == "ls":
            return cmd_ls(args)
        if args.command == "validate":
            return cmd_validate(args)
        return int(args.func(args) or 0)  # subcommands registered by other modules (publish)
    except (MiconError, registry.UnknownNameError, registry.RegistryLoadError) as exc:
        if getattr(args, "verbose", False):
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        print(f"micon: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        print("micon: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in _FILESYSTEM_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"micon: error: {exc.strerror or exc}{where}; nothing already recorded is lost: fix it and run the "
              "same command again to resume", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
