#!/usr/bin/env python
"""Build the bundled MICON-Bench sample split in the official raw layout.

The real benchmark (1043 cases) is a download; the sample lets the harness, its tests and the offline
demo run end to end without the network. It is built only from photographs that scikit-image ships in
its installed ``skimage/data`` folder (public domain / CC0, see SOURCES) and from frame sequences drawn
here with PIL, so it can be regenerated anywhere, byte for byte:

    python scripts/build_sample.py [--out DIR]      # default: micon_tasks/sample

The case texts (prompts, goals, constraints, expectations, story answer sets) live in
``scripts/sample_cases.yaml`` next to this script, which is checked on load; the images, references
and file layout are made here.

Determinism: no randomness, no timestamps, PNGs written without metadata chunks, YAML/JSON dumped
with a fixed key order. The target's task folders and README.md are wiped first; a directory holding
anything else is refused rather than wiped.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from PIL import Image, ImageDraw, ImageFilter, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "micon_tasks" / "sample"

# Official folder name -> (project task name, allowed reference counts). PROTOCOL 1.
TASKS: dict[str, tuple[str, tuple[int, ...]]] = {
    "object_composition": ("object_composition", (2, 3)),
    "spatial_geometric_constraints": ("spatial_composition", (2, 3)),
    "attribute_style_decoupling": ("attribute_disentanglement", (3,)),
    "local_element_transfer": ("component_transfer", (2, 3)),
    "foreground_background_composition": ("fgbg_composition", (2,)),
    "story_infer": ("story_generation", (2, 3)),
}
ROLES = ("RA", "RB", "RC")
ANSWER_SET_FILE = "simple_candidate_template.json"
ALLOWED_ROOT_ENTRIES = frozenset(TASKS) | {"README.md"}
LONG_SIDE = 176  # photo references: long side in pixels (keeps the sample near 2 MB)
FRAME_SIZE = (192, 144)  # story frames
COMPOSITION_DIMS = ["A", "B", "C", "D", "G"]
STORY_DIMS = ["A", "B", "C", "D", "E", "G"]


class SampleBuildError(RuntimeError):
    """The sample cannot be built (missing source image, unsafe output directory, bad case)."""


# ---------------------------------------------------------------------------------------------------
# Source photographs (files inside the installed scikit-image package; never fetched)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    file: str  # name inside skimage/data
    shows: str
    licence: str
    origin: str  # credit and original location, as scikit-image documents it


SOURCES: dict[str, Source] = {
    "astronaut": Source(
        "astronaut.png", "Astronaut Eileen Collins in an orange spacesuit, helmet and flag",
        "Public domain (NASA)", "NASA Great Images database, https://flic.kr/p/r9qvLn",
    ),
    "chelsea": Source(
        "chelsea.png", "Chelsea the tabby cat", "CC0", "Stefan van der Walt (photographer)",
    ),
    "coffee": Source(
        "coffee.png", "Red espresso cup on a saucer, wooden table", "CC0",
        "Rachel Michetti (photographer), courtesy of Pikolo Espresso Bar",
    ),
    "rocket": Source(
        "rocket.jpg", "Falcon 9 with DSCOVR on the launch pad at dusk", "Public domain (SpaceX)",
        "SpaceX Photos, https://www.flickr.com/photos/spacexphotos/16511594820/",
    ),
    "camera": Source(
        "camera.png", "Man filming with a camera on a tripod in a park (grayscale)", "CC0",
        "Lav Varshney (photographer)",
    ),
    "coins": Source(
        "coins.png", "Greek coins from Pompeii (grayscale)", "No known copyright restrictions",
        "Brooklyn Museum Collection, https://www.brooklynmuseum.org/opencollection/archives/image/51611",
    ),
    "horse": Source(
        "horse.png", "Black silhouette of a horse", "CC0",
        "Andreas Preuss (marauder), openclipart, http://openclipart.org/detail/158377/horse-by-marauder",
    ),
    "hubble": Source(
        "hubble_deep_field.jpg", "Hubble eXtreme Deep Field", "Public domain (NASA)",
        "HubbleSite, http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/",
    ),
    "ihc": Source(
        "ihc.png", "Immunohistochemical staining of colonic glands (brown DAB, blue hematoxylin)",
        "No known copyright restrictions", "Center for Microscopy And Molecular Imaging (CMMI)",
    ),
    "brick": Source(
        "brick.png", "Brick wall (grayscale texture)", "CC0", "CC0Textures, Bricks25",
    ),
    "grass": Source(
        "grass.png", "Grass (grayscale texture)", "CC0",
        "linolafett on DeviantArt, https://www.deviantart.com/linolafett/art/Grass-01-434853879",
    ),
    "gravel": Source(
        "gravel.png", "Gravel (grayscale texture)", "CC0", "CC0Textures, Gravel04",
    ),
}


def skimage_data_dir() -> Path:
    """The ``data`` folder of the installed scikit-image, located without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SampleBuildError("scikit-image is not installed; `pip install scikit-image` to build the sample")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_source(key: str) -> Image.Image:
    path = skimage_data_dir() / SOURCES[key].file
    if not path.is_file():
        raise SampleBuildError(
            f"source image {SOURCES[key].file!r} is not in the installed scikit-image ({path}); "
            "the sample uses only files shipped with the package and never downloads"
        )
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            flat = Image.new("RGBA", im.size, (255, 255, 255, 255))
            flat.alpha_composite(im)
            return flat.convert("RGB")
        return im.convert("RGB") if im.mode != "L" else im.copy()


