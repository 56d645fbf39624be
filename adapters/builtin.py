"""Imports every built-in adapter module so that each registers itself (the registry imports this lazily).

Adapter modules import torch / diffusers / SDKs inside their methods only, so this stays fast.
"""

from __future__ import annotations

import importlib

_MODULES = (
    "adapters.baselines",
    "adapters.api_openai",
    "adapters.api_gemini",
    "adapters.diffusers_omnigen",
    "adapters.diffusers_qwen",
    "adapters.diffusers_flux",
)

for _module in _MODULES:
    importlib.import_module(_module)

# The upstream-code adapters (OmniGen2, BAGEL, UNO) live in their own subpackage; before it exists the
# built-ins still load. Any other import failure inside it is a real error and propagates.
try:
    importlib.import_module("adapters.upstream")
except ImportError as _exc:
    if _exc.name not in ("adapters.upstream",):
        raise
