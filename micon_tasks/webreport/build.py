"""Build the report folder: read the runs, make the thumbnails, embed the data in ``index.html``.

    REPORT_DIR/index.html              the page, with every number and card embedded as JSON
    REPORT_DIR/assets/report.{js,css}  the page's script and styles (copied from the package)
    REPORT_DIR/assets/chart.umd.min.js Chart.js (vendored, MIT licence beside it)
    REPORT_DIR/assets/thumbs/          256 px WebP thumbnails named by image hash (the cache)

Nothing is written outside REPORT_DIR; a REPORT_DIR that holds anything but an earlier report is
refused, so a typo cannot scatter files into a run or a data folder.
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from micon_tasks.errors import MiconError
from micon_tasks.runner.records import atomic_write_text
from micon_tasks.task import include_path, load_task
from micon_tasks.webreport.cases import CardBuilder, CheckpointInfo, case_key
from micon_tasks.webreport.compare import compare_runs
from micon_tasks.webreport.refs import TaskData, describe_location, read_task_data
from micon_tasks.webreport.runs import ReportInputError, Run, inside, load_run
from micon_tasks.webreport.scores import run_scores
from micon_tasks.webreport.thumbs import ThumbMaker

__all__ = ["build_report", "BuildSummary", "ASSETS", "MARKER"]

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
STATIC = ("report.js", "report.css", "chart.umd.min.js", "chart.js.LICENSE.md")
MARKER = ".micon-report"


@dataclass
class BuildSummary:
    index: Path
    n_runs: int
    n_cards: int
    n_thumbs_made: int
    seconds: float
    notices: list[str] = field(default_factory=list)


def _prepare(out: Path, runs: list[Run]) -> None:
    if out.exists() and not out.is_dir():
        raise ReportInputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ReportInputError(f"{out} is not empty and holds no earlier report; choose a new or empty folder (-o)")
    for run in runs:
        if inside(run.root, out):
            raise ReportInputError(f"the report folder {out} holds the run {run.root}; choose another folder (-o)")
    (out / "assets" / "thumbs").mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `micon report`; rebuilding it here reuses the thumbnails\n", "utf-8")


def _checkpoints(runs: list[Run]) -> tuple[dict[str, dict[str, CheckpointInfo]], dict[str, dict[str, Any]]]:
    """Each task's checkpoints (id -> dimension, question, hard, caps) from its card, and task notes."""
    import registry
    from micon_tasks.checkpoints import checkpoint_identity
    from micon_tasks.runner.config import fingerprint
    from micon_tasks.runner.report import column_title

    out: dict[str, dict[str, CheckpointInfo]] = {}
    meta: dict[str, dict[str, Any]] = {}
    for run in runs:
        for task in run.tasks:
            if task in out:
                continue
            try:
                obj = load_task(task, "sample", checkpoints_from=run.config.get("checkpoints_from"))
            except (MiconError, registry.UnknownNameError) as exc:  # unknown task, unreadable checkpoint file
                out[task] = {}
                meta[task] = {"title": task, "dims": [], "note": f"checkpoint questions unavailable: {exc}"}
                continue
            out[task] = {c.id: (c.dimension, c.question, c.hard, c.caps) for c in obj.checkpoints}
            meta[task] = {"title": column_title(task), "dims": list(dict.fromkeys(c.dimension for c in obj.checkpoints)),
                          "kind": getattr(getattr(obj.config, "scoring", None), "kind", "checkpoints")}
            recorded = (((run.results or {}).get("tasks") or {}).get(task) or {}).get("checkpoints_sha256")
            if recorded and recorded != fingerprint(checkpoint_identity(obj.checkpoints)):
                meta[task]["note"] = ("the task's checkpoint set changed since this run; the questions shown are "
                                      "today's, the verdicts the run's")
    return out, meta


def _selected(run: Run, max_cases: int | None) -> dict[str, list[dict[str, Any]]]:
    return {t: recs[:max_cases] if max_cases else recs for t, recs in run.records.items()}