# ---------------------------------------------------------------------------------------------------
# Derived reference images ("assets"): crops, tints and filters of the sources
# ---------------------------------------------------------------------------------------------------
def fit(im: Image.Image, long_side: int = LONG_SIDE) -> Image.Image:
    """Resize so the long side is ``long_side`` (up or down), keeping the aspect ratio."""
    w, h = im.size
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im.resize(size, Image.Resampling.LANCZOS)


def crop(key: str, box: tuple[int, int, int, int]) -> Image.Image:
    return load_source(key).crop(box)


def tint(gray: Image.Image, dark: tuple[int, int, int], light: tuple[int, int, int]) -> Image.Image:
    return ImageOps.colorize(ImageOps.autocontrast(gray.convert("L"), cutoff=1), black=dark, white=light)


def horse_brown() -> Image.Image:
    """The binary silhouette, coloured as a chestnut horse on a pale sky."""
    mask = load_source("horse").convert("L").point(lambda v: 255 if v < 128 else 0)
    base = Image.new("RGB", mask.size, (214, 230, 240))
    base.paste(Image.new("RGB", mask.size, (128, 70, 36)), (0, 0), mask)
    return base.crop((20, 20, 390, 320))


def sketch(key: str, box: tuple[int, int, int, int]) -> Image.Image:
    """A pencil-line drawing: inverted edge map, thresholded to dark lines on white."""
    gray = crop(key, box).convert("L").filter(ImageFilter.GaussianBlur(1.5))
    edges = ImageOps.invert(gray.filter(ImageFilter.FIND_EDGES))
    return ImageOps.autocontrast(edges, cutoff=2).point(lambda v: 0 if v < 200 else 255).convert("RGB")


def mosaic(key: str, box: tuple[int, int, int, int], cells: int = 22) -> Image.Image:
    """Blocky pixel art: downsample to a coarse grid, blow up with nearest-neighbour."""
    im = crop(key, box)
    small = im.resize((cells, round(cells * im.height / im.width)), Image.Resampling.BOX)
    small = small.quantize(colors=16, dither=Image.Dither.NONE).convert("RGB")
    return small.resize((LONG_SIDE, round(LONG_SIDE * im.height / im.width)), Image.Resampling.NEAREST)


def emboss(key: str, box: tuple[int, int, int, int]) -> Image.Image:
    """A grey stamped-metal relief."""
    relief = crop(key, box).convert("L").filter(ImageFilter.EMBOSS)
    return ImageOps.autocontrast(relief, cutoff=1).convert("RGB")


