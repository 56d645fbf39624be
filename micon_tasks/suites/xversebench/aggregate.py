"""XVerseBench arithmetic: pooled metric means, the split AVG and the Overall (pure functions).

The authors print each metric rounded to 2 decimals and average those printed values into a split's
AVG; the papers' Overall is the mean of the two split AVGs. The published rows agree with these rules
within 0.01 (no single rounding rule reproduces every printed Overall), e.g. XVerse 76.72 / 70.08 ->
73.40 and mean(93.69, 79.48, 76.86, 56.84) = 76.72.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from micon_tasks.suites.xversebench.entries import METRICS

__all__ = ["pooled_mean", "split_avg", "overall", "bootstrap_avg_stderr"]


def pooled_mean(total: float, count: int) -> float | None:
    """Mean over pooled entries; None when there is none (never a stand-in 0)."""
    return total / count if count else None


def split_avg(metrics: Mapping[str, float | None]) -> float | None:
    """A split's AVG: the mean of its four metrics, each rounded to 2 decimals first as the authors print
    them. None when a metric has no value (e.g. a subset with no human reference has no ID)."""
    values = [metrics.get(m) for m in METRICS]
    if any(v is None for v in values):
        return None
    return sum(round(float(v), 2) for v in values) / len(values)  # type: ignore[arg-type]


def overall(split_avgs: Sequence[float | None]) -> float | None:
    """The Overall: the mean of the split AVGs (single and multi); None when one of them is missing."""
    if not split_avgs or any(v is None for v in split_avgs):
        return None
    return sum(split_avgs) / len(split_avgs)  # type: ignore[arg-type]


def bootstrap_avg_stderr(
    sums: Sequence[Mapping[str, float]], counts: Sequence[Mapping[str, int]], *, iters: int = 1000, seed: int = 0
) -> float | None:
    """Standard error of a split's AVG by resampling cases (pooled means are recomputed per draw).

    ``sums`` / ``counts``: one mapping per case, metric -> entry sum / entry count. Seeded, so reruns
    print the same figure. None when the AVG itself is undefined.
    """
    import numpy as np

    n = len(sums)
    if n == 0:
        return None
    s = np.array([[float(c.get(m, 0.0)) for m in METRICS] for c in sums])
    k = np.array([[int(c.get(m, 0)) for m in METRICS] for c in counts])
    if (k.sum(axis=0) == 0).any():
        return None
    if n == 1 or iters <= 1:
        return 0.0
    idx = np.random.default_rng(seed).integers(0, n, size=(iters, n))
    tot_s, tot_k = s[idx].sum(axis=1), k[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        avgs = np.nanmean(np.round(tot_s / tot_k, 2), axis=1)  # a draw without a metric's entries drops it
    return float(np.nanstd(avgs, ddof=1))
