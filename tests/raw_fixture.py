"""Build small raw-layout folders (PROTOCOL 2) for tests, with the official layout's quirks on demand."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PIL import Image

FOLDERS = {
    "object_composition": "object_composition",
    "spatial_composition": "spatial_geometric_constraints",
    "attribute_disentanglement": "attribute_style_decoupling",
    "component_transfer": "local_element_transfer",
    "fgbg_composition": "foreground_background_composition",
    "story_generation": "story_infer",
}
N_REFS = {"attribute_disentanglement": (3, 3), "fgbg_composition": (2, 2)}
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]


def make_raw(root: Path, *, n_cases: int = 2, data_prefix: bool = True, drop_case_id: bool = True) -> Path:
    """Write every task with ``n_cases`` cases (2 and 3 references mixed) under ``root/data``.

    Quirks: task folders under ``data/``, ``data/``-prefixed reference paths, and the first card of each
    task without ``case_id`` (its file stem is the id). Returns ``root``.
    """
    base = root / "data" if data_prefix else root
    story = []
    for t_index, (task, folder) in enumerate(FOLDERS.items()):
        lo, hi = N_REFS.get(task, (2, 3))
        for i in range(n_cases):
            case_id = f"{folder}_{i:03d}"
            n = lo if i % 2 == 0 else hi
            refs = {}
            for r in range(n):
                role = "R" + "ABC"[r]
                rel = f"{folder}/refs/{case_id}_{role}.png"
                (base / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (24 + 8 * r, 24), COLOURS[(t_index + i + r) % len(COLOURS)]).save(base / rel)
                refs[role] = f"data/{rel}" if data_prefix else rel
            card = {
                "case_id": case_id,
                "task_type": folder,
                "refs": refs,
                "generation_prompt": f"Combine image 1 and image 2 for case {i} of {task}.",
                "goal": "A single coherent image.",
                "constraints_hard": ["Both subjects are visible.", "Nothing else is added."],
                "constraints_soft": ["Natural light."],
            }
            if drop_case_id and i == 0:
                del card["case_id"]
            (base / folder / "cases").mkdir(parents=True, exist_ok=True)
            (base / folder / "cases" / f"{case_id}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
            if task == "story_generation":
                story.append({"case_id": case_id, "background_summary": "A ball rolls.",
                              "positive_candidates": ["the ball falls"], "negative_candidates": ["the ball flies"]})
    (base / "story_infer").mkdir(parents=True, exist_ok=True)
    (base / "story_infer" / "simple_candidate_template.json").write_text(json.dumps({"cases": story}))
    return root


def edit_card(root: Path, task: str, case_file: str, **changes) -> Path:
    """Rewrite one card of a fixture made by make_raw (None deletes a key)."""
    folder = FOLDERS[task]
    for base in (root / "data", root):
        path = base / folder / "cases" / f"{case_file}.yaml"
        if path.exists():
            card = yaml.safe_load(path.read_text())
            for k, v in changes.items():
                if v is None:
                    card.pop(k, None)
                else:
                    card[k] = v
            path.write_text(yaml.safe_dump(card, sort_keys=False))
            return path
    raise FileNotFoundError(case_file)
