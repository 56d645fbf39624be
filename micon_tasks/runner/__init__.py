"""The runner: ``evaluate()`` and the stages behind the ``micon`` command (generate, judge, aggregate).

    from micon_tasks import evaluate
    results = evaluate(model="collage", tasks=["micon"], judge="openai",
                       judge_args="base_url=http://localhost:8000/v1", source="sample", output_path="out")

Each stage resumes from the files of the last (see ``layout.py``); ``torchrun`` / ``accelerate launch``
shard the cases across processes.
"""

from __future__ import annotations

from micon_tasks.runner.pipeline import (
    DEFAULT_JUDGE,
    DEFAULT_JUDGE_ARGS,
    aggregate_outputs,
    evaluate,
    find_model_dir,
    judge_outputs,
)

__all__ = ["evaluate", "judge_outputs", "aggregate_outputs", "find_model_dir", "DEFAULT_JUDGE", "DEFAULT_JUDGE_ARGS"]
