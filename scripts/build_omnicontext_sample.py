#!/usr/bin/env python
"""Build the bundled OmniContext sample: a few items per task type in the Hub dataset's own schema.

The real benchmark (``OmniGen2/OmniContext``) is a download; the sample lets the suite, its tests and the
offline demo run end to end without the network. Like the MICON sample (``scripts/build_sample.py``, whose
image helpers it reuses) it is made only from photographs that scikit-image ships in ``skimage/data``
(public domain or CC0), so it can be rebuilt anywhere, byte for byte:

    python scripts/build_omnicontext_sample.py [--out DIR]     # default: micon_tasks/suites/omnicontext/sample

Output: ``DIR/data/train-00000-of-00001.parquet`` (columns ``key``, ``task_type``, ``instruction``,
``instruction_language``, ``input_images``, the fields the suite reads from the Hub dataset) and
``DIR/README.md`` (contents and every image's licence). One item has a non-English instruction, so the
sample also shows filtering at work. The instructions are the project's own. Determinism: no randomness,
no timestamps, PNGs without metadata chunks, rows in a fixed order.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_sample import ASSETS, SOURCES, SampleBuildError, fit, png_bytes  # noqa: E402 - beside this script

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "micon_tasks" / "suites" / "omnicontext" / "sample"
PARQUET = Path("data") / "train-00000-of-00001.parquet"
LONG_SIDE = 128  # keeps the sample small (well under 1 MB)

# (task_type, input images in order, instruction, language)
ITEMS: list[tuple[str, tuple[str, ...], str, str]] = [
    ("single_character", ("astronaut",), "The astronaut from image 1 reads a book on a park bench in autumn.", "en"),
    ("single_character", ("cat",), "The cat from image 1 sits on a windowsill, watching snow fall outside.", "en"),
    ("single_object", ("coffee_cup",), "Put the cup from image 1 on a marble kitchen counter beside a bowl of lemons.",
     "en"),
    ("single_object", ("rocket",), "The rocket from image 1 stands on a sandy desert plain under a clear blue sky.", "en"),
    ("single_object", ("helmet",), "把图1中的头盔放在一块深蓝色的天鹅绒布上。", "zh"),
    ("multi_character", ("astronaut", "cameraman"),
     "The astronaut from image 1 and the man from image 2 shake hands in front of a museum.", "en"),
    ("multi_character", ("cameraman", "cat"),
     "The man from image 1 films the cat from image 2 playing with a ball of yarn in a living room.", "en"),
    ("multi_object", ("coffee_cup", "helmet"),
     "Place the cup from image 1 and the helmet from image 2 side by side on a wooden desk.", "en"),
    ("multi_object", ("helmet", "shuttle_model"),
     "Show the helmet from image 1 and the model from image 2 on a glass shelf in a museum display.", "en"),
    ("multi_character_object", ("astronaut", "coffee_cup"), "The astronaut from image 1 holds the cup from image 2 and smiles.",
     "en"),
    ("multi_character_object", ("cat", "helmet"), "The cat from image 1 peeks out from inside the helmet from image 2.", "en"),
    ("scene_character", ("astronaut", "park"), "The astronaut from image 1 walks across the park in image 2.", "en"),
    ("scene_character", ("cat", "brick_wall"), "The cat from image 1 sits on top of the wall in image 2.", "en"),
    ("scene_object", ("coffee_cup", "lawn"), "Set the cup from image 1 on the grass in image 2.", "en"),
    ("scene_object", ("rocket", "park"), "The rocket from image 1 stands in the middle of the park in image 2.", "en"),
    ("scene_character_object", ("cameraman", "shuttle_model", "launch_site"),
     "The man from image 1 sets up his camera beside the model from image 2 at the launch site in image 3.", "en"),
    ("scene_character_object", ("cat", "coffee_cup", "brick_wall"),
     "The cat from image 1 sniffs the cup from image 2 in front of the wall in image 3.", "en"),
]


def keys() -> list[str]:
    """Item keys: ``<task_type>_<nn>``, numbered within each type in the order above."""
    seen: dict[str, int] = {}
    out = []
    for kind, *_ in ITEMS:
        seen[kind] = seen.get(kind, 0) + 1
        out.append(f"{kind}_{seen[kind]:02d}")
    return out


def image_bytes(name: str, cache: dict[str, bytes]) -> bytes:
    if name not in cache:
        cache[name] = png_bytes(fit(ASSETS[name].make().convert("RGB"), LONG_SIDE))
    return cache[name]


def build_table(cache: dict[str, bytes] | None = None):
    """The sample as a ``datasets.Dataset`` in the Hub dataset's schema."""
    import datasets

    cache = {} if cache is None else cache
    feats = datasets.Features({
        "key": datasets.Value("string"), "task_type": datasets.Value("string"),
        "instruction": datasets.Value("string"), "instruction_language": datasets.Value("string"),
        "input_images": datasets.List(datasets.Image()),
    })
    cols: dict[str, list] = {name: [] for name in feats}
    for key, (kind, refs, text, lang) in zip(keys(), ITEMS):
        cols["key"].append(key)
        cols["task_type"].append(kind)
        cols["instruction"].append(text)
        cols["instruction_language"].append(lang)
        cols["input_images"].append([{"bytes": image_bytes(r, cache), "path": f"{r}.png"} for r in refs])
    return datasets.Dataset.from_dict(cols, features=feats)


