#!/usr/bin/env python
"""Build the bundled XVerseBench sample: a few synthetic cases in the prepared-folder layout.

The real benchmark's object and animal images cannot be shipped (DreamBench++ has no licence), so the
sample lets the suite, its tests and the offline demo run end to end. Its references are crops of the
public-domain / CC0 photographs scikit-image installs (see ``SOURCES`` in scripts/build_sample.py); its
prompts and DPG-style questions were written for this project. Four single-subject and three
multi-subject cases cover every subject type and mix, with the human case first in each split.

    python scripts/build_xverse_sample.py [--out DIR]   # default: micon_tasks/suites/xversebench/sample

Deterministic: no randomness or timestamps, PNGs without metadata, JSON with sorted keys.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "scripts")]

from build_sample import load_source  # noqa: E402 - beside this script

from micon_tasks.suites.xversebench.data import SAMPLE_ROOT, write_folder  # noqa: E402

SIDE = 160  # reference size in pixels

# name -> (type, skimage source key, crop box in the source, subject caption)
REFERENCES = {
    "00_woman": ("human", "astronaut", (150, 20, 290, 160), "a woman"),
    "00_cup": ("object", "coffee", (60, 0, 460, 300), "a red cup"),
    "01_rocket": ("object", "rocket", (200, 0, 400, 420), "a rocket"),
    "00_cat": ("animal", "chelsea", (60, 0, 400, 300), "a cat"),
    "01_horse": ("animal", "horse", (0, 0, 400, 328), "a horse"),
}


def _q(qid, text, parents=(0,), kind="entity - whole"):
    return {"id": str(qid), "question": text, "parents": [str(p) for p in parents], "tuple": kind}


# split -> cases: (prompt, [(reference, label)], questions)
CASES = {
    "single": [
        ("a woman smiling in a sunny garden", [("00_woman", "woman")],
         [_q(1, "Is there a woman?"), _q(2, "Is there a garden?"), _q(3, "Is the woman smiling?", [1], "attribute - state"),
          _q(4, "Is the woman in the garden?", [1, 2], "relation - spatial")]),
        ("a cup on a wooden desk", [("00_cup", "cup")],
         [_q(1, "Is there a cup?"), _q(2, "Is there a desk?"), _q(3, "Is the desk wooden?", [2], "attribute - material"),
          _q(4, "Is the cup on the desk?", [1, 2], "relation - spatial")]),
        ("a cat sleeping on a sofa", [("00_cat", "cat")],
         [_q(1, "Is there a cat?"), _q(2, "Is there a sofa?"), _q(3, "Is the cat sleeping?", [1], "attribute - state"),
          _q(4, "Is the cat on the sofa?", [1, 2], "relation - spatial")]),
        ("a rocket flying over the sea", [("01_rocket", "rocket")],
         [_q(1, "Is there a rocket?"), _q(2, "Is there a sea?"), _q(3, "Is the rocket flying?", [1], "attribute - state")]),
    ],
    "multi": [
        ("A woman is holding a cup in a cafe.", [("00_woman", "woman"), ("00_cup", "cup")],
         [_q(1, "Is there a woman?"), _q(2, "Is there a cup?"), _q(3, "Is there a cafe?"),
          _q(4, "Is the woman holding the cup?", [1, 2], "relation - action"),
          _q(5, "Is the woman in the cafe?", [1, 3], "relation - spatial")]),
        ("A horse is standing beside a rocket.", [("01_horse", "horse"), ("01_rocket", "rocket")],
         [_q(1, "Is there a horse?"), _q(2, "Is there a rocket?"), _q(3, "Is the horse standing?", [1], "attribute - state"),
          _q(4, "Is the horse beside the rocket?", [1, 2], "relation - spatial")]),
        ("A woman is sitting with a cat next to a cup.", [("00_woman", "woman"), ("00_cat", "cat"), ("00_cup", "cup")],
         [_q(1, "Is there a woman?"), _q(2, "Is there a cat?"), _q(3, "Is there a cup?"),
          _q(4, "Is the woman sitting?", [1], "attribute - state"),
          _q(5, "Is the cat with the woman?", [1, 2], "relation - spatial"),
          _q(6, "Is the cup next to the cat?", [2, 3], "relation - spatial")]),
    ],
}


def reference_png(name: str) -> bytes:
    """The reference crop, squared on white and resized to SIDE px, as metadata-free PNG bytes."""
    from PIL import Image

    kind, source, box, _ = REFERENCES[name]
    im = load_source(source).convert("RGB").crop(box)
    side = max(im.size)
    canvas = Image.new("RGB", (side, side), "white")
    canvas.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
    buf = io.BytesIO()
    canvas.resize((SIDE, SIDE), Image.Resampling.LANCZOS).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def build(out: Path) -> Path:
    images = {f"images/{REFERENCES[n][0]}/{n}.png": reference_png(n) for n in REFERENCES}
    splits = {}
    for split, cases in CASES.items():
        rows = []
        for index, (prompt, subjects, questions) in enumerate(cases):
            rows.append({
                "case_id": f"{split}_{index:03d}", "index": index, "prompt": prompt, "questions": questions,
                "subjects": [{"image": f"images/{REFERENCES[n][0]}/{n}.png", "type": REFERENCES[n][0], "label": label,
                              "caption": REFERENCES[n][3]} for n, label in subjects],
            })
        splits[split] = rows
    source = {"kind": "synthetic sample", "builder": "scripts/build_xverse_sample.py",
              "images": "crops of scikit-image's bundled public-domain / CC0 photographs (astronaut, coffee, "
                        "rocket, chelsea, horse)"}
    return write_folder(out, splits, images, source, overwrite=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLE_ROOT)
    args = parser.parse_args()
    print(f"wrote {build(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
