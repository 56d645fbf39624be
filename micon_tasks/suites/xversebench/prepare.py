"""``micon prepare xversebench``: build the local XVerseBench folder from the user's own files.

Inputs: an XVerse checkout (``eval/tools/XVerseBench_{single,multi}.json``, the ``*_DSG.json`` question
files and the 20 human face crops in ``assets/XVerseBench/human/``) and the object / animal images as
the authors' preparation leaves them (``<images>/object/NN_label.jpg``, ``<images>/animal/...``; by
default ``<checkout>/assets/XVerseBench``). Every case is checked first and every missing or unreadable
image is listed by case; nothing is written unless all of them are usable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from micon_tasks.errors import DataSourceError
from micon_tasks.suites.xversebench.data import SPLITS, SUBJECT_TYPES, validate_row, write_folder

__all__ = ["add_cli", "collect", "prepare", "CASE_FILE", "DSG_FILE"]

CASE_FILE = "eval/tools/XVerseBench_{split}.json"
DSG_FILE = "eval/tools/XVerseBench_{split}_DSG.json"
HUMAN_DIR = "assets/XVerseBench/human"


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise DataSourceError(f"{path} is missing: is --xverse a checkout of bytedance/XVerse?") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataSourceError(f"cannot read {path}: {exc}") from None


def _check_image(path: Path) -> str | None:
    """None when ``path`` is a decodable image, else why not."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        return f"missing ({path})"
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, UnidentifiedImageError) as exc:
        return f"unreadable ({path}: {exc})"
    return None


def _case_rows(split: str, cases: Any, dsg: Any, *, checkout: Path, images: Path, problems: list[str],
               files: dict[str, Path]) -> list[dict[str, Any]]:
    task = f"xversebench_{split}"
    if not isinstance(cases, list) or not isinstance(dsg, list):
        raise DataSourceError(f"{split}: the case and DSG files must both be JSON lists")
    if len(cases) != len(dsg):
        raise DataSourceError(f"{split}: {len(cases)} cases but {len(dsg)} DSG question entries")
    rows = []
    for pos, (case, q) in enumerate(zip(cases, dsg)):
        index = case.get("index", pos) if isinstance(case, dict) else pos
        where = f"{split} case {index}"
        try:
            mod = case["modulation"][0]
            inputs, words = mod["src_inputs"], mod["use_words"]
            if len(inputs) != len(words):
                raise ValueError(f"{len(inputs)} src_inputs but {len(words)} use_words")
            if q.get("prompt") != case["prompt"]:
                raise ValueError("the DSG entry's prompt differs from the case prompt")
            subjects = []
            for k, (inp, word) in enumerate(zip(inputs, words)):
                src = PurePosixPath(str(inp["image_path"]))
                kind = src.parent.name
                if kind not in SUBJECT_TYPES or ".." in src.parts:
                    raise ValueError(f"src_inputs[{k}].image_path {str(src)!r}: expected .../<human|object|animal>/<file>")
                base = checkout / HUMAN_DIR if kind == "human" else images / kind
                rel = f"images/{kind}/{src.name}"
                if rel not in files:
                    files[rel] = base / src.name
                    if why := _check_image(files[rel]):
                        problems.append(f"{where}: reference {k} ({kind}/{src.name}) is {why}")
                subjects.append({"image": rel, "type": kind, "label": str(word[1]), "caption": str(inp.get("caption") or "")})
            deps = q["qid2dependency"]
            questions = [{"id": str(qid), "question": str(text), "parents": [str(p) for p in deps.get(str(qid), [0])],
                          "tuple": str(q.get("qid2tuple", {}).get(str(qid), ""))}
                         for qid, text in q["qid2question"].items()]
            row = {"case_id": f"{split}_{int(index):03d}", "index": int(index), "prompt": case["prompt"],
                   "subjects": subjects, "questions": questions}
            validate_row(row, task=task)
            rows.append(row)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            problems.append(f"{where}: cannot read the case ({type(exc).__name__}: {exc})")
    return rows


def collect(checkout: str | Path, images: str | Path | None = None) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Path], dict[str, Any]]:
    """(rows per split, image files by their path in the folder, source record); every problem raised at once."""
    checkout = Path(checkout).expanduser().resolve()
    images = Path(images).expanduser().resolve() if images else checkout / "assets" / "XVerseBench"
    problems: list[str] = []
    files: dict[str, Path] = {}
    splits, digests = {}, {}
    for split in SPLITS:
        paths = [checkout / CASE_FILE.format(split=split), checkout / DSG_FILE.format(split=split)]
        cases, dsg = (_load_json(p) for p in paths)
        splits[split] = _case_rows(split, cases, dsg, checkout=checkout, images=images, problems=problems, files=files)
        digests.update({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths})
    if problems:
        head = f"XVerseBench cannot be prepared: {len(problems)} problem(s); nothing was written"
        raise DataSourceError("\n  ".join([head, *problems]))
    source = {"xverse_checkout": str(checkout), "images": str(images), "files_sha256": digests,
              "xverse_commit": _git_head(checkout)}
    return splits, files, source


def _git_head(checkout: Path) -> str | None:
    """The checkout's commit, read from .git without running git (None when unknown)."""
    head = checkout / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (checkout / ".git" / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return None


def prepare(checkout: str | Path, images: str | Path | None, output: str | Path, *, overwrite: bool = False) -> Path:
    splits, files, source = collect(checkout, images)
    blobs = {rel: path.read_bytes() for rel, path in files.items()}
    return write_folder(output, splits, blobs, source, overwrite=overwrite)


def _cmd(args: argparse.Namespace) -> int:
    out = prepare(args.xverse, args.images, args.output, overwrite=args.overwrite)
    print(f"XVerseBench prepared in {out}; run it with --tasks xversebench --source {out}")
    return 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``micon prepare xversebench`` (creating the ``prepare`` command if no suite made it yet)."""
    prepare_parser = sub.choices.get("prepare")
    if prepare_parser is None:
        prepare_parser = sub.add_parser("prepare", help="build a suite's local data folder from your copy of its files")
        prepare_parser.set_defaults(func=lambda a: prepare_parser.print_help() or 2)
        suites = prepare_parser.add_subparsers(dest="suite", metavar="SUITE")
    else:
        suites = next(a for a in prepare_parser._actions if isinstance(a, argparse._SubParsersAction))
    p = suites.add_parser("xversebench", help="XVerseBench from an XVerse checkout and the prepared DreamBench++ images")
    p.add_argument("--xverse", required=True, help="a checkout of github.com/bytedance/XVerse")
    p.add_argument("--images", default=None,
                   help="folder holding object/ and animal/ as the authors' preparation leaves them "
                        "(default: <checkout>/assets/XVerseBench)")
    p.add_argument("--output", "-o", default="xversebench", help="folder to write (default ./xversebench)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_cmd)
