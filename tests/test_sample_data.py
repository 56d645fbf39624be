"""The bundled sample split (micon_tasks/sample): layout, card fields, images, answer set, determinism.

Reads the files directly (stdlib, PyYAML, Pillow only) so it checks the data itself, independently of
the project's reader; the determinism tests run scripts/build_sample.py in a subprocess.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "micon_tasks" / "sample"
SCRIPT = ROOT / "scripts" / "build_sample.py"
ANSWER_SET = SAMPLE / "story_infer" / "simple_candidate_template.json"
ROLES = ("RA", "RB", "RC")
# official folder -> allowed reference counts (PROTOCOL 1)
FOLDERS: dict[str, tuple[int, ...]] = {
    "object_composition": (2, 3),
    "spatial_geometric_constraints": (2, 3),
    "attribute_style_decoupling": (3,),
    "local_element_transfer": (2, 3),
    "foreground_background_composition": (2,),
    "story_infer": (2, 3),
}
REQUIRED = (
    "case_id",
    "task_type",
    "refs",
    "generation_prompt",
    "goal",
    "constraints_hard",
    "constraints_soft",
    "expectation_list",
    "participating_dimensions",
)
MAX_BYTES = 5_000_000


def _card_paths() -> list[Path]:
    return sorted(SAMPLE.glob("*/cases/*.yaml"))


def _load(path: Path) -> dict:
    card = yaml.safe_load(path.read_text("utf-8"))
    assert isinstance(card, dict), f"{path.name}: a task card must be a mapping"
    return card


def _cards_by_folder() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {f: [] for f in FOLDERS}
    for path in _card_paths():
        out.setdefault(path.parent.parent.name, []).append(_load(path))
    return out


def _confined(rel: str) -> Path:
    pure = PurePosixPath(rel)
    assert not pure.is_absolute() and ".." not in pure.parts, f"{rel!r} must be a relative path inside the root"
    resolved = (SAMPLE / pure).resolve()
    assert resolved.is_relative_to(SAMPLE.resolve()), f"{rel!r} leads outside the sample root"
    return resolved


def test_sample_root_has_only_the_official_folders():
    assert SAMPLE.is_dir(), "micon_tasks/sample is missing: run python scripts/build_sample.py"
    assert {p.name for p in SAMPLE.iterdir()} == set(FOLDERS) | {"README.md"}


@pytest.mark.parametrize("card_path", _card_paths(), ids=lambda p: p.stem)
def test_card_fields_and_refs(card_path: Path):
    folder = card_path.parent.parent.name
    card = _load(card_path)
    where = f"{folder}/{card_path.name}"
    missing = [f for f in REQUIRED if f not in card]
    assert not missing, f"{where}: missing fields {missing}"
    assert card["case_id"] == card_path.stem, f"{where}: case_id differs from the file name"
    assert card["task_type"] == folder, f"{where}: task_type {card['task_type']!r} is not the folder name"
    for key in ("generation_prompt", "goal"):
        assert isinstance(card[key], str) and card[key].strip(), f"{where}: {key} must be a non-empty string"
    lengths = {"constraints_hard": (2, 4), "constraints_soft": (0, 3), "expectation_list": (2, 4)}
    for key, (lo, hi) in lengths.items():
        items = card[key]
        assert isinstance(items, list) and lo <= len(items) <= hi, f"{where}: {key} needs {lo}-{hi} items"
        assert all(isinstance(s, str) and s.strip() for s in items), f"{where}: {key} items must be strings"
    dims = card["participating_dimensions"]
    allowed_dims = set("ABCDEG") if folder == "story_infer" else set("ABCDG")
    assert dims and set(dims) <= allowed_dims, f"{where}: participating_dimensions {dims}"
    if "notes" in card:
        assert isinstance(card["notes"], str), f"{where}: notes must be a string"

    refs = card["refs"]
    assert isinstance(refs, dict), f"{where}: refs must be a mapping RA, RB, RC -> path"
    n = len(refs)
    assert list(refs) == list(ROLES[:n]), f"{where}: refs keys {list(refs)} must be RA, RB[, RC] in order"
    assert n in FOLDERS[folder], f"{where}: {n} references, allowed {FOLDERS[folder]}"
    for role, rel in refs.items():
        path = _confined(rel)
        assert path.is_file(), f"{where}: refs.{role} {rel!r} does not exist"
        assert PurePosixPath(rel).parts[:2] == (folder, "refs"), f"{where}: refs.{role} is outside {folder}/refs"
        with Image.open(path) as im:
            im.load()
            assert im.format == "PNG" and im.mode == "RGB", f"{where}: refs.{role} is {im.format} {im.mode}"
            assert 64 <= max(im.size) <= 256, f"{where}: refs.{role} has size {im.size}"

    prompt = card["generation_prompt"]
    for k in range(1, n + 1):
        assert re.search(rf"\bimage {k}\b", prompt, re.I), f"{where}: the prompt never mentions image {k}"
    assert not re.search(rf"\bimage {n + 1}\b", prompt, re.I), f"{where}: the prompt names image {n + 1}"


def test_case_counts_and_unique_ids():
    cards = _cards_by_folder()
    assert set(cards) == set(FOLDERS), f"unexpected task folders: {sorted(set(cards) - set(FOLDERS))}"
    for folder, items in cards.items():
        assert len(items) >= 4, f"{folder}: {len(items)} cases, need at least 4"
    ids = [c["case_id"] for items in cards.values() for c in items]
    assert len(ids) >= 24
    assert len(ids) == len(set(ids)), "case ids must be unique across tasks"


def test_two_and_three_reference_mix():
    cards = _cards_by_folder()
    for folder, allowed in FOLDERS.items():
        counts = {len(c["refs"]) for c in cards[folder]}
        assert counts == set(allowed), f"{folder}: reference counts {sorted(counts)}, expected a mix of {allowed}"


def test_story_answer_set_covers_every_story_case():
    data = json.loads(ANSWER_SET.read_text("utf-8"))
    entries = data["cases"]
    by_id = {e["case_id"]: e for e in entries}
    assert len(by_id) == len(entries), "duplicate case ids in the answer set"
    story_ids = {c["case_id"] for c in _cards_by_folder()["story_infer"]}
    assert set(by_id) == story_ids
    for case_id, entry in by_id.items():
        assert isinstance(entry["background_summary"], str) and entry["background_summary"].strip(), case_id
        for key in ("positive_candidates", "negative_candidates"):
            items = entry[key]
            assert len(items) == 3 and all(isinstance(s, str) and s.strip() for s in items), f"{case_id}: {key}"
        assert not set(entry["positive_candidates"]) & set(entry["negative_candidates"]), case_id


def test_no_orphan_files_and_size_budget():
    referenced = {_confined(rel) for p in _card_paths() for rel in _load(p)["refs"].values()}
    files = {p.resolve() for p in SAMPLE.rglob("*") if p.is_file()}
    expected = referenced | {p.resolve() for p in _card_paths()}
    expected |= {ANSWER_SET.resolve(), (SAMPLE / "README.md").resolve()}
    assert files == expected, f"orphan files: {sorted(map(str, files - expected))}"
    total = sum(p.stat().st_size for p in files)
    assert total < MAX_BYTES, f"sample is {total} bytes, budget {MAX_BYTES}"


def test_pngs_carry_no_metadata_chunks():
    # Only IHDR/IDAT/IEND: no timestamps or text that would make rebuilds differ.
    for path in sorted(SAMPLE.glob("*/refs/*.png")):
        data = path.read_bytes()
        pos, chunks = 8, set()
        while pos < len(data):
            length = int.from_bytes(data[pos : pos + 4], "big")
            chunks.add(data[pos + 4 : pos + 8].decode("ascii"))
            pos += 12 + length
        assert chunks <= {"IHDR", "IDAT", "IEND"}, f"{path.name}: chunks {sorted(chunks)}"


def test_readme_records_every_source_image():
    readme = (SAMPLE / "README.md").read_text("utf-8")
    assert "licence" in readme.lower()
    named = set()
    for path in _card_paths():
        named |= set(re.findall(r"scikit-image (\S+\.(?:png|jpg))", _load(path).get("notes", "")))
    assert named, "cards' notes name no source images"
    for name in sorted(named):
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"README has no licence row for {name}"
        assert row.count("|") >= 5 and row.split("|")[3].strip(), f"README row for {name} lacks a licence"


def _build(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True, timeout=120, check=False
    )


def _tree(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def test_build_is_deterministic_and_matches_the_committed_sample(tmp_path: Path):
    pytest.importorskip("skimage", reason="scikit-image provides the source photographs of the sample")
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        result = _build(out)
        assert result.returncode == 0, result.stderr
    tree_a, tree_b, committed = _tree(first), _tree(second), _tree(SAMPLE)
    assert list(tree_a) == list(tree_b) == list(committed), "file lists differ"
    for rel, path in tree_a.items():
        assert path.read_bytes() == tree_b[rel].read_bytes(), f"{rel}: two builds differ"
    stale = []
    for rel, path in tree_a.items():
        if rel.endswith(".png"):
            # Pixels, not bytes: the PNG encoder's zlib may differ between Pillow builds.
            with Image.open(path) as fresh, Image.open(committed[rel]) as old:
                same = fresh.size == old.size and fresh.mode == old.mode and fresh.tobytes() == old.tobytes()
        else:
            same = path.read_bytes() == committed[rel].read_bytes()
        if not same:
            stale.append(rel)
    assert not stale, f"committed sample is stale ({stale[:5]}...): run python scripts/build_sample.py"


def test_build_refuses_to_wipe_a_foreign_directory(tmp_path: Path):
    keep = tmp_path / "precious.txt"
    keep.write_text("not sample data")
    (tmp_path / "object_composition").mkdir()
    result = _build(tmp_path)
    assert result.returncode != 0
    assert "refusing to wipe" in result.stderr and "precious.txt" in result.stderr
    assert keep.read_text() == "not sample data" and (tmp_path / "object_composition").is_dir()