@dataclass(frozen=True)
class Asset:
    sources: tuple[str, ...]
    how: str  # derivation, for the README
    make: Callable[[], Image.Image]
    long_side: int | None = LONG_SIDE  # None: the maker already returns the final size


ASSETS: dict[str, Asset] = {
    "cat": Asset(("chelsea",), "crop to the cat's head", lambda: crop("chelsea", (60, 0, 451, 300))),
    "coffee_cup": Asset(("coffee",), "crop to cup and saucer", lambda: crop("coffee", (70, 10, 490, 390))),
    "astronaut": Asset(("astronaut",), "crop to the astronaut", lambda: crop("astronaut", (30, 0, 370, 470))),
    "helmet": Asset(("astronaut",), "crop to the helmet", lambda: crop("astronaut", (270, 335, 512, 512))),
    "flag": Asset(("astronaut",), "crop to the flag", lambda: crop("astronaut", (0, 0, 88, 250))),
    "shuttle_model": Asset(
        ("astronaut",), "crop to the space-shuttle model", lambda: crop("astronaut", (345, 0, 475, 285))
    ),
    "rocket": Asset(("rocket",), "crop to the rocket", lambda: crop("rocket", (240, 100, 410, 427))),
    "launch_site": Asset(("rocket",), "whole photo", lambda: load_source("rocket")),
    "cameraman": Asset(("camera",), "crop to man, camera and tripod", lambda: crop("camera", (0, 50, 430, 512))),
    "park": Asset(("camera",), "crop to the empty lawn and buildings", lambda: crop("camera", (340, 90, 512, 290))),
    "coin": Asset(("coins",), "crop to one coin", lambda: crop("coins", (300, 8, 378, 86)), long_side=128),
    "horse": Asset(("horse",), "silhouette coloured chestnut on pale blue", horse_brown),
    "starfield": Asset(("hubble",), "crop", lambda: crop("hubble", (0, 0, 560, 420))),
    "lawn": Asset(
        ("grass",), "tinted green", lambda: tint(crop("grass", (0, 0, 384, 288)), (20, 50, 10), (170, 215, 110))
    ),
    "brick_wall": Asset(
        ("brick",), "tinted terracotta", lambda: tint(crop("brick", (0, 0, 384, 288)), (70, 25, 15), (225, 160, 120))
    ),
    "gravel_path": Asset(
        ("gravel",), "tinted warm grey", lambda: tint(crop("gravel", (0, 0, 384, 288)), (45, 38, 30), (220, 205, 180))
    ),
    "style_sketch": Asset(("camera",), "pencil-line drawing (edge map)", lambda: sketch("camera", (0, 0, 512, 512))),
    "style_poster": Asset(
        ("coffee",), "flat poster (posterised to 2 bits per channel)",
        lambda: ImageOps.posterize(crop("coffee", (0, 0, 600, 400)), 2),
    ),
    "style_mosaic": Asset(
        ("astronaut",),
        "blocky pixel art (22-cell mosaic)",
        lambda: mosaic("astronaut", (0, 0, 512, 512)),
        long_side=None,
    ),
    "style_stain": Asset(("ihc",), "crop", lambda: crop("ihc", (0, 0, 400, 300))),
    "style_emboss": Asset(
        ("coins",), "embossed metal relief (PIL EMBOSS filter)",
        lambda: emboss("coins", (0, 0, 384, 303)),
    ),
}


def render_asset(name: str) -> Image.Image:
    asset = ASSETS[name]
    im = asset.make().convert("RGB")
    return fit(im, asset.long_side) if asset.long_side else im


# ---------------------------------------------------------------------------------------------------
# Story frames, drawn at twice the size and downsampled for smooth edges
# ---------------------------------------------------------------------------------------------------
SCALE = 2


def _canvas(sky: tuple[int, int, int] = (236, 240, 246)) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGB", (FRAME_SIZE[0] * SCALE, FRAME_SIZE[1] * SCALE), sky)
    return im, ImageDraw.Draw(im)


def _finish(im: Image.Image) -> Image.Image:
    return im.resize(FRAME_SIZE, Image.Resampling.LANCZOS)


