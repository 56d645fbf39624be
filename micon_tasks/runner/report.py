"""The results table in the paper's layout (Object | Spatial | Attribute | Component | FG/BG | Story | Avg).

Printed after a run and written as ``results.md``. A second table gives each task's counts, standard
error and dimension means, so a reader sees how many failures stand behind a number.
"""

from __future__ import annotations

from typing import Any

from micon_tasks.types import DIMENSIONS

__all__ = ["column_title", "format_tables", "header_line", "judge_note", "suite_table", "suite_sections",
           "results_markdown"]

def column_title(task: str) -> str:
    """A task's column title in its suite's table (the suite card's ``columns``), else its name."""
    import registry

    for name in registry.suites.list():
        card = registry.suites.get(name)
        if task in card["tasks"]:
            return (card.get("columns") or {}).get(task, task)
    return task


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]], align_right_from: int = 1) -> str:
    sep = ["---" if i < align_right_from else "---:" for i in range(len(header))]
    return "\n".join([_row(header), _row(sep), *(_row(r) for r in rows)])


def header_line(results: dict[str, Any]) -> str:
    """One line above the table (lm-eval's habit): what was run, how."""
    cfg = results["config"]
    args = ",".join(f"{k}={v}" for k, v in cfg.get("model_args", {}).items())
    jargs = ",".join(f"{k}={v}" for k, v in cfg.get("judge_args", {}).items())
    dar = "off" if cfg.get("dar") is None else ",".join(f"{k}={v}" for k, v in cfg["dar"].items())
    return (f"{cfg['model']} ({args}), judge: {cfg.get('judge')} ({jargs}), source: {cfg.get('source')}, "
            f"limit: {cfg.get('limit')}, seed: {cfg.get('seed')}, DAR: {dar}")


def format_tables(results: dict[str, Any]) -> str:
    """Markdown: the paper-style summary row, then per-task details."""
    tasks = results.get("results") or {}
    bench = results.get("benchmark") or {}
    other = {t for b in (results.get("suites") or {}).values() if b.get("kind") != "checkpoints" for t in b["tasks"]}
    names = [t for t in results.get("n-samples", tasks) if t not in other]
    titles = [column_title(t) for t in names]
    model = results.get("model_name_sanitized") or results["config"]["model"]
    errors = (bench.get("n_cases", 0) - bench.get("n_cases_clean", 0)) if bench else 0
    summary = _table(
        ["Model", *titles, "Avg", "Macro avg", "Errors"],
        [[model, *(_num(tasks.get(t, {}).get("score")) for t in names), _num(bench.get("avg")),
          _num(bench.get("macro_avg")), f"{errors}/{bench.get('n_cases', 0)}"]],
    )
    dims = sorted({d for t in names for d in (tasks.get(t, {}).get("dimensions") or {})})
    detail_rows = []
    for t in names:
        r = tasks.get(t, {})
        detail_rows.append([
            t, str(r.get("n_cases", 0)), str(r.get("n_cases_clean", 0)), str(r.get("n_failed", 0)),
            str(r.get("n_checkpoint_errors", 0)), _num(r.get("score")), _num(r.get("stderr")), _num(r.get("score_clean")),
            *(_pct((r.get("dimensions") or {}).get(d)) for d in dims),
        ])
    detail = _table(
        ["Task", "Cases", "Clean", "Gen. failed", "Judge errors", "Score", "± Stderr", "Clean score", *dims],
        detail_rows,
    )
    legend = ", ".join(f"{d} = {DIMENSIONS.get(d, d)}" for d in dims)
    notes = (
        "Avg is case-weighted (the paper's); Macro avg is the plain mean of task scores. Errors counts cases "
        "with a failed generation or any judge error (they count as fails, never dropped). "
        f"Dimension columns are mean pass rates x 100 after hard caps ({legend})."
    )
    return f"{summary}\n\n{detail}\n\n{notes}\n"


def judge_note(results: dict[str, Any]) -> str | None:
    """The warning every report of a run judged by the tiny random demo judge carries (None otherwise)."""
    from micon_tasks.judges.tiny import TINY_JUDGE_NAME, TINY_JUDGE_WARNING

    if (results["config"].get("judge_args") or {}).get("pretrained") == TINY_JUDGE_NAME:
        return TINY_JUDGE_WARNING
    return None


def suite_table(block: dict[str, Any], *, model: str) -> str:
    """A suite block's ``table`` as markdown, one row per model, under the suite's title."""
    table = block.get("table") or {}
    rows = [[model, *(_num(v) if isinstance(v, (int, float)) or v is None else str(v) for v in row)]
            for row in table.get("rows", [])]
    return f"## {block.get('title') or block.get('kind')}\n\n{_table(['Model', *table.get('columns', [])], rows)}\n"


def suite_sections(results: dict[str, Any]) -> list[str]:
    """MICON's tables (when checkpoint-scored tasks ran), then each other suite's part: results.md and the console."""
    import registry

    model = results.get("model_name_sanitized") or results["config"]["model"]
    parts = [format_tables(results)] if results.get("benchmark") is not None else []
    for block in (results.get("suites") or {}).values():
        if block.get("kind") != "checkpoints":
            parts.append(registry.scoring_kinds.get(block["kind"]).markdown(block, model=model))
    return parts


def results_markdown(results: dict[str, Any]) -> str:
    """results.md: the run line, MICON's tables for checkpoint-scored tasks, then each other suite's part."""
    parts = [f"# micon-bench results\n\n{header_line(results)}\n", *suite_sections(results)]
    if note := judge_note(results):
        parts.append(f"**Note:** {note}\n")
    return "\n".join(parts)
