#!/usr/bin/env python
"""Build the bundled MICON-Bench sample split in the official raw layout.

The real benchmark (1043 cases) is a download; the sample lets the harness, its tests and the offline
demo run end to end without the network. It is built only from photographs that scikit-image ships in
its installed ``skimage/data`` folder (public domain / CC0, see SOURCES) and from frame sequences drawn
here with PIL, so it can be regenerated anywhere, byte for byte:

    python scripts/build_sample.py [--out DIR]      # default: micon_tasks/sample

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
from dataclasses import dataclass, field
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
# Cases
# ---------------------------------------------------------------------------------------------------
@dataclass
class CaseSpec:
    """A task card before it is written; ``refs`` are asset names or ``story:<name>:<frame>``."""

    refs: list[str]
    prompt: str
    goal: str
    hard: list[str]
    soft: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)
    dims: list[str] = field(default_factory=lambda: list(COMPOSITION_DIMS))
    answer: dict[str, object] | None = None  # story: background_summary, positive/negative candidates


def _story_prompt(n: int) -> str:
    frames = ", ".join(f"image {i}" for i in range(1, n)) + f" and image {n}"
    return (
        f"{frames[0].upper()}{frames[1:]} are consecutive frames of a short story, in order. Draw the next "
        "frame: what happens right after the last one, in the same flat drawing style, framing and colours."
    )


CASES: dict[str, list[CaseSpec]] = {
    "object_composition": [
        CaseSpec(
            refs=["cat", "coffee_cup"],
            prompt=(
                "Compose one photograph: the tabby cat from image 1 sits on a wooden table directly behind "
                "the red espresso cup and saucer from image 2 and looks down into the cup."
            ),
            goal=(
                "A photo in which the tabby cat of image 1 sits behind the red espresso cup of image 2 and looks "
                "into it."
            ),
            hard=[
                "The cat is the striped tabby with green eyes from image 1.",
                "The cup is the red espresso cup with a white inside on its red saucer from image 2.",
                "The cat is behind the cup, so the cup partly hides the cat's chest.",
            ],
            soft=["The cat's eyes look down towards the cup.", "Light falls on cat and cup from the same side."],
            expect=["both objects fully recognisable", "a wooden table surface under the cup", "no second cat or cup"],
        ),
        CaseSpec(
            refs=["astronaut", "rocket", "horse"],
            prompt=(
                "Create one scene at dusk: the astronaut from image 1, in her orange spacesuit, stands holding "
                "the reins of the chestnut horse from image 3, while the white rocket from image 2 stands upright "
                "on its launch pad far behind them."
            ),
            goal=(
                "The astronaut of image 1 stands beside the chestnut horse of image 3 with the rocket of image 2 in "
                "the distance."
            ),
            hard=[
                (
                    "The person is the astronaut of image 1: short light-brown hair, orange spacesuit with a round "
                    "mission patch."
                ),
                "A chestnut-brown horse with the build of image 3 stands next to her.",
                (
                    "The white rocket of image 2 stands upright in the background, smaller than the horse because it "
                    "is far away."
                ),
            ],
            soft=["She holds reins or a rope attached to the horse.", "The sky is a deep dusk blue as in image 2."],
            expect=["three subjects in one coherent scene", "consistent ground plane for astronaut and horse"],
        ),
        CaseSpec(
            refs=["coin", "coffee_cup"],
            prompt=(
                "Place the ancient silver coin from image 1 flat on the red saucer from image 2, to the right of "
                "the cup and in front of the spoon, as if left there as a tip."
            ),
            goal=(
                "The red espresso cup and saucer of image 2 with the coin of image 1 lying flat on the saucer, right "
                "of the cup."
            ),
            hard=[
                "The coin shows the worn relief figure of image 1 and is silver-grey.",
                "The coin lies flat on the saucer, not floating or standing on edge.",
                "The cup, saucer and spoon keep their look from image 2.",
            ],
            soft=["The coin is small relative to the cup (coin-sized)."],
            expect=["coin on the right half of the saucer", "a soft shadow or reflection under the coin"],
            dims=["A", "B", "C", "G"],
        ),
        CaseSpec(
            refs=["cat", "helmet", "lawn"],
            prompt=(
                "Show the tabby cat from image 1 sitting on the green lawn of image 3, next to the white space "
                "helmet from image 2, which rests on the grass on the left side of the picture."
            ),
            goal="The tabby cat of image 1 sits on the lawn of image 3 beside the space helmet of image 2.",
            hard=[
                "The cat is the tabby of image 1 (stripes, green eyes, pink nose).",
                "The helmet is the white helmet with the dark reflective visor from image 2.",
                "Cat and helmet sit on a green grass lawn like image 3, the helmet on the left.",
            ],
            soft=["The helmet is about as tall as the sitting cat."],
            expect=["both objects touch the ground", "grass texture continues under both objects", "natural daylight"],
        ),
        CaseSpec(
            refs=["cameraman", "shuttle_model"],
            prompt=(
                "Show the man in the black coat from image 1 filming, with his camera on its tripod, the "
                "space-shuttle model from image 2, which stands on a small table in front of him."
            ),
            goal="The cameraman of image 1 films the shuttle model of image 2 standing on a table in front of him.",
            hard=[
                "The man has the dark hair, black coat and tripod-mounted camera of image 1.",
                "The model is the white orbiter with the rust-orange tank and two boosters from image 2.",
                "The camera points at the model.",
            ],
            soft=["The model stands on a table at about the height of the camera."],
            expect=["man and model in one scene", "the model is small, like a desk model", "tripod legs on the ground"],
        ),
    ],
    "spatial_geometric_constraints": [
        CaseSpec(
            refs=["coffee_cup", "cat"],
            prompt=(
                "Place the red espresso cup from image 1 in the lower-left quarter of the picture and the tabby cat "
                "from image 2 in the upper-right quarter, sitting on a shelf above the cup. The cat must look "
                "larger than the cup."
            ),
            goal=(
                "Cup of image 1 in the lower-left quarter, cat of image 2 on a shelf in the upper-right quarter, cat "
                "larger."
            ),
            hard=[
                "The cup of image 1 is in the lower-left quarter of the frame.",
                "The cat of image 2 is in the upper-right quarter of the frame, higher than the cup.",
                "The cat appears larger than the cup.",
            ],
            soft=["A shelf or ledge is visible under the cat."],
            expect=["diagonal arrangement from lower left to upper right", "no overlap between cat and cup"],
        ),
        CaseSpec(
            refs=["coin", "helmet", "coffee_cup"],
            prompt=(
                "On a plain white tabletop, arrange three objects in one horizontal row, evenly spaced, from left "
                "to right: the silver coin from image 1, the space helmet from image 2, the red espresso cup from "
                "image 3. The helmet is in the centre and is the largest of the three."
            ),
            goal=(
                "Coin, helmet and cup of images 1-3 stand in one left-to-right row on a white table, helmet central "
                "and largest."
            ),
            hard=[
                "Left to right the order is: coin, helmet, cup.",
                "All three objects rest on the same tabletop line (one horizontal row).",
                "The helmet is in the middle and is the largest object.",
            ],
            soft=["The gaps between neighbouring objects are about equal.", "The tabletop is plain white."],
            expect=["three objects, no duplicates", "each object keeps its look from its reference"],
        ),
        CaseSpec(
            refs=["rocket", "horse"],
            prompt=(
                "The rocket from image 1 stands upright in the left third of the picture; the chestnut horse from "
                "image 2 stands in the right third on the same ground line, facing left towards the rocket."
            ),
            goal=(
                "Rocket of image 1 upright in the left third, horse of image 2 in the right third facing it, same "
                "ground line."
            ),
            hard=[
                "The rocket is vertical and in the left third of the frame.",
                "The horse is in the right third of the frame.",
                "The horse's head points left, towards the rocket.",
            ],
            soft=["The rocket's base and the horse's hooves are on one ground line."],
            expect=["the rocket is much taller than the horse", "clear empty space between the two"],
        ),
        CaseSpec(
            refs=["cat", "shuttle_model", "coin"],
            prompt=(
                "The tabby cat from image 1 lies on the floor at the bottom centre of the picture; the shuttle model "
                "from image 2 stands on a wall shelf directly above the cat's head; the coin from image 3 lies on the "
                "floor just to the right of the cat."
            ),
            goal=(
                "Cat of image 1 at bottom centre, shuttle model of image 2 on a shelf straight above it, coin of "
                "image 3 on the floor to its right."
            ),
            hard=[
                "The cat is at the bottom centre of the frame.",
                "The shuttle model is vertically above the cat's head, on a shelf.",
                "The coin lies on the floor to the right of the cat.",
            ],
            soft=["The shelf is fixed to a wall behind the cat."],
            expect=["three distinct objects", "coin much smaller than the cat"],
        ),
        CaseSpec(
            refs=["cameraman", "cat"],
            prompt=(
                "Put the man with the camera and tripod from image 1 in the right half of the picture, pointing the "
                "camera to the left at the tabby cat from image 2, which sits in the left half closer to the viewer, "
                "so it appears lower in the frame than the tripod's feet."
            ),
            goal=(
                "Cameraman of image 1 on the right filming leftwards; cat of image 2 on the left, nearer to the "
                "viewer."
            ),
            hard=[
                "The man and tripod are in the right half of the frame.",
                "The camera lens points left, towards the cat.",
                "The cat is in the left half and nearer to the viewer than the man.",
            ],
            soft=["The cat's base is lower in the frame than the tripod's feet."],
            expect=["the man's black coat from image 1", "the cat's stripes from image 2", "depth is readable"],
        ),
    ],
    "attribute_style_decoupling": [
        CaseSpec(
            refs=["cat", "style_sketch", "brick_wall"],
            prompt=(
                "Draw the tabby cat from image 1 in the black-on-white pencil line style of image 2, sitting in "
                "front of the brick wall of image 3. Draw the whole picture, wall included, in that line style; take "
                "nothing but the style from image 2."
            ),
            goal="A black-on-white line drawing of the cat of image 1 in front of a brick wall like image 3.",
            hard=[
                "The subject is the cat of image 1 (ear shape, whiskers, face markings recognisable).",
                "The picture is a line drawing: dark lines on white, no photographic colour or shading.",
                "The background shows a wall of long bricks laid in rows, as in image 3.",
                "The man, camera or tripod of image 2 do not appear.",
            ],
            expect=["clean outlines", "the cat is the clear centre of the picture"],
        ),
        CaseSpec(
            refs=["horse", "style_poster", "lawn"],
            prompt=(
                "Render the chestnut horse from image 1 in the flat poster style of image 2 (a few bold colours, "
                "hard edges, no gradients), standing on the green lawn of image 3."
            ),
            goal="A flat few-colour poster of the horse of image 1 standing on a lawn like image 3.",
            hard=[
                "The horse has the body shape and pose of image 1.",
                "Colours are flat areas with hard edges and few distinct tones, as in image 2.",
                "The horse stands on a green lawn as in image 3.",
                "No coffee cup, saucer or spoon from image 2 appears.",
            ],
            soft=["The lawn is rendered in the same poster style."],
            expect=["the horse is brown", "the lawn fills the lower part of the picture"],
        ),
        CaseSpec(
            refs=["coffee_cup", "style_mosaic", "starfield"],
            prompt=(
                "Show the red espresso cup and saucer from image 1 as blocky pixel art, with large square pixels "
                "like image 2, floating in the deep-space star field of image 3."
            ),
            goal="A pixel-art version of the cup of image 1 floating in a star field like image 3.",
            hard=[
                "The subject is the red cup with white inside on a red saucer from image 1.",
                "The cup is drawn with large visible square pixels, as in image 2.",
                "The background is a black sky with many small stars and galaxies, as in image 3.",
                "The astronaut of image 2 does not appear.",
            ],
            expect=["the cup is centred", "the cup keeps its red colour"],
        ),
        CaseSpec(
            refs=["astronaut", "style_stain", "gravel_path"],
            prompt=(
                "Paint the astronaut from image 1 in the look of image 2 (brown ink-like strokes with pale blue "
                "speckles on a cream ground), standing on the gravel ground of image 3."
            ),
            goal=(
                "The astronaut of image 1 painted in the brown-and-blue stained look of image 2, on gravel like "
                "image 3."
            ),
            hard=[
                "The figure is recognisably the astronaut of image 1 (hair, face, spacesuit with neck ring).",
                "The palette and texture are those of image 2: brown strokes, pale blue speckles, cream ground.",
                "She stands on small loose stones like image 3.",
            ],
            soft=["The stones are painted in the same style."],
            expect=["no photographic rendering", "the whole figure is visible"],
        ),
        CaseSpec(
            refs=["rocket", "style_emboss", "park"],
            prompt=(
                "Render the rocket from image 1 as a grey embossed metal relief in the style of image 2, standing "
                "upright on the open lawn with distant buildings of image 3."
            ),
            goal="The rocket of image 1 as a grey embossed relief, standing on the lawn of image 3.",
            hard=[
                "The subject is the slim white rocket with its rounded nose fairing from image 1, upright.",
                "The rendering is an embossed grey relief with raised edges, as in image 2.",
                "The setting is an open lawn with low buildings on the horizon, as in image 3.",
                "No coins from image 2 appear.",
            ],
            expect=["the rocket dominates the picture", "grey monochrome throughout"],
        ),
    ],
    "local_element_transfer": [
        CaseSpec(
            refs=["helmet", "cat"],
            prompt=(
                "Put the white space helmet from image 1 on the head of the tabby cat in image 2, with the visor "
                "raised so the cat's face stays visible. Change nothing else in image 2."
            ),
            goal="The cat of image 2 wearing the white space helmet of image 1 with its face visible.",
            hard=[
                "The cat keeps its face, eyes and stripes from image 2.",
                "The helmet is the white helmet of image 1, sitting on the cat's head.",
                "The cat's face is visible, not hidden behind the visor.",
            ],
            soft=["The background and framing of image 2 are unchanged."],
            expect=["helmet scaled to the cat's head", "no extra limbs or second cat"],
        ),
        CaseSpec(
            refs=["astronaut", "cameraman"],
            prompt=(
                "Sew the round mission patch from the astronaut's suit in image 1 onto the chest of the man's "
                "black coat in image 2. Keep the man, his camera, the tripod and the park as they are."
            ),
            goal="The cameraman of image 2 with the round mission patch of image 1 on the chest of his coat.",
            hard=[
                "The round dark-blue patch with a purple rim and a space shuttle from image 1 is on the man's coat.",
                "The patch sits on the chest of the coat, not on the background or the camera.",
                "The man, camera and tripod of image 2 are otherwise unchanged.",
            ],
            soft=["The patch is patch-sized (smaller than his hand span)."],
            expect=["the astronaut herself does not appear", "coat folds continue around the patch"],
        ),
        CaseSpec(
            refs=["flag", "rocket"],
            prompt=(
                "Paint the striped flag from image 1 on the white body of the rocket in image 2, upright, about a "
                "third of the way down from the nose. Keep the launch pad and the dusk sky of image 2."
            ),
            goal="The rocket of image 2 with the striped flag of image 1 painted on its body.",
            hard=[
                "A red-and-white striped flag with a blue field of stars is painted on the rocket body.",
                "The flag is on the upper third of the rocket body, below the nose.",
                "The rocket and the dusk launch site keep their look from image 2.",
            ],
            soft=["The flag follows the curve of the rocket body."],
            expect=["the flag is small relative to the rocket", "the rocket remains upright"],
        ),
        CaseSpec(
            refs=["astronaut", "coin", "cat"],
            prompt=(
                "Dress the tabby cat from image 3 in the orange spacesuit from image 1, with its metal neck ring, and "
                "hang the silver coin from image 2 on a cord around the cat's neck as a medallion. Keep the cat's "
                "face exactly as in image 3."
            ),
            goal="The cat of image 3 wearing the orange spacesuit of image 1 and the coin of image 2 as a medallion.",
            hard=[
                "The cat's face matches image 3 (stripes, green eyes, pink nose).",
                "The cat wears an orange spacesuit with a metal neck ring like image 1.",
                "The silver coin of image 2 hangs at the cat's chest.",
            ],
            soft=["The coin hangs on a visible cord or chain."],
            expect=["no human face in the picture", "suit scaled to the cat's body"],
        ),
        CaseSpec(
            refs=["cat", "coin", "coffee_cup"],
            prompt=(
                "Cover the outside of the red espresso cup in image 3 with the striped tabby fur pattern of the cat "
                "in image 1, and fix the coin from image 2 on the front of the cup as an emblem. Keep the saucer, "
                "spoon and coffee of image 3 unchanged."
            ),
            goal="The espresso cup of image 3 with tabby-fur outside and the coin of image 2 on its front.",
            hard=[
                "The outer wall of the cup shows the brown-grey tabby stripes of image 1 instead of plain red.",
                "The coin of image 2 sits on the front of the cup.",
                "Saucer, spoon and coffee keep their look from image 3.",
            ],
            soft=["The inside of the cup stays white."],
            expect=["the cat itself does not appear", "the cup keeps its shape and handle"],
        ),
    ],
    "foreground_background_composition": [
        CaseSpec(
            refs=["cat", "starfield"],
            prompt=(
                "Put the tabby cat from image 1 into the deep-space star field of image 2, floating in the centre "
                "of the picture, and keep the black sky full of small stars and galaxies around it."
            ),
            goal="The cat of image 1 floating in the centre of the star field of image 2.",
            hard=[
                "The cat is the tabby of image 1 (stripes, green eyes).",
                "The background is the black star field of image 2, with many small coloured galaxies.",
            ],
            soft=["The cat is lit softly, without a hard studio backdrop."],
            expect=["cat centred", "no ground or horizon"],
        ),
        CaseSpec(
            refs=["astronaut", "park"],
            prompt=(
                "Place the astronaut from image 1 standing on the lawn of the park in image 2, at a believable "
                "size relative to the distant buildings. Keep the park of image 2 as the background."
            ),
            goal="The astronaut of image 1 standing on the park lawn of image 2.",
            hard=[
                "The astronaut keeps her face, hair and orange spacesuit from image 1.",
                "The background is the open lawn with low buildings on the horizon of image 2.",
            ],
            soft=["She casts a shadow on the lawn.", "The astronaut stays in colour while the park may stay grey."],
            expect=["feet or lower body on the lawn, not floating", "buildings stay small and distant"],
        ),
        CaseSpec(
            refs=["horse", "launch_site"],
            prompt=(
                "Place the chestnut horse from image 1 in the foreground of the launch site at dusk in image 2, "
                "standing on the ground in front of the rocket and lit by the pad's lights."
            ),
            goal="The horse of image 1 standing in the foreground of the dusk launch site of image 2.",
            hard=[
                "The horse has the shape and chestnut colour of image 1.",
                (
                    "The background is the launch site of image 2: rocket between lattice towers, dusk sky, bright "
                    "lamps."
                ),
            ],
            soft=["The horse is lit warmly from the side by the lamps."],
            expect=["horse standing, all four legs on the ground", "rocket stays behind the horse"],
        ),
        CaseSpec(
            refs=["coffee_cup", "brick_wall"],
            prompt=(
                "Set the red espresso cup and saucer from image 1 on a narrow ledge in front of the terracotta brick "
                "wall of image 2, with the wall filling the background."
            ),
            goal="The cup and saucer of image 1 on a ledge in front of the brick wall of image 2.",
            hard=[
                "The cup and saucer keep their red colour, white inside and spoon from image 1.",
                "The background is the terracotta brick wall of image 2 with its long bricks in rows.",
            ],
            soft=["The cup casts a shadow on the ledge."],
            expect=["the cup rests on a surface", "bricks in sharp focus or lightly blurred"],
        ),
        CaseSpec(
            refs=["shuttle_model", "gravel_path"],
            prompt=(
                "Stand the space-shuttle model from image 1 upright on the gravel ground of image 2, casting a "
                "shadow on the stones."
            ),
            goal="The shuttle model of image 1 standing upright on the gravel of image 2.",
            hard=[
                "The model has the white orbiter, rust-orange tank and two white boosters of image 1.",
                "The ground is the small loose gravel of image 2.",
            ],
            soft=["The model casts a shadow on the gravel."],
            expect=["the model stands upright", "stones visible around its base"],
        ),
    ],
    "story_infer": [
        CaseSpec(
            refs=["story:ball:0", "story:ball:1", "story:ball:2"],
            prompt=_story_prompt(3),
            goal="The next frame: the red ball has landed on the floor to the right of the table.",
            hard=[
                "Same flat drawing style, table and floor as the three frames.",
                "The red ball is on or just above the floor, to the right of the table.",
                "The table is unchanged.",
            ],
            soft=["The ball is a little further right than in image 3."],
            expect=["one red ball only", "no hand or person added"],
            dims=list(STORY_DIMS),
            answer={
                "background_summary": (
                    "A red ball rolls along a wooden table (image 1), reaches the table's right edge (image 2) "
                    "and falls past it (image 3)."
                ),
                "positive": [
                    "The red ball lies on the floor to the right of the table.",
                    "The red ball bounces up slightly from the floor to the right of the table.",
                    "The red ball rolls along the floor away from the table, to the right.",
                ],
                "negative": [
                    "The red ball is back on top of the table.",
                    "The red ball is higher in the air than in image 3, rising away from the floor.",
                    "The red ball has vanished, or has turned into a different object.",
                ],
            },
        ),
        CaseSpec(
            refs=["story:candle:0", "story:candle:1", "story:candle:2"],
            prompt=_story_prompt(3),
            goal="The next frame: the candle has burned down to a short stub or gone out, with more melted wax.",
            hard=[
                "Same dark background, shelf and dish as the three frames.",
                "The candle is shorter than in image 3, or has burned out completely.",
                "The wax puddle on the dish is at least as large as in image 3.",
            ],
            soft=["A thin line of smoke rises if the flame is out."],
            expect=["one candle only", "the dish stays in place"],
            dims=list(STORY_DIMS),
            answer={
                "background_summary": (
                    "A lit white candle on a dish burns down over three frames, getting shorter while a puddle of "
                    "melted wax grows on the dish."
                ),
                "positive": [
                    "The candle is a very short stub, still burning, with a larger wax puddle.",
                    "The candle has burned out: only a flat wax puddle and a bent wick remain.",
                    "The flame has just gone out and a thin trail of smoke rises from the stub.",
                ],
                "negative": [
                    "The candle is taller than in image 3.",
                    "A new full-length candle stands on the dish.",
                    "The wax puddle has disappeared while the candle keeps burning.",
                ],
            },
        ),
        CaseSpec(
            refs=["story:plant:0", "story:plant:1"],
            prompt=_story_prompt(2),
            goal="The next frame: the plant in the clay pot is taller, with more leaves than in image 2.",
            hard=[
                "Same clay pot, table and pale sky as the two frames.",
                "The stem is taller than in image 2.",
                "There are more leaves than in image 2.",
            ],
            soft=["A bud or small flower appears at the top."],
            expect=["the plant still grows from the same pot", "leaves stay green"],
            dims=list(STORY_DIMS),
            answer={
                "background_summary": (
                    "A seedling with two leaves grows in a clay pot (image 1); later it has a taller stem with "
                    "four leaves (image 2)."
                ),
                "positive": [
                    "The plant has a taller stem and six or more leaves.",
                    "The taller plant has grown a bud at its tip.",
                    "The plant is taller and flowers at the top.",
                ],
                "negative": [
                    "The plant is smaller than in image 2, back to a sprout.",
                    "The pot is empty.",
                    "The plant has wilted and dropped its leaves.",
                ],
            },
        ),
        CaseSpec(
            refs=["story:sunset:0", "story:sunset:1", "story:sunset:2"],
            prompt=_story_prompt(3),
            goal="The next frame: the sun is partly or fully hidden behind the hills and the sky is darker.",
            hard=[
                "Same two green hills and framing as the three frames.",
                "The sun is lower than in image 3: partly or fully behind the hills.",
                "The sky is darker or redder than in image 3.",
            ],
            soft=["First stars may appear in the darkening sky."],
            expect=["the hills are unchanged", "no second sun"],
            dims=list(STORY_DIMS),
            answer={
                "background_summary": (
                    "Over three frames the sun sinks from high in a blue sky to the tops of two green hills while "
                    "the sky turns yellow and then orange."
                ),
                "positive": [
                    "Only the top half of the sun shows above the hills, under a red-purple sky.",
                    "The sun has set behind the hills; the sky is dark purple with an orange glow at the horizon.",
                    "The sun is gone and the first stars appear in a dark blue sky.",
                ],
                "negative": [
                    "The sun is high in a bright blue sky again.",
                    "The sun is higher than in image 3.",
                    "It is bright midday while the sun touches the hills.",
                ],
            },
        ),
        CaseSpec(
            refs=["story:blocks:0", "story:blocks:1"],
            prompt=_story_prompt(2),
            goal="The next frame: a fourth block has been added on top of the red-blue-green tower.",
            hard=[
                "Same floor, wall and block size as the two frames.",
                "The tower has four blocks, red at the bottom, then blue, then green.",
                "The new block sits on top of the green block.",
            ],
            soft=["The new block has a colour not yet used (for example yellow)."],
            expect=["the tower stays upright", "blocks stay aligned"],
            dims=list(STORY_DIMS),
            answer={
                "background_summary": (
                    "A tower of wooden blocks grows one block per frame: red and blue (image 1), then red, blue "
                    "and green (image 2)."
                ),
                "positive": [
                    "A fourth block sits on top of the green block, making a tower of four.",
                    "A yellow block is placed on top of the green block.",
                    "The tower has four blocks in the order red, blue, green and a new colour.",
                ],
                "negative": [
                    "The tower has fewer blocks than in image 2.",
                    "The tower has collapsed and the blocks lie scattered on the floor.",
                    "The order of the existing blocks has changed.",
                ],
            },
        ),
    ],
}


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


def check_case(folder: str, case_id: str, spec: CaseSpec) -> None:
    """Catch authoring mistakes before anything is written."""
    task, counts = TASKS[folder]
    n = len(spec.refs)
    problems = []
    if n not in counts:
        problems.append(f"refs: {n} references, task allows {counts}")
    if not 2 <= len(spec.hard) <= 4:
        problems.append(f"constraints_hard: {len(spec.hard)} items, need 2-4")
    if len(spec.soft) > 3:
        problems.append(f"constraints_soft: {len(spec.soft)} items, at most 3")
    if not 2 <= len(spec.expect) <= 4:
        problems.append(f"expectation_list: {len(spec.expect)} items, need 2-4")
    if not set(spec.dims) <= set(STORY_DIMS if folder == "story_infer" else COMPOSITION_DIMS):
        problems.append(f"participating_dimensions: {spec.dims} not allowed for {task}")
    for k in range(1, n + 2):
        mentioned = re.search(rf"\bimage {k}\b", spec.prompt, re.IGNORECASE) is not None
        if mentioned != (k <= n):
            problems.append(f"generation_prompt: 'image {k}' {'missing' if k <= n else 'names no reference'}")
    if (spec.answer is not None) != (folder == "story_infer"):
        problems.append("answer set: required for story cases only")
    if problems:
        raise SampleBuildError(f"task {task!r}, case {case_id!r}: " + "; ".join(problems))


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


def build(out: Path) -> list[Path]:
    """Write the whole sample under ``out``; returns the files written, sorted."""
    for folder, specs in CASES.items():
        for i, spec in enumerate(specs, start=1):
            check_case(folder, f"{folder}_{i:04d}", spec)
    prepare_out_dir(out)
    cache: dict[str, Image.Image] = {}
    written: list[Path] = []
    answer_sets: list[dict[str, object]] = []
    for folder, specs in CASES.items():
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
    readme.write_text(render_readme(), "utf-8")
    written.append(readme)
    return sorted(written)


def render_readme() -> str:
    lines = [
        "# MICON-Bench sample split",
        "",
        "A small stand-in for the MICON-Bench data (CVPR 2026) in the official raw layout, so the harness, its",
        "tests and the offline demo run without downloading the benchmark. **It is not benchmark data**: the",
        "cases were written for this project and scores on it are not comparable with the paper's.",
        "",
        "Generated by `python scripts/build_sample.py` (do not edit by hand; edit the script and rebuild). The",
        "script needs only Pillow, PyYAML and an installed scikit-image, never the network, and writes the same",
        "bytes on every run.",
        "",
        "## Contents",
        "",
        "| official folder | task | cases | references per case |",
        "|---|---|---|---|",
    ]
    for folder, specs in CASES.items():
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
        files = build(args.out)
    except SampleBuildError as exc:
        print(f"build_sample: error: {exc}", file=sys.stderr)
        return 2
    total = sum(p.stat().st_size for p in files)
    n_cases = sum(len(v) for v in CASES.values())
    print(f"wrote {len(files)} files ({n_cases} cases, {total / 1e6:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
