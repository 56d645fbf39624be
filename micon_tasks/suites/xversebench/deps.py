"""Optional dependencies of the XVerseBench metrics: checked when a judge starts, never at import.

The official DPG VQA (mPLUG) needs ``modelscope`` and the official face detector (RetinaFace-R50) comes
from ``pyfacer``; both are in the ``[xversebench]`` extra. Florence-2, SAM 2.1, DINO and SigLIP load
through transformers, which the core already needs.
"""

from __future__ import annotations

import importlib.util

from micon_tasks.errors import ConfigError

__all__ = ["require", "PIP_EXTRA", "PACKAGES"]

PIP_EXTRA = "pip install 'micon-bench[xversebench]'"
# import name -> PyPI name
PACKAGES = {"modelscope": "modelscope", "facer": "pyfacer", "torchvision": "torchvision"}


def require(module: str, *, what: str) -> None:
    """Fail now, with the pip command, when ``module`` cannot be imported."""
    if importlib.util.find_spec(module) is None:
        pypi = PACKAGES.get(module, module)
        raise ConfigError(
            f"{what} needs the Python package {pypi!r}, which is not installed: {PIP_EXTRA} (or pip install {pypi})"
        )