def _s(*values: float) -> list[int]:
    return [round(v * SCALE) for v in values]


def ball_frames() -> list[Image.Image]:
    """A red ball rolls along a table top, reaches the edge, and drops off it."""
    positions = [(44, 77), (112, 77), (138, 100)]  # ball centre per frame (radius 9)
    frames = []
    for cx, cy in positions:
        im, d = _canvas()
        d.rectangle(_s(0, 124, 192, 144), fill=(170, 150, 120))  # floor
        d.rectangle(_s(24, 86, 124, 94), fill=(120, 72, 40))  # table top
        d.rectangle(_s(32, 94, 40, 124), fill=(100, 60, 32))
        d.rectangle(_s(108, 94, 116, 124), fill=(100, 60, 32))
        d.ellipse(_s(cx - 9, cy - 9, cx + 9, cy + 9), fill=(210, 30, 40), outline=(90, 10, 15), width=SCALE * 2)
        frames.append(_finish(im))
    return frames


def candle_frames() -> list[Image.Image]:
    """A lit candle on a dish gets shorter frame by frame; a wax puddle grows."""
    frames = []
    for i, height in enumerate((80, 54, 28)):
        im, d = _canvas((40, 40, 60))
        d.rectangle(_s(0, 120, 192, 144), fill=(90, 70, 60))  # shelf
        d.ellipse(_s(56, 112, 136, 126), fill=(200, 200, 210))  # dish
        puddle = 10 + 8 * i
        d.ellipse(_s(96 - puddle, 113, 96 + puddle, 121), fill=(245, 240, 220))
        top = 117 - height
        d.rectangle(_s(86, top, 106, 117), fill=(250, 245, 225), outline=(200, 190, 160), width=SCALE)
        d.line(_s(96, top, 96, top - 6), fill=(30, 30, 30), width=SCALE * 2)  # wick
        d.ellipse(_s(90, top - 22, 102, top - 4), fill=(255, 190, 40))  # flame
        d.ellipse(_s(93, top - 14, 99, top - 5), fill=(255, 250, 200))
        frames.append(_finish(im))
    return frames


def plant_frames() -> list[Image.Image]:
    """A seedling in a clay pot grows a taller stem and more leaves."""
    frames = []
    for stem, pairs in ((14, 1), (40, 2)):
        im, d = _canvas((225, 240, 250))
        d.rectangle(_s(0, 128, 192, 144), fill=(200, 190, 170))
        d.polygon(_s(70, 96, 122, 96, 114, 132, 78, 132), fill=(190, 95, 55))  # pot
        d.rectangle(_s(66, 90, 126, 98), fill=(170, 80, 45))
        d.rectangle(_s(72, 88, 120, 91), fill=(90, 60, 40))  # soil
        base = 89
        d.line(_s(96, base, 96, base - stem), fill=(40, 130, 50), width=SCALE * 3)
        for p in range(pairs):
            y = base - stem + 4 + p * 16
            d.ellipse(_s(80, y - 5, 95, y + 3), fill=(60, 170, 70))
            d.ellipse(_s(97, y - 5, 112, y + 3), fill=(60, 170, 70))
        frames.append(_finish(im))
    return frames


def sunset_frames() -> list[Image.Image]:
    """The sun sinks towards green hills while the sky warms from blue to orange."""
    skies = [(150, 200, 240), (240, 200, 130), (235, 120, 70)]
    suns = [(96, 30), (96, 62), (96, 90)]
    frames = []
    for sky, (cx, cy) in zip(skies, suns):
        im, d = _canvas(sky)
        d.ellipse(_s(cx - 16, cy - 16, cx + 16, cy + 16), fill=(255, 220, 60))
        d.ellipse(_s(-40, 88, 110, 180), fill=(60, 130, 60))  # hills drawn over the sun
        d.ellipse(_s(70, 95, 240, 190), fill=(45, 110, 50))
        frames.append(_finish(im))
    return frames


