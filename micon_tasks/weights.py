"""Whether a model's weights can be had before a run starts: a local folder, or a Hub id cached or reachable.

Why: an ``hf`` judge or a diffusers adapter whose weights are neither cached nor downloadable used to
retry the Hub per case for many minutes and end with an all-zero table. The start-up check asks once,
cheaply (the cache, then one metadata call), and the run stops with one line naming the argument.
"""

from __future__ import annotations

__all__ = ["weights_problem"]


def weights_problem(pretrained: str, probe: str, revision: str | None = None, *, offline: bool = False) -> str | None:
    """Why the weights at ``pretrained`` cannot be had (a local folder, or a Hub id cached or reachable), or None.

    ``probe`` is a file every such repository has (``config.json``, ``model_index.json``).
    """
    import os
    from pathlib import Path

    local = Path(pretrained).expanduser()
    if local.exists() or pretrained.startswith((".", "/", "~")):
        return None if (local / probe).is_file() else f"{local} has no {probe}"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return "huggingface_hub is not installed"
    try:
        cached = try_to_load_from_cache(pretrained, probe, revision=revision)
    except Exception as exc:  # noqa: BLE001 - an invalid repo id
        return f"not a local folder nor a Hub repository id ({type(exc).__name__})"
    if isinstance(cached, str):
        return None
    if offline or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "not in the Hugging Face cache and the Hub is offline (HF_HUB_OFFLINE or local_files_only)"
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(pretrained, revision=revision, timeout=15)
    except Exception as exc:  # noqa: BLE001 - gated, unknown, or no network: one line
        return f"not in the Hugging Face cache and the Hub cannot provide it ({type(exc).__name__})"
    return None
