"""Device and dtype names to torch objects: one rule for adapters, upstream models and the hf judge.

Why one module: ``auto`` must mean the same thing everywhere (CUDA when present, else the CPU;
bfloat16 on CUDA, float32 on the CPU), and a misspelt dtype must be refused with the same line
naming the argument, whichever component read it. torch is imported inside the functions only.
"""

from __future__ import annotations

from typing import Any

from micon_tasks.errors import ConfigError

__all__ = ["resolve_device", "resolve_dtype", "DTYPE_NAMES", "check_dtype_name", "cpu_cores"]

#: accepted dtype spellings -> torch attribute
DTYPE_NAMES: dict[str, str] = {
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "float32": "float32", "fp32": "float32", "float": "float32",
}


def cpu_cores() -> int:
    """The cores this process may run on (its affinity, e.g. a batch scheduler's share), which sizes every
    worker pool; ``os.cpu_count()`` counts the whole host."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_device(name: str | None) -> str:
    """``None``/""/"auto" -> "cuda" when a GPU is visible, else "cpu"; anything else as given."""
    if name is None or str(name).strip().lower() in ("", "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(name)


def check_dtype_name(name: str | None, *, what: str = "dtype") -> str:
    """The canonical dtype name (or "auto"); a ConfigError naming ``what`` for an unknown one."""
    if name is None or str(name).strip().lower() in ("", "auto"):
        return "auto"
    key = DTYPE_NAMES.get(str(name).strip().lower())
    if key is None:
        raise ConfigError(f"{what}: unknown dtype {name!r}; use one of: auto, "
                          f"{', '.join(sorted(set(DTYPE_NAMES.values())))}")
    return key


def resolve_dtype(name: str | None, device: str, *, what: str = "dtype") -> Any:
    """A torch dtype from its name; ``auto``/None gives bfloat16 on CUDA and float32 elsewhere."""
    import torch

    key = check_dtype_name(name, what=what)
    if key == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return getattr(torch, key)