def block_frames() -> list[Image.Image]:
    """Coloured wooden blocks are stacked into a tower, one more per frame."""
    colours = [(200, 50, 50), (50, 90, 200), (50, 160, 70)]
    frames = []
    for count in (2, 3):
        im, d = _canvas((245, 240, 230))
        d.rectangle(_s(0, 126, 192, 144), fill=(150, 110, 80))  # floor
        for k in range(count):
            y = 126 - 24 * (k + 1)
            d.rectangle(_s(80, y, 112, y + 24), fill=colours[k], outline=(40, 30, 20), width=SCALE)
        frames.append(_finish(im))
    return frames


STORIES: dict[str, Callable[[], list[Image.Image]]] = {
    "ball": ball_frames,
    "candle": candle_frames,
    "plant": plant_frames,
    "sunset": sunset_frames,
    "blocks": block_frames,
}


# ---------------------------------------------------------------------------------------------------
# Cases: the texts live in scripts/sample_cases.yaml (see its header); loaded and checked here
# ---------------------------------------------------------------------------------------------------
@dataclass
class CaseSpec:
    """A task card before it is written (made by ``load_cases``; defaults are filled in there).

    ``refs`` are asset names or ``story:<name>:<frame>``; ``prompt`` is the final text.
    """

    refs: list[str]
    prompt: str
    goal: str
    hard: list[str]
    soft: list[str]
    expect: list[str]
    dims: list[str]
    answer: dict[str, object] | None  # story: background_summary, positive/negative candidates


def _story_prompt(n: int) -> str:
    frames = ", ".join(f"image {i}" for i in range(1, n)) + f" and image {n}"
    return (
        f"{frames[0].upper()}{frames[1:]} are consecutive frames of a short story, in order. Draw the next "
        "frame: what happens right after the last one, in the same flat drawing style, framing and colours."
    )


CASES_FILE = Path(__file__).resolve().with_name("sample_cases.yaml")
# ``prompt: {template: <name>}`` in the case file: the text is made from the number of references.
PROMPT_TEMPLATES: dict[str, Callable[[int], str]] = {"story_next_frame": _story_prompt}
CASE_FIELDS = ("refs", "prompt", "goal", "hard", "soft", "expect", "dims", "answer")
REQUIRED_FIELDS = ("refs", "prompt", "goal", "hard", "expect")
ANSWER_FIELDS = ("background_summary", "positive", "negative")
ANSWER_CANDIDATES = 3


def task_dims(folder: str) -> list[str]:
    """All dimensions a task's cases may use; also a case's default ``dims``."""
    return list(STORY_DIMS if folder == "story_infer" else COMPOSITION_DIMS)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _text_list(value: object) -> bool:
    return isinstance(value, list) and all(_is_text(v) for v in value)


def _ref_problem(ref: object, frame_counts: dict[str, int]) -> str | None:
    if not isinstance(ref, str):
        return f"{ref!r} is not a string"
    if not ref.startswith("story:"):
        return None if ref in ASSETS else f"{ref!r} is neither an asset ({', '.join(ASSETS)}) nor story:<name>:<frame>"
    parts = ref.split(":")
    if len(parts) != 3 or parts[1] not in STORIES or not parts[2].isdigit():
        return f"{ref!r}: story references are story:<{'|'.join(STORIES)}>:<frame number>"
    if parts[1] not in frame_counts:
        frame_counts[parts[1]] = len(STORIES[parts[1]]())
    if int(parts[2]) >= frame_counts[parts[1]]:
        return f"{ref!r}: the {parts[1]} sequence has frames 0-{frame_counts[parts[1]] - 1}"
    return None