def render_readme(cache: dict[str, bytes]) -> str:
    by_type: dict[str, list[str]] = {}
    for key, (kind, refs, _, lang) in zip(keys(), ITEMS):
        by_type.setdefault(kind, []).append(f"`{key}` ({len(refs)} image{'s' if len(refs) > 1 else ''}"
                                            f"{', ' + lang + ', filtered' if lang != 'en' else ''})")
    used = sorted({r for _, refs, _, _ in ITEMS for r in refs})
    lines = [
        "# OmniContext sample",
        "",
        f"{len(ITEMS)} items in the schema of the Hub dataset `OmniGen2/OmniContext` (split `train`): two per task",
        "type, plus one item whose instruction is not in English (left out of scoring and counted as `filtered`,",
        "as the authors score English instructions only). The instructions are this project's own, not the",
        "benchmark's; the sample checks the harness end to end and says nothing about a model.",
        "",
        "Generated by `python scripts/build_omnicontext_sample.py` (do not edit by hand); it needs Pillow,",
        "`datasets` and an installed scikit-image, never the network, and writes the same bytes on every run.",
        "",
        "## Contents",
        "",
        "| task type | items |",
        "|---|---|",
        *(f"| `{k}` | {', '.join(v)} |" for k, v in by_type.items()),
        "",
        f"File: `{PARQUET.as_posix()}` with columns `key`, `task_type`, `instruction`, `instruction_language`,",
        "`input_images` (PNG bytes).",
        "",
        "## Images and licences",
        "",
        "Every input image is a crop or tint of a photograph shipped in scikit-image's `skimage/data` folder,",
        f"resized to {LONG_SIDE} px on the long side; the licences are the ones scikit-image documents.",
        "",
        "| image | made from | how | licence | source |",
        "|---|---|---|---|---|",
    ]
    for name in used:
        asset = ASSETS[name]
        for src in asset.sources:
            s = SOURCES[src]
            lines.append(f"| {name}.png | `{s.file}` | {asset.how} | {s.licence} | {s.origin} |")
    return "\n".join(lines) + "\n"


def build(out: Path) -> list[Path]:
    if out.exists() and not out.is_dir():
        raise SampleBuildError(f"--out {out} exists and is not a directory")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ("data", "README.md")) if out.is_dir() else []
    if foreign:
        raise SampleBuildError(f"refusing to wipe {out}: unexpected entries {foreign}")
    if (out / "data").is_dir():
        shutil.rmtree(out / "data")
    (out / "data").mkdir(parents=True, exist_ok=True)
    cache: dict[str, bytes] = {}
    build_table(cache).to_parquet(str(out / PARQUET))
    (out / "README.md").write_text(render_readme(cache), encoding="utf-8")
    return [out / PARQUET, out / "README.md"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"sample folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        files = build(args.out)
    except SampleBuildError as exc:
        print(f"build_omnicontext_sample: error: {exc}", file=sys.stderr)
        return 2
    total = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files)} files ({len(ITEMS)} items, {total / 1e6:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
