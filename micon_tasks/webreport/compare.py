"""Run against run: on the cases both runs hold (the intersection), per-task and per-dimension means,
and every common case with its score change and the checkpoints whose verdict flipped.

Case scores and dimension values come from the records; a task's mean here is over the common cases
only, which equals results.json when both runs hold the same cases (the page says when they do not).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

__all__ = ["compare_runs"]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _verdicts(card: dict[str, Any]) -> dict[str, str]:
    return {v["id"]: v["st"] for v in card.get("v") or []}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _means(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Both runs' means over (base, other) value pairs, their difference and the count."""
    ma, mb = _mean([p[0] for p in pairs]), _mean([p[1] for p in pairs])
    return {"a": ma, "b": mb, "delta": _delta(ma, mb), "n": len(pairs)}


def compare_runs(base: list[dict[str, Any]], other: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare two runs' cards (as built by :class:`CardBuilder`); ``other`` minus ``base``."""
    a = {c["k"]: c for c in base}
    b = {c["k"]: c for c in other}
    common = [k for k in a if k in b]
    rows = []
    per_task: dict[str, list[tuple[float, float]]] = defaultdict(list)
    per_dim: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for k in common:
        ca, cb = a[k], b[k]
        va, vb = _verdicts(ca), _verdicts(cb)
        flips = [[cid, va.get(cid), vb.get(cid)] for cid in dict.fromkeys([*va, *vb]) if va.get(cid) != vb.get(cid)]
        rows.append({"k": k, "t": ca["t"], "id": ca["id"], "a": ca.get("s"), "b": cb.get("s"),
                     "delta": _delta(ca.get("s"), cb.get("s")), "flips": flips})
        if ca.get("s") is not None and cb.get("s") is not None:
            per_task[ca["t"]].append((ca["s"], cb["s"]))
        for dim in set(ca.get("d") or {}) & set(cb.get("d") or {}):
            per_dim[dim].append((ca["d"][dim], cb["d"][dim]))
    # largest gain first; cases without a score on either side last, in dataset order
    rows.sort(key=lambda r: (r["delta"] is None, -(r["delta"] or 0.0)))
    tasks = {t: _means(pairs) for t, pairs in per_task.items()}
    dims = {d: _means(pairs) for d, pairs in sorted(per_dim.items())}
    overall = _means([p for pairs in per_task.values() for p in pairs])
    only_a = [k for k in a if k not in b]
    only_b = [k for k in b if k not in a]
    return {
        "n_common": len(common), "only_a": only_a, "only_b": only_b, "same_cases": not only_a and not only_b,
        "overall": overall, "tasks": tasks, "dims": dims, "rows": rows,
        "n_improved": sum(1 for r in rows if (r["delta"] or 0) > 0),
        "n_worse": sum(1 for r in rows if (r["delta"] or 0) < 0),
        "n_flipped": sum(len(r["flips"]) for r in rows),
    }