def case_problems(folder: str, spec: CaseSpec) -> list[str]:
    """Authoring mistakes in one case, each as '<field>: <what is wrong>' (fields as in the case file)."""
    task, counts = TASKS[folder]
    n = len(spec.refs)
    problems = []
    if n not in counts:
        problems.append(f"refs: {n} references, {task} allows {counts}")
    if not 2 <= len(spec.hard) <= 4:
        problems.append(f"hard: {len(spec.hard)} items, need 2-4")
    if len(spec.soft) > 3:
        problems.append(f"soft: {len(spec.soft)} items, at most 3")
    if not 2 <= len(spec.expect) <= 4:
        problems.append(f"expect: {len(spec.expect)} items, need 2-4")
    if not set(spec.dims) <= set(task_dims(folder)):
        problems.append(f"dims: {spec.dims} not allowed for {task} (allowed: {task_dims(folder)})")
    for k in range(1, n + 2):
        mentioned = re.search(rf"\bimage {k}\b", spec.prompt, re.IGNORECASE) is not None
        if mentioned != (k <= n):
            problems.append(f"prompt: 'image {k}' {'missing' if k <= n else 'names no reference'}")
    if spec.answer is None and folder == "story_infer":
        problems.append("answer: missing (every story_infer case needs one)")
    elif spec.answer is not None and folder != "story_infer":
        problems.append("answer: only story_infer cases have one")
    return problems


def _case_from_entry(folder: str, entry: object, frame_counts: dict[str, int]) -> tuple[CaseSpec | None, list[str]]:
    """One case of the case file -> (CaseSpec or None, problems as 'field: what is wrong')."""
    if not isinstance(entry, dict):
        return None, [f"a case must be a mapping of {', '.join(CASE_FIELDS)}, got {type(entry).__name__}"]
    problems = [f"{key}: unknown field (known: {', '.join(CASE_FIELDS)})" for key in entry if key not in CASE_FIELDS]
    problems += [f"{key}: missing" for key in REQUIRED_FIELDS if key not in entry]
    refs = entry.get("refs", [])
    if not isinstance(refs, list):
        problems.append("refs: must be a list of reference names")
    else:
        problems += [f"refs: {p}" for r in refs if (p := _ref_problem(r, frame_counts))]
    prompt = entry.get("prompt", "")
    if isinstance(prompt, dict):
        name = prompt.get("template")
        if list(prompt) != ["template"] or not isinstance(name, str) or name not in PROMPT_TEMPLATES:
            choices = "|".join(PROMPT_TEMPLATES)
            problems.append(f"prompt: a template prompt is {{template: <{choices}>}}, got {prompt!r}")
        elif isinstance(refs, list):
            prompt = PROMPT_TEMPLATES[name](len(refs))
    elif "prompt" in entry and not _is_text(prompt):
        problems.append("prompt: must be non-empty text or {template: <name>}")
    if "goal" in entry and not _is_text(entry["goal"]):
        problems.append("goal: must be non-empty text")
    for key in ("hard", "soft", "expect"):
        if key in entry and not _text_list(entry[key]):
            problems.append(f"{key}: must be a list of non-empty texts")
    dims = entry.get("dims", task_dims(folder))
    if not (isinstance(dims, list) and dims and all(isinstance(d, str) for d in dims)):
        problems.append("dims: must be a non-empty list of dimension letters")
    answer = entry.get("answer")
    if answer is not None:
        if not isinstance(answer, dict) or set(answer) != set(ANSWER_FIELDS):
            problems.append(f"answer: must be a mapping with exactly {', '.join(ANSWER_FIELDS)}")
        else:
            if not _is_text(answer["background_summary"]):
                problems.append("answer.background_summary: must be non-empty text")
            for key in ("positive", "negative"):
                if not (_text_list(answer[key]) and len(answer[key]) == ANSWER_CANDIDATES):
                    problems.append(f"answer.{key}: must be a list of {ANSWER_CANDIDATES} non-empty texts")
            lists_ok = all(_text_list(answer[key]) for key in ("positive", "negative"))
            if lists_ok and set(answer["positive"]) & set(answer["negative"]):
                problems.append("answer: a candidate is both positive and negative")
    if problems:
        return None, problems
    spec = CaseSpec(
        refs=list(refs),
        prompt=prompt,
        goal=entry["goal"],
        hard=list(entry["hard"]),
        soft=list(entry.get("soft", [])),
        expect=list(entry["expect"]),
        dims=list(dims),
        answer=None if answer is None else {k: answer[k] for k in ANSWER_FIELDS},
    )
    return spec, case_problems(folder, spec)


