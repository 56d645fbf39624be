"""The OmniContext part of results.md, in the authors' layout: overall per task type and the Average, then
PF / SC / overall per type with their counts, then MICON-Bench's six-column view, then what the numbers
may and may not be compared with."""

from __future__ import annotations

from typing import Any

from micon_tasks.runner.report import _num, _table

__all__ = ["rubric_markdown"]


def rubric_markdown(block: dict[str, Any], *, model: str) -> str:
    head = block["headline"]
    per = block.get("per_type") or {}
    crits = block.get("criteria") or []
    counts = block.get("counts") or {}
    table = block["table"]
    parts = [f"## {block.get('title') or 'OmniContext'}\n"]
    err = f" ± {_num(head.get('stderr'))}" if head.get("stderr") is not None else ""
    parts.append(f"Headline: **{_num(head.get('value'))}**{err}, {head.get('label')}.\n")
    parts.append(_table(["Model", *table["columns"]], [[model, *(_num(v) for v in row)] for row in table["rows"]]) + "\n")

    rows = []
    for t, r in per.items():
        rows.append([r.get("title", t), str(r.get("n_cases", 0)), str(r.get("n_cases_clean", 0)), str(r.get("n_failed", 0)),
                     *(str(r.get(f"{n}_errors", 0)) for n in crits), str(r.get("n_salvaged", 0)),
                     str(r.get("n_filtered", 0)), *(_num(r.get(n)) for n in crits), _num(r.get("overall")),
                     _num(r.get("stderr")), _num(r.get("overall_clean"))])
    parts.append(_table(["Task type", "Items", "Clean", "Gen. failed", *(f"{n} errors" for n in crits), "Salvaged",
                         "Filtered", *crits, "Overall", "± Stderr", "Clean overall"], rows) + "\n")

    view = (block.get("views") or {}).get("micon_view") or {}
    if view.get("columns"):
        cols = list(view["columns"])
        parts.append(f"{view.get('label', 'MICON-Bench view')}:\n")
        parts.append(_table(["Model", *cols, "Mean of shown", "Avg (all types)"],
                            [[model, *(_num(view["columns"][c]) for c in cols), _num(view.get("mean")),
                              _num(head.get("value"))]]) + "\n")

    notes = [
        f"Overall = sqrt({' x '.join(crits)}) per item, 0 to 10. An item with an unreadable criterion, or with no "
        "image, scores 0 in Overall and Avg and is left out of Clean overall; a criterion's mean is over the items "
        "where it was read. Avg is the unweighted mean over task types.",
        f"Counts: {counts.get('n_cases', 0)} items, {counts.get('n_cases_clean', 0)} clean, "
        f"{counts.get('n_failed', 0)} without an image, {counts.get('n_checkpoint_errors', 0)} unreadable criteria, "
        f"{counts.get('n_salvaged', 0)} scores read from a non-standard reply (salvaged).",
    ]
    if counts.get("n_filtered"):
        n = counts["n_filtered"]
        notes.append(f"Filtered: {n} item{'s' if n != 1 else ''} whose instruction is not in English "
                     f"{'were' if n != 1 else 'was'} left out (the authors score English instructions only).")
    if counts.get("missing_tasks"):
        notes.append(f"Not in this run: {', '.join(counts['missing_tasks'])}; Avg covers the types shown only.")
    judge = block.get("judge") or {}
    used = ", ".join(judge.get("used") or []) or "(no item was judged)"
    if judge.get("comparable"):
        notes.append(f"Judge: {used}, the judge of the published OmniContext scores.")
    else:
        notes.append(f"**Judge: {used}. The published OmniContext scores come from {judge.get('reference') or 'another judge'}; "
                     "scores from another judge are not comparable with them.**")
    parts.append("\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)
