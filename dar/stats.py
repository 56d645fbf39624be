"""DARStats: how many attention calls DAR actually reached while it was enabled, and why others passed.

Why count: every hook routes attention through DAR only when it can place the call (the right layer and
step, the joint sequence it located, no dropout, ...). A configuration or model layout that excludes
*every* call would otherwise leave a run labelled "with DAR" identical to one without it. The hooks
count each routed call here; callers (the adapters) check ``rebalanced > 0`` after a generation.

``rebalanced`` counts calls whose keys DAR weighted, whatever the weights came out as: with gamma = 0
every weight is exactly 1 (the output is unchanged), but the call was still reached, so it counts.
``passed`` counts the calls a hook saw but left alone, by reason:

* ``layer_excluded`` / ``step_excluded`` / ``branch_excluded``: the ``layers`` / ``steps`` /
  ``cfg_branches`` options leave it out;
* ``no_reference_keys``: the forward has no reference key (e.g. an unconditional CFG branch, or a
  layout in which the hook found no reference tokens);
* ``other_sequence``: its key/query lengths are not the joint sequence the hook located (e.g. FLUX.2's
  reference-only KV passes, or a layout the hook misread);
* ``dropout``, ``attention_kwargs``, ``context_parallel``: diffusers call options DAR does not handle;
* ``no_references_context``: a transformers model called outside a ``dar.references`` block;
* ``not_joint_layer``: an upstream model's attention outside the layers DAR hooks (OmniGen2's refiners);
* ``cache_update``, ``causal``: BAGEL's KV-cache updates and causal (text) attention calls.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["DARStats"]


class DARStats:
    """Counters of one ``dar.enable`` scope (or one adapter generation). Thread-safe increments."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rebalanced = 0
        self.forwards = 0  # hooked model forwards seen (diffusers transformers; upstream models)
        self.passed: dict[str, int] = {}

    def add_rebalanced(self, n: int = 1) -> None:
        with self._lock:
            self.rebalanced += n

    def add_passed(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.passed[reason] = self.passed.get(reason, 0) + n

    def add_forward(self, n: int = 1) -> None:
        with self._lock:
            self.forwards += n

    @property
    def n_passed(self) -> int:
        return sum(self.passed.values())

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"rebalanced": self.rebalanced, "passed": dict(sorted(self.passed.items())),
                    "forwards": self.forwards}

    def describe(self) -> str:
        """One line for error messages: what DAR reached and what it passed through, by reason."""
        passed = ", ".join(f"{k} {v}" for k, v in sorted(self.passed.items())) or "none"
        return (f"{self.rebalanced} attention call(s) rebalanced, {self.n_passed} passed through ({passed}), "
                f"{self.forwards} hooked forward(s)")

    def __repr__(self) -> str:
        return f"DARStats({self.to_dict()})"
