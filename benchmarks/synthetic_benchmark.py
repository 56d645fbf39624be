"""A synthetic MICON-Bench of the real size, in the official raw layout: 1043 cases, 2518 reference PNGs of
1024 x 1024 (about 1-2 MB each, smooth colour fields with noise so they compress like photographs).

Deterministic (the same command writes the same bytes) and never committed: ``benchmarks/scale.py`` builds
it on first use. ``--fraction 0.125`` builds a proportional subset (130 cases).

    python benchmarks/synthetic_benchmark.py OUT_DIR [--fraction 1.0] [--size 1024] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

# (task folder, cases, references per case: fixed, or None for the 2-3 mix) as in PROTOCOL 1
TASKS = [
    ("object_composition", 200, None),
    ("spatial_geometric_constraints", 200, None),
    ("attribute_style_decoupling", 100, 3),
    ("local_element_transfer", 240, None),
    ("foreground_background_composition", 200, 2),
    ("story_infer", 103, None),
]
MIXED_CASES = sum(n for _, n, fixed in TASKS if fixed is None)  # 743
THREE_REF_CASES = 2518 - 100 * 3 - 200 * 2 - 2 * MIXED_CASES  # 332 of the mixed cases have 3 references


def _image(path: Path, seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack([rng.uniform(40, 215) + 40 * np.sin(2 * math.pi * (x * rng.uniform(0.5, 3) + y * rng.uniform(0.5, 3)
                                                                          + rng.uniform()))
                     for _ in range(3)], axis=-1)
    noise = rng.normal(0, 6, size=(size, size, 3))
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path, compress_level=1)


def build(out: Path, *, fraction: float = 1.0, size: int = 1024, workers: int = 2) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    jobs, story = [], []
    mixed_seen = 0
    for folder, n_cases, fixed in TASKS:
        n = max(1, math.ceil(n_cases * fraction))
        (out / folder / "cases").mkdir(parents=True, exist_ok=True)
        (out / folder / "refs").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            case_id = f"{folder}_{i + 1:04d}"
            if fixed is None:
                n_refs = 3 if (mixed_seen * THREE_REF_CASES) % MIXED_CASES < THREE_REF_CASES else 2
                mixed_seen += 1
            else:
                n_refs = fixed
            refs = {}
            for r in range(n_refs):
                role = "R" + "ABC"[r]
                rel = f"{folder}/refs/{case_id}_{role}.png"
                refs[role] = rel
                jobs.append((out / rel, len(jobs) * 7919 + 13, size))  # a fixed seed per image
            card = {"case_id": case_id, "task_type": folder, "refs": refs,
                    "generation_prompt": f"Combine the subjects of the references into one scene (case {i + 1}).",
                    "goal": "One coherent image that keeps every subject.",
                    "constraints_hard": ["Every referenced subject is visible.", "No extra subject is added."],
                    "constraints_soft": ["Natural lighting."]}
            (out / folder / "cases" / f"{case_id}.yaml").write_text(yaml.safe_dump(card, sort_keys=False), "utf-8")
            if folder == "story_infer":
                story.append({"case_id": case_id, "background_summary": "A ball rolls towards a table edge.",
                              "positive_candidates": ["the ball falls off the edge"],
                              "negative_candidates": ["the ball rolls back uphill"]})
    (out / "story_infer" / "simple_candidate_template.json").write_text(json.dumps({"cases": story}), "utf-8")
    todo = [j for j in jobs if not j[0].exists()]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_image_args, todo, chunksize=8))
    return out


def _image_args(job: tuple[Path, int, int]) -> None:
    _image(*job)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--fraction", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    root = build(args.out, fraction=args.fraction, size=args.size, workers=args.workers)
    n = sum(1 for _ in root.glob("*/cases/*.yaml"))
    m = sum(1 for _ in root.glob("*/refs/*.png"))
    print(f"{root}: {n} cases, {m} reference images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