def load_cases(path: Path = CASES_FILE) -> dict[str, list[CaseSpec]]:
    """Read and check the case file; every problem names the task folder, case number and field."""
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise SampleBuildError(f"cannot read the case file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SampleBuildError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or list(data) != list(TASKS):
        found = list(data) if isinstance(data, dict) else type(data).__name__
        raise SampleBuildError(
            f"{path}: the top level must map the task folders {list(TASKS)}, in that order; got {found}"
        )
    cases: dict[str, list[CaseSpec]] = {}
    errors: list[str] = []
    frame_counts: dict[str, int] = {}
    for folder, entries in data.items():
        if not isinstance(entries, list) or not entries:
            errors.append(f"{folder}: must be a non-empty list of cases")
            continue
        cases[folder] = []
        for i, entry in enumerate(entries, start=1):
            spec, problems = _case_from_entry(folder, entry, frame_counts)
            errors += [f"{folder} case {i} ({folder}_{i:04d}), {p}" for p in problems]
            if spec is not None:
                cases[folder].append(spec)
    if errors:
        raise SampleBuildError(f"{path}: {len(errors)} problem(s):\n  " + "\n  ".join(errors))
    return cases


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------
def png_bytes(im: Image.Image) -> bytes:
    """PNG with only IHDR/IDAT/IEND: no text, time, gamma or ICC chunks, so bytes depend on pixels alone."""
    clean = Image.frombytes(im.mode, im.size, im.tobytes())
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def prepare_out_dir(out: Path) -> None:
    """Wipe the task folders and README of a sample root; refuse anything that is not one."""
    if out.exists() and not out.is_dir():
        raise SampleBuildError(f"--out {out} exists and is not a directory")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in ALLOWED_ROOT_ENTRIES)
        if foreign:
            raise SampleBuildError(
                f"refusing to wipe {out}: it does not look like a sample root (unexpected entries: "
                f"{', '.join(foreign)}); a sample root holds only {', '.join(sorted(ALLOWED_ROOT_ENTRIES))}"
            )
        for name in sorted(ALLOWED_ROOT_ENTRIES):
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def ref_image(ref: str, cache: dict[str, Image.Image]) -> Image.Image:
    if ref not in cache:
        if ref.startswith("story:"):
            story = ref.split(":")[1]
            for i, frame in enumerate(STORIES[story]()):
                cache[f"story:{story}:{i}"] = frame
        else:
            cache[ref] = render_asset(ref)
    return cache[ref]


def ref_sources(ref: str) -> list[str]:
    if ref.startswith("story:"):
        return [f"drawn frame ({ref.split(':')[1]} sequence)"]
    asset = ASSETS[ref]
    return [f"{ref}: {asset.how} of scikit-image {SOURCES[s].file} ({SOURCES[s].licence})" for s in asset.sources]


def build(out: Path, cases: dict[str, list[CaseSpec]] | None = None) -> list[Path]:
    """Write the whole sample under ``out`` (cases: default, the case file); returns the files written, sorted."""
    if cases is None:
        cases = load_cases()
    prepare_out_dir(out)
    cache: dict[str, Image.Image] = {}
    written: list[Path] = []
    answer_sets: list[dict[str, object]] = []
    for folder, specs in cases.items():
        (out / folder / "cases").mkdir(parents=True)
        (out / folder / "refs").mkdir()
        for i, spec in enumerate(specs, start=1):
            case_id = f"{folder}_{i:04d}"
            refs: dict[str, str] = {}
            for role, ref in zip(ROLES, spec.refs):
                rel = f"{folder}/refs/{case_id}_{role}.png"
                (out / rel).write_bytes(png_bytes(ref_image(ref, cache)))
                written.append(out / rel)
                refs[role] = rel
            notes = "Sample split (not benchmark data). References: " + "; ".join(
                f"{role} = {src}" for role, ref in zip(ROLES, spec.refs) for src in ref_sources(ref)
            )
            card = {
                "case_id": case_id,
                "task_type": folder,
                "refs": refs,
                "generation_prompt": spec.prompt,
                "goal": spec.goal,
                "constraints_hard": list(spec.hard),
                "constraints_soft": list(spec.soft),
                "expectation_list": list(spec.expect),
                "participating_dimensions": list(spec.dims),
                "notes": notes,
            }
            path = out / folder / "cases" / f"{case_id}.yaml"
            path.write_text(yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=100), "utf-8")
            written.append(path)
            if spec.answer is not None:
                answer_sets.append(
                    {
                        "case_id": case_id,
                        "background_summary": spec.answer["background_summary"],
                        "positive_candidates": list(spec.answer["positive"]),
                        "negative_candidates": list(spec.answer["negative"]),
                    }
                )
    path = out / "story_infer" / ANSWER_SET_FILE
    path.write_text(json.dumps({"cases": answer_sets}, indent=2, ensure_ascii=False) + "\n", "utf-8")
    written.append(path)
    readme = out / "README.md"
    readme.write_text(render_readme(cases), "utf-8")
    written.append(readme)
    return sorted(written)