def _task_data(runs: list[Run], selected: list[dict[str, list[dict[str, Any]]]], notices: list[str]) -> dict[str, TaskData]:
    """Each task's references, from the data location the first run holding the task recorded."""
    out: dict[str, TaskData] = {}
    chosen: dict[str, tuple[Run, dict[str, Any] | None]] = {}
    for run in runs:
        for task in run.tasks:
            loc = run.data_location(task)
            if task not in chosen:
                chosen[task] = (run, loc)
            elif loc and chosen[task][1] and loc.get("location") != chosen[task][1].get("location"):
                notices.append(f"task {task}: run {run.name} read {describe_location(loc)}; the references shown are "
                               f"from {describe_location(chosen[task][1])} (run {chosen[task][0].name})")
    for task, (_, loc) in chosen.items():
        wanted = {str(r.get("case_id")) for sel in selected for r in sel.get(task, [])}
        out[task] = read_task_data(task, loc, wanted)
        if out[task].unavailable and wanted:
            notices.append(f"task {task}: references unavailable: {out[task].unavailable}")
    return out


def _judge_label(run: Run) -> str | None:
    """The judge as the page names it: backend and model (``openai: Qwen/Qwen3-VL-32B-Instruct``)."""
    model = ((run.results or {}).get("judge") or {}).get("model")
    backend = run.config.get("judge")
    return f"{backend}: {model}" if backend and model else backend


def _render(out: Path, payload: dict[str, Any]) -> Path:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ASSETS)), autoescape=True)
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    data = data.replace("<", "\\u003c")  # the JSON sits in a <script> element: no "</script>" can end it early
    html = env.get_template("report.html.jinja").render(title=payload["title"], data_json=data)
    for name in STATIC:
        shutil.copyfile(ASSETS / name, out / "assets" / name)
    index = out / "index.html"
    atomic_write_text(index, html)
    return index


def _clean(obj: Any) -> Any:
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def build_report(run_dirs: Sequence[str | Path], out_dir: str | Path, *, max_cases: int | None = None,
                 workers: int | None = None, echo: Callable[[str], Any] | None = None) -> BuildSummary:
    """Write the report of ``run_dirs`` into ``out_dir``; returns where ``index.html`` is and what it took."""
    start = time.perf_counter()
    if not run_dirs:
        raise ReportInputError("no run folder given")
    runs = [load_run(p) for p in run_dirs]
    names = [r.name for r in runs]
    for run in runs:  # two runs with one folder name (a/omnigen, b/omnigen): tell them apart
        if names.count(run.name) > 1:
            run.name = f"{run.root.parent.name}/{run.name}"
    out = Path(out_dir).resolve()
    _prepare(out, runs)
    for path in dict.fromkeys(r.config["include_path"] for r in runs if r.config.get("include_path")):
        include_path(path)  # the runs' own task cards, registered as the runner does (broken files warn)
    notices: list[str] = []
    checkpoints, task_meta = _checkpoints(runs)
    selected = [_selected(r, max_cases) for r in runs]
    data = _task_data(runs, selected, notices)
    thumbs = ThumbMaker(out / "assets" / "thumbs", workers=workers)
    builder = CardBuilder(out, thumbs, checkpoints)
    shared: dict[str, dict[str, Any]] = {}
    run_cards: list[list[dict[str, Any]]] = []
    for run, sel in zip(runs, selected):
        cards = []
        for task in run.tasks:
            for rec in sel.get(task, []):
                key = case_key(task, str(rec.get("case_id")))
                if key not in shared:
                    shared[key] = builder.shared(task, rec, data[task], str(rec.get("case_id")))
                cards.append(builder.card(run, rec))
        run_cards.append(cards)
    if echo:
        echo(f"micon report: {sum(map(len, run_cards))} cards from {len(runs)} run(s); making thumbnails ...")
    thumbs.run()
    builder.finish()
    comparisons = [{"a": 0, "b": j, **compare_runs(run_cards[0], run_cards[j])} for j in range(1, len(runs))]
    payload = _clean({
        "title": "micon report: " + ", ".join(r.name for r in runs),
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "max_cases": max_cases,
        "notices": notices,
        "tasks": {t: {**task_meta.get(t, {}), "cps": checkpoints.get(t, {})} for t in checkpoints},
        "runs": [{"name": r.name, "root": str(r.root), "model": r.model, "dar": r.dar is not None,
                  "judge": _judge_label(r), "notices": r.notices, "task_notices": r.task_notices,
                  "scores": run_scores(r), "cards": cards} for r, cards in zip(runs, run_cards)],
        "cases": shared,
        "compare": comparisons,
    })
    index = _render(out, payload)
    n_cards = sum(map(len, run_cards))
    return BuildSummary(index=index, n_runs=len(runs), n_cards=n_cards, n_thumbs_made=thumbs.made,
                        seconds=time.perf_counter() - start,
                        notices=notices + [f"{r.name}: {n}" for r in runs for n in r.notices])
