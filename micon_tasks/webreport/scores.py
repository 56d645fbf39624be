"""The Scores part of the page, per run: the paper's table, other suites' tables, per-task details,
dimension means, counts and provenance. Numbers are copied from results.json, never recomputed.
"""

from __future__ import annotations

from typing import Any

from micon_tasks.runner.report import column_title
from micon_tasks.types import DIMENSIONS
from micon_tasks.webreport.refs import describe_location
from micon_tasks.webreport.runs import Run

__all__ = ["run_scores", "headline"]


def _suites(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g: b for g, b in (results.get("suites") or {}).items() if isinstance(b, dict)}


def _other_suite_tasks(results: dict[str, Any]) -> set[str]:
    """Tasks that belong to a suite scored another way than by checkpoints (shown in that suite's table)."""
    return {t for b in _suites(results).values() if b.get("kind") != "checkpoints" for t in b.get("tasks") or []}


def headline(run: Run) -> dict[str, Any] | None:
    """The run's headline number for the leaderboard: MICON's Avg, else the first suite's headline."""
    results = run.results or {}
    bench = results.get("benchmark")
    if bench and bench.get("avg") is not None:
        return {"name": "MICON Avg", "value": bench["avg"], "stderr": bench.get("avg_stderr"),
                "clean": bench.get("avg_clean"), "n": bench.get("n_cases")}
    for group, block in _suites(results).items():
        head = block.get("headline") or {}
        if head.get("value") is not None:
            return {"name": f"{block.get('title') or group} {head.get('name', '')}".strip(), "value": head["value"],
                    "stderr": head.get("stderr"), "clean": None, "n": (block.get("counts") or {}).get("n_cases")}
    return None


def _micon_table(run: Run) -> dict[str, Any] | None:
    results = run.results or {}
    bench = results.get("benchmark")
    if not bench:
        return None
    per_task = results.get("results") or {}
    others = _other_suite_tasks(results)
    tasks = [t for t in (results.get("n-samples") or per_task) if t in per_task and t not in others]
    errors = (bench.get("n_cases") or 0) - (bench.get("n_cases_clean") or 0)
    columns = ["Model", *(column_title(t) for t in tasks), "Avg", "Macro avg", "Errors"]
    row = [run.name, *(per_task[t].get("score") for t in tasks), bench.get("avg"), bench.get("macro_avg"),
           f"{errors}/{bench.get('n_cases', 0)}"]
    keys = [None, *(f"results.{t}.score" for t in tasks), "benchmark.avg", "benchmark.macro_avg", None]
    return {
        "title": "MICON-Bench", "columns": columns, "rows": [row], "keys": [keys],
        "headline": {"name": "Avg", "value": bench.get("avg"), "stderr": bench.get("avg_stderr"),
                     "clean": bench.get("avg_clean"), "clean_macro": bench.get("macro_avg_clean"),
                     "macro": bench.get("macro_avg"), "macro_stderr": bench.get("macro_avg_stderr")},
        "counts": {k: bench.get(k) for k in ("n_cases", "n_cases_clean", "n_failed", "n_checkpoint_errors",
                                             "n_tasks", "n_tasks_clean")},
        "dimensions": bench.get("dimensions") or {},
    }


def _view(value: Any) -> dict[str, Any] | None:
    """A suite view as {"value", "stderr"} (blocks hold either a number or such a dict)."""
    if isinstance(value, dict) and "value" in value:
        return {"value": value.get("value"), "stderr": value.get("stderr")}
    if isinstance(value, (int, float, str)) or value is None:
        return {"value": value, "stderr": None}
    return None


def _suite_table(run: Run, group: str, block: dict[str, Any]) -> dict[str, Any]:
    """A suite's own table, one row per run as in results.md (the Model column first)."""
    table = block.get("table") or {}
    views = {k: v for k, v in ((k, _view(v)) for k, v in (block.get("views") or {}).items()) if v is not None}
    return {"title": block.get("title") or group, "group": group, "kind": block.get("kind"),
            "columns": ["Model", *(table.get("columns") or [])],
            "rows": [[run.name, *row] for row in table.get("rows") or []],
            "headline": block.get("headline") or {}, "counts": block.get("counts") or {}, "views": views,
            "dimensions": block.get("dimensions") if block.get("kind") == "checkpoints" else None}


def _details(run: Run) -> list[dict[str, Any]]:
    per_task = (run.results or {}).get("results") or {}
    keys = ("score", "stderr", "score_clean", "n_cases", "n_cases_clean", "n_failed", "n_checkpoint_errors", "dimensions")
    return [{"task": t, **{k: per_task[t].get(k) for k in keys}} for t in run.tasks if t in per_task]


def _provenance(run: Run) -> list[list[Any]]:
    """(label, value) pairs: what made these numbers."""
    results = run.results or {}
    cfg = run.config
    judge = results.get("judge") or {}
    templates = judge.get("templates") or {}
    rows: list[list[Any]] = [
        ["Run folder", str(run.root)],
        ["Model", cfg.get("model")],
        ["Model arguments", cfg.get("model_args") or {}],
        ["Model info", results.get("model_info")],
        ["DAR", cfg.get("dar") if cfg.get("dar") is not None else "off"],
        ["Judge", {k: judge.get(k) for k in ("backend", "model", "endpoint_host", "template_version", "parser_version")
                   if judge.get(k) is not None} or cfg.get("judge")],
        ["Judge arguments", cfg.get("judge_args") or {}],
        ["Judge decoding", judge.get("decoding")],
        ["Judge templates (sha256)", {k: (v or {}).get("sha256") for k, v in templates.items()} or None],
        ["Seed", cfg.get("seed")],
        ["Source", cfg.get("source")],
        ["Limit", cfg.get("limit")],
        ["Data", {t: describe_location(run.data_location(t)) for t in run.tasks}],
        ["Checkpoint sets", {t: ((results.get("tasks") or {}).get(t) or {}).get("checkpoints") for t in run.tasks}],
        ["Versions", results.get("versions")],
        ["Git commit", results.get("git_hash")],
        ["Date", results.get("date")],
    ]
    return [[k, v] for k, v in rows if v not in (None, "", {})]


def run_scores(run: Run) -> dict[str, Any]:
    """Everything the Scores section shows for one run."""
    results = run.results or {}
    tables = []
    if (micon := _micon_table(run)) is not None:
        tables.append(micon)
    for group, block in _suites(results).items():
        if block.get("kind") != "checkpoints" or micon is None:
            tables.append(_suite_table(run, group, block))
    return {"tables": tables, "details": _details(run), "provenance": _provenance(run),
            "headline": headline(run), "dim_names": DIMENSIONS}