def render_readme(cases: dict[str, list[CaseSpec]]) -> str:
    lines = [
        "# MICON-Bench sample split",
        "",
        "A small stand-in for the MICON-Bench data (CVPR 2026) in the official raw layout, so the harness, its",
        "tests and the offline demo run without downloading the benchmark. **It is not benchmark data**: the",
        "cases were written for this project and scores on it are not comparable with the paper's.",
        "",
        "Generated by `python scripts/build_sample.py` from the case texts in `scripts/sample_cases.yaml` (do not",
        "edit by hand; edit those and rebuild). The script needs only Pillow, PyYAML and an installed scikit-image,",
        "never the network, and writes the same bytes on every run.",
        "",
        "## Contents",
        "",
        "| official folder | task | cases | references per case |",
        "|---|---|---|---|",
    ]
    for folder, specs in cases.items():
        counts = sorted({len(s.refs) for s in specs})
        mix = ", ".join(f"{sum(len(s.refs) == c for s in specs)} x {c}" for c in counts)
        lines.append(f"| `{folder}` | `{TASKS[folder][0]}` | {len(specs)} | {mix} |")
    lines += [
        "",
        "Layout: `<folder>/cases/<case_id>.yaml` (task cards), `<folder>/refs/<case_id>_RA.png` (RB, RC",
        f"likewise), `story_infer/{ANSWER_SET_FILE}` (story answer set). Attribute cases use RA subject,",
        "RB style, RC background; fg/bg cases RA foreground subject, RB background.",
        "",
        "## Image sources and licences",
        "",
        "Photographic references are crops, tints or filters of images shipped in scikit-image's",
        f"`skimage/data` folder, resized to {LONG_SIDE} px on the long side (the coin to 128 px); the credits",
        "and licences below are the ones scikit-image documents for them. Each task card's `notes` field",
        "names the source of each of its references. `motorcycle_left.png` is deliberately not used:",
        "scikit-image documents no licence for the Middlebury stereo images it comes from.",
        "",
        "| scikit-image file | shows | licence | source |",
        "|---|---|---|---|",
    ]
    for src in SOURCES.values():
        lines.append(f"| `{src.file}` | {src.shows} | {src.licence} | {src.origin} |")
    lines += [
        "",
        "| reference | made from | how |",
        "|---|---|---|",
    ]
    for name, asset in ASSETS.items():
        lines.append(f"| {name} | {', '.join(f'`{SOURCES[s].file}`' for s in asset.sources)} | {asset.how} |")
    lines += [
        "",
        "The story frames (ball, candle, plant, sunset, blocks) are drawn by `scripts/build_sample.py` with",
        "PIL shapes and are original to this project (same licence as the project).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"sample root (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        cases = load_cases()
        files = build(args.out, cases)
    except SampleBuildError as exc:
        print(f"build_sample: error: {exc}", file=sys.stderr)
        return 2
    total = sum(p.stat().st_size for p in files)
    n_cases = sum(len(v) for v in cases.values())
    print(f"wrote {len(files)} files ({n_cases} cases, {total / 1e6:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
