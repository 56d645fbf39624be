"""``micon dar-sweep``: one model and judge, a grid of DAR settings, one ordinary run per combination.

Why ordinary runs: each combination (and DAR off) is a normal run folder, ``OUT/<model>__dar_<k>/``
(DAR off: ``OUT/<model>/``), so it resumes, re-judges and reports like any run, and an interrupted
sweep picks up where it stopped. The sweep adds ``OUT/sweep.json`` and ``OUT/sweep.md``: each run's
settings beside its scores.

    micon dar-sweep --model omnigen --tasks micon --limit 5 --grid gamma=0.1,0.15,0.2 \\
        --grid tau_high=0.6,0.7 --judge openai --judge_args base_url=... --output_path sweeps/
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from micon_tasks.argstr import coerce_value, parse_args_string
from micon_tasks.errors import ConfigError

__all__ = ["parse_grid", "combinations", "sweep", "add_cli"]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["gamma=0.1,0.2", "tau_high=0.6,0.7"]`` -> ``{"gamma": [0.1, 0.2], "tau_high": [0.6, 0.7]}``,
    each name a DARConfig field given once."""
    from dataclasses import fields

    from dar import DARConfig

    known = [f.name for f in fields(DARConfig)]
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise ConfigError(f"dar-sweep: --grid {item!r} must look like name=value1,value2")
        if name not in known:
            raise ConfigError(f"dar-sweep: --grid {item!r}: {name!r} is not a DAR setting; accepted: {', '.join(known)}")
        if name in grid:
            raise ConfigError(f"dar-sweep: --grid names {name!r} twice")
        grid[name] = [coerce_value(v) for v in values.split(",") if v.strip()]
    if not grid:
        raise ConfigError("dar-sweep: give at least one --grid name=value1,value2")
    return grid


def combinations(grid: dict[str, list[Any]], base: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of the grid over the ``base`` DAR settings, each checked by DARConfig now (a bad
    combination stops the sweep before any run starts)."""
    from dar import DARConfig

    out = []
    for values in itertools.product(*grid.values()):
        settings = {**(base or {}), **dict(zip(grid, values))}
        try:
            DARConfig(**settings)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"dar-sweep: the combination {settings} is not a valid DAR setting: {exc}") from None
        out.append(settings)
    return out


def _scores(results: dict[str, Any] | None) -> dict[str, Any]:
    if not results:
        return {"tasks": {}, "benchmark": None}
    tasks = {t: {k: r.get(k) for k in ("score", "stderr", "n_cases", "n_failed")}
             for t, r in (results.get("results") or {}).items()}
    bench = results.get("benchmark") or {}
    return {"tasks": tasks, "benchmark": {k: bench.get(k) for k in ("avg", "avg_stderr", "n_cases", "n_failed")}
            if bench else None}


def sweep(model: str, tasks: Sequence[str], grid: dict[str, list[Any]], output_path: str | Path, *,
          dar_args: str | dict | None = None, **run_kwargs: Any) -> dict[str, Any]:
    """Run DAR off and every grid combination with :func:`micon_tasks.evaluate`; write and return the
    summary (``sweep.json``). ``run_kwargs`` are evaluate's other arguments (judge, limit, source, ...)."""
    from micon_tasks.runner import evaluate
    from micon_tasks.runner.config import sanitize_model_name
    from micon_tasks.runner.records import atomic_write_json, atomic_write_text

    out = Path(output_path)
    base = parse_args_string(dar_args, what="--dar_args") if dar_args else {}
    plan: list[tuple[str, dict | None]] = [(sanitize_model_name(model), None)]
    plan += [(f"{sanitize_model_name(model)}__dar_{k}", s) for k, s in enumerate(combinations(grid, base), start=1)]
    runs = []
    for name, settings in plan:
        results = evaluate(model=model, tasks=list(tasks), output_path=out, dar=settings, run_name=name, **run_kwargs)
        runs.append({"run": name, "dar": settings, **_scores(results)})
    summary = {"model": model, "tasks": list(tasks), "grid": grid, "base_dar_args": base, "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweep.json", summary)
    atomic_write_text(out / "sweep.md", markdown(summary))
    return summary


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)


def markdown(summary: dict[str, Any]) -> str:
    """The settings and scores table of ``sweep.md``."""
    names = list(summary["grid"])
    tasks = sorted({t for r in summary["runs"] for t in r["tasks"]})
    header = ["run", *names, "avg", "n_failed", *tasks]
    lines = [f"# DAR sweep: {summary['model']}", "",
             f"Tasks: {', '.join(summary['tasks'])}. Other DAR settings: {summary['base_dar_args'] or 'defaults'}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in summary["runs"]:
        bench = r["benchmark"] or {}
        cells = [r["run"], *(("off" if r["dar"] is None else _fmt(r["dar"].get(n))) for n in names),
                 _fmt(bench.get("avg")), _fmt(bench.get("n_failed")),
                 *(_fmt(r["tasks"].get(t, {}).get("score")) for t in tasks)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``dar-sweep`` (the run's flags, plus repeated ``--grid name=v1,v2``)."""
    from micon_tasks import cli

    p = subparsers.add_parser("dar-sweep", help="run a grid of DAR settings (plus DAR off) and tabulate the scores",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli._add_run_args(p, judge=True)
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                   help="a DAR setting and its values (repeat for more settings), e.g. gamma=0.1,0.15,0.2")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from micon_tasks import cli  # here: the cli imports this module to list its command

    grid = parse_grid(args.grid)
    judge, judge_args = cli.judge_from_args(args, predict_only=args.predict_only)
    summary = sweep(args.model, cli._tasks_arg(args.tasks), grid, args.output_path, dar_args=args.dar_args,
                    judge=judge, judge_args=judge_args, predict_only=args.predict_only, **cli.run_options(args))
    print(markdown(summary))
    print(f"sweep: {Path(args.output_path) / 'sweep.json'}, {Path(args.output_path) / 'sweep.md'}")
    return 0
