"""``pretrained=micon-tiny-random`` for the ``hf`` judge: a tiny random-weight judge built locally on first use.

Why: the README's main job must run end to end offline on a CPU through the real ``hf`` backend, with
one command. The model is built from a config with seeded random weights (``testing.tiny_vlm``) into
the micon cache, never downloaded. Its verdicts are noise: the scores it gives MEAN NOTHING.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["TINY_JUDGE_NAME", "TINY_JUDGE_WARNING", "resolve_pretrained", "tiny_judge_path"]

log = logging.getLogger(__name__)

TINY_JUDGE_NAME = "micon-tiny-random"
TINY_JUDGE_WARNING = (
    "the judge is 'micon-tiny-random', a tiny random-weight model built locally to check the pipeline: "
    "its scores MEAN NOTHING. For real scores serve Qwen3-VL-32B-Instruct with vLLM and pass "
    "--judge openai --judge_args base_url=http://localhost:8000/v1"
)


def tiny_judge_path() -> Path:
    from micon_tasks.data.sources import cache_dir

    return cache_dir() / "models" / TINY_JUDGE_NAME


def _build(target: Path) -> None:
    from micon_tasks.testing.tiny_vlm import build_tiny_qwen_vl

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build_tiny_qwen_vl(tmp, seed=0)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first: theirs is the same model
            if not (target / "config.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_pretrained(pretrained: str) -> str:
    """The folder to load for ``pretrained``: the tiny judge (built once) for its name, else ``pretrained``.

    A real folder or Hub id of that name wins, so the name never shadows a user's model.
    """
    if pretrained != TINY_JUDGE_NAME or Path(pretrained).exists():
        return pretrained
    path = tiny_judge_path()
    if not (path / "config.json").exists():
        log.info("building the tiny random judge into %s (once)", path)
        _build(path)
    log.warning(TINY_JUDGE_WARNING)
    return str(path)
