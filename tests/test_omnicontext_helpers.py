"""Shared helpers for the OmniContext tests (no tests here): a scripted rubric judge and synthetic data folders.

``rubric_reply`` answers the suite's criterion prompts with scores drawn deterministically from the prompt
text (PF and SC differ per item), and MICON's checkpoint prompts as the runner tests do, so one loopback
server judges both suites.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import test_runner_helpers as h
from fake_judge_server import Reply, prompt_text

PF_HEADING = "== What to score: prompt following =="
SC_HEADING = "== What to score: subject consistency =="
_INSTRUCTION = re.compile(r"^Instruction: (.*)$", re.MULTILINE)


def criterion_of(text: str) -> str | None:
    if PF_HEADING in text:
        return "PF"
    if SC_HEADING in text:
        return "SC"
    return None


def instruction_of(text: str) -> str | None:
    found = _INSTRUCTION.findall(text)
    return found[-1] if found else None


def scripted_score(text: str) -> int:
    """The score the scripted judge gives a criterion prompt (0..10, from the prompt text alone)."""
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 11


def rubric_reply(body: dict[str, Any], seen: int = 0) -> Reply:
    text = prompt_text(body)
    if criterion_of(text) is None:
        return h.varied_reply(body, seen)
    return Reply(content=json.dumps({"score": scripted_score(text), "reasoning": "scripted"}))


def breaking(instruction_part: str, criterion: str, content: str | None,
             base: Callable[[dict[str, Any], int], Reply] = rubric_reply) -> Callable[[dict[str, Any], int], Reply]:
    """``base``, except that ``criterion`` of the item whose instruction holds ``instruction_part`` gets
    ``content`` (None: HTTP 429)."""

    def responder(body: dict[str, Any], seen: int) -> Reply:
        text = prompt_text(body)
        if criterion_of(text) == criterion and instruction_part in (instruction_of(text) or ""):
            return Reply(status=429) if content is None else Reply(content=content)
        return base(body, seen)

    return responder


def png(color: tuple[int, int, int] = (200, 40, 40), size: tuple[int, int] = (24, 16)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def row(key: str, task_type: str = "multi_object", instruction: str = "Put both objects on a table.",
        language: str = "en", n_images: int = 2) -> dict[str, Any]:
    return {"key": key, "task_type": task_type, "instruction": instruction, "instruction_language": language,
            "input_images": [{"bytes": png((40 * k, 90, 160)), "path": f"{key}_{k}.png"} for k in range(n_images)]}


def hub_dataset(rows: list[dict[str, Any]]):
    """Rows in the Hub dataset's schema, as ``datasets.load_dataset`` would return them."""
    import datasets

    feats = datasets.Features({"key": datasets.Value("string"), "task_type": datasets.Value("string"),
                               "instruction": datasets.Value("string"), "instruction_language": datasets.Value("string"),
                               "input_images": datasets.List(datasets.Image())})
    cols = {k: [r[k] for r in rows] for k in feats}
    return datasets.Dataset.from_dict(cols, features=feats)


def parquet_folder(root: Path, rows: list[dict[str, Any]]) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    hub_dataset(rows).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root
