"""DARConfig: the knobs of Dynamic Attention Rebalancing, validated on construction.

Why a frozen dataclass: one config travels from the CLI/adapters through ``dar.enable`` into every hooked
attention call; validating once, up front, turns a bad value into a clear ``ValueError`` instead of a
silent no-op deep inside a denoising loop. Defaults follow the paper (PROTOCOL.md section 7); the points
the paper leaves open are explicit options here, with the defaults documented in docs/dar.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["DARConfig", "SAMPLING_MODES", "NORMALIZE_MODES", "CFG_BRANCHES", "THRESHOLD_MODES", "COMPILE_MODES"]

SAMPLING_MODES = ("strided", "random")
NORMALIZE_MODES = ("joint", "per_ref")
CFG_BRANCHES = ("all", "cond")
THRESHOLD_MODES = ("fixed", "quantile")
COMPILE_MODES = ("auto", True, False)


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"DARConfig.{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DARConfig:
    """Dynamic Attention Rebalancing settings.

    Analysis (the op): ``gamma`` (reweighting strength, 0 <= gamma < 1; 0 disables DAR exactly),
    ``tau_high``/``tau_low`` (thresholds on min-max normalised reference attention, inclusive),
    ``num_queries`` (m sampled generated-image queries), ``sampling`` ("strided": evenly spaced;
    "random": uniform without replacement, from ``seed``), ``normalize`` ("joint": min-max over all
    reference keys of a row; "per_ref": separately per reference image).

    Scope (the hooks): ``layers`` (indices of hooked attention layers, None = all), ``steps`` (a
    half-open fraction range [lo, hi) of the denoising schedule, step i of N is active when
    lo <= i/N < hi), ``cfg_branches`` ("all" or "cond": only the conditional branch is rebalanced;
    rows without reference keys are always left alone).

    Beyond the paper: ``thresholds`` ("fixed": tau_high/tau_low on r^, the paper's rule; "quantile": boost
    the top ``q_high`` fraction and damp the bottom ``q_low`` fraction of each normalisation group, i.e. of
    a row's reference keys, or of each reference with ``normalize="per_ref"``); ``compile`` (the analysis
    as a ``torch.compile``d function: "auto" on CUDA, True everywhere, False never; eager is the fallback);
    ``reuse_steps`` (k: recompute the weights every k denoising steps per layer and reuse them between;
    1 = every step); ``record_maps`` (the hooks record mean r^ and w per reference token for
    :mod:`dar.maps`; with gamma 0 this diagnoses a model without changing its output).
    """

    gamma: float = 0.15
    tau_high: float = 0.7
    tau_low: float = 0.3
    num_queries: int = 64
    sampling: Literal["strided", "random"] = "strided"
    seed: int | None = None
    normalize: Literal["joint", "per_ref"] = "joint"
    layers: tuple[int, ...] | None = None
    steps: tuple[float, float] = field(default=(0.0, 1.0))
    cfg_branches: Literal["all", "cond"] = "all"
    thresholds: Literal["fixed", "quantile"] = "fixed"
    q_high: float = 0.3
    q_low: float = 0.3
    compile: Literal["auto"] | bool = "auto"
    reuse_steps: int = 1
    record_maps: bool = False

    def __post_init__(self) -> None:
        gamma = _real("gamma", self.gamma)
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"DARConfig.gamma must satisfy 0 <= gamma < 1, got {self.gamma!r}")
        high, low = _real("tau_high", self.tau_high), _real("tau_low", self.tau_low)
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(
                f"DARConfig thresholds must satisfy 0 <= tau_low < tau_high <= 1, got tau_low={self.tau_low!r}, "
                f"tau_high={self.tau_high!r}")
        if isinstance(self.num_queries, bool) or not isinstance(self.num_queries, int) or self.num_queries < 1:
            raise ValueError(f"DARConfig.num_queries must be an integer >= 1, got {self.num_queries!r}")
        for name, allowed in (("sampling", SAMPLING_MODES), ("normalize", NORMALIZE_MODES),
                              ("cfg_branches", CFG_BRANCHES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"DARConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"DARConfig.seed must be an integer or None, got {self.seed!r}")
        if self.layers is not None:
            layers = tuple(self.layers) if not isinstance(self.layers, (str, bytes)) else None
            if layers is None or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers):
                raise ValueError(f"DARConfig.layers must be None or a sequence of layer indices >= 0, "
                                 f"got {self.layers!r}")
            object.__setattr__(self, "layers", layers)
        try:
            lo, hi = (_real("steps", v) for v in self.steps)
        except (TypeError, ValueError):
            raise ValueError(f"DARConfig.steps must be a pair (lo, hi) of fractions, got {self.steps!r}") from None
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"DARConfig.steps must satisfy 0 <= lo < hi <= 1, got {self.steps!r}")
        object.__setattr__(self, "steps", (lo, hi))
        self._check_extensions()
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "tau_high", high)
        object.__setattr__(self, "tau_low", low)

    def _check_extensions(self) -> None:
        if self.thresholds not in THRESHOLD_MODES:
            raise ValueError(f"DARConfig.thresholds must be one of {THRESHOLD_MODES}, got {self.thresholds!r}")
        q_high, q_low = _real("q_high", self.q_high), _real("q_low", self.q_low)
        if not (0.0 <= q_high <= 1.0 and 0.0 <= q_low <= 1.0 and q_high + q_low <= 1.0):
            raise ValueError(f"DARConfig quantiles must satisfy 0 <= q_high, q_low and q_high + q_low <= 1, got "
                             f"q_high={self.q_high!r}, q_low={self.q_low!r}")
        object.__setattr__(self, "q_high", q_high)
        object.__setattr__(self, "q_low", q_low)
        if isinstance(self.compile, str) and self.compile.lower() in ("true", "false"):  # from an arg string
            object.__setattr__(self, "compile", self.compile.lower() == "true")
        if not any(self.compile is mode or (isinstance(mode, str) and self.compile == mode) for mode in COMPILE_MODES):
            raise ValueError(f"DARConfig.compile must be 'auto', True or False, got {self.compile!r}")
        if isinstance(self.reuse_steps, bool) or not isinstance(self.reuse_steps, int) or self.reuse_steps < 1:
            raise ValueError(f"DARConfig.reuse_steps must be an integer >= 1, got {self.reuse_steps!r}")
        if not isinstance(self.record_maps, bool):
            raise ValueError(f"DARConfig.record_maps must be True or False, got {self.record_maps!r}")

    def layer_active(self, index: int | None) -> bool:
        """Whether the attention layer with this index is rebalanced (unknown index: only when all are)."""
        return self.layers is None or (index is not None and index in self.layers)

    def step_active(self, fraction: float | None) -> bool:
        """Whether a denoising step at ``fraction`` = i/N of the schedule is rebalanced (None: unknown, yes)."""
        return fraction is None or self.steps[0] <= fraction < self.steps[1]

    def exclusion(self, *, layer: int | None, step: float | None, conditional: bool = True) -> str | None:
        """Why the scope options leave this attention call out (a :class:`dar.DARStats` pass-through
        reason), or None when DAR applies. ``step`` is the fraction i/N of the schedule (None: unknown)."""
        if self.cfg_branches == "cond" and not conditional:
            return "branch_excluded"
        if not self.layer_active(layer):
            return "layer_excluded"
        if not self.step_active(step):
            return "step_excluded"
        return None
