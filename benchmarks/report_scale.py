"""``micon report`` at the full benchmark's size: build time cold and warm, page-open time in Chromium.

Makes (once, deterministically, under --workdir, never committed) a raw-layout dataset with the
paper's case counts (1043 cases: 200/200/100/240/200/103) and synthetic references, then two finished
runs of those cases through the real pipeline: ``collage`` and ``first_ref`` at --gen_size, judged by
the loopback fake judge (each run its own verdicts). About 2,500 references + 2 x 1043 generated
images, all distinct. Then it times, each in a fresh process:

- the cold build (an empty REPORT_DIR: every thumbnail made), target < 180 s on 2 cores;
- the warm build (the same REPORT_DIR again), target < 20 s;
- opening index.html in headless Chromium until every card is in the DOM and the first frame after
  that is painted, target < 3 s.

    python benchmarks/report_scale.py [--workdir out/bench-report] [--ref_size 768] [--gen_size 1024]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

COUNTS = {  # task -> (official folder, cases, references per case)
    "object_composition": ("object_composition", 200, (2, 3)),
    "spatial_composition": ("spatial_geometric_constraints", 200, (2, 3)),
    "attribute_disentanglement": ("attribute_style_decoupling", 100, (3, 3)),
    "component_transfer": ("local_element_transfer", 240, (2, 3)),
    "fgbg_composition": ("foreground_background_composition", 200, (2, 2)),
    "story_generation": ("story_infer", 103, (2, 3)),
}


def _picture(seed: int, size: int) -> bytes:
    """A deterministic picture with gradients and shapes (PNG), so decoding and resizing do real work."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    im = Image.linear_gradient("L").resize((size, size)).rotate(rng.randrange(360)).convert("RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x, y, r = rng.randrange(size), rng.randrange(size), rng.randrange(size // 16, size // 4)
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x - r, y - r, x + r, y + r), fill=fill)
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _write_picture(args: tuple[str, int, int]) -> None:
    path, seed, size = args
    Path(path).write_bytes(_picture(seed, size))


def make_dataset(root: Path, ref_size: int) -> int:
    """The raw layout; returns the number of reference images."""
    import yaml

    jobs, story = [], []
    for t_index, (task, (folder, n, (lo, hi))) in enumerate(COUNTS.items()):
        (root / folder / "cases").mkdir(parents=True, exist_ok=True)
        (root / folder / "refs").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            cid = f"{folder}_{i + 1:04d}"
            refs = {}
            for r in range(lo if i % 2 else hi):
                role = "R" + "ABC"[r]
                rel = f"{folder}/refs/{cid}_{role}.png"
                jobs.append((str(root / rel), t_index * 100_000 + i * 10 + r, ref_size))
                refs[role] = rel
            card = {"case_id": cid, "task_type": folder, "refs": refs,
                    "generation_prompt": f"Put the subject of image 1 into the scene of image 2 (case {i + 1} of {task}).",
                    "goal": "One coherent picture holding every referenced subject.",
                    "constraints_hard": ["Every referenced subject is recognisable."],
                    "constraints_soft": ["Consistent lighting."]}
            (root / folder / "cases" / f"{cid}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
            if task == "story_generation":
                story.append({"case_id": cid, "background_summary": "Frames of a short story.",
                              "positive_candidates": ["the story goes on"], "negative_candidates": ["an unrelated scene"]})
    (root / "story_infer" / "simple_candidate_template.json").write_text(json.dumps({"cases": story}))
    with ProcessPoolExecutor() as pool:
        list(pool.map(_write_picture, jobs, chunksize=32))
    return len(jobs)


def make_runs(work: Path, ref_size: int, gen_size: int) -> list[Path]:
    from test_webreport_helpers import salted_reply

    from micon_tasks import evaluate
    from micon_tasks.runner.pipeline import find_model_dir

    data = work / "data"
    if not (work / "data.done").exists():
        shutil.rmtree(data, ignore_errors=True)
        t = time.perf_counter()
        n_refs = make_dataset(data, ref_size)
        (work / "data.done").write_text(str(n_refs))
        print(f"dataset: {n_refs} references of {ref_size}x{ref_size} px in {time.perf_counter() - t:.0f} s")
    runs = []
    from fake_judge_server import FakeJudgeServer

    for model in ("collage", "first_ref"):
        out = work / "runs" / model
        if not (out / "done").exists():
            t = time.perf_counter()
            with FakeJudgeServer(salted_reply(model)) as srv:
                evaluate(model=model, model_args={"width": gen_size, "height": gen_size}, tasks=["micon"],
                         source=str(data), output_path=out, judge="openai", progress=False, overwrite=True,
                         judge_args={"base_url": srv.base_url, "model": "fake", "concurrency": 16})
            (out / "done").write_text("")
            print(f"run {model}: made in {time.perf_counter() - t:.0f} s")
        runs.append(find_model_dir(out))
    return runs


def timed_build(runs: list[Path], report: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "micon_tasks", "report", *map(str, runs), "-o", str(report)],
                         env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(f"micon report failed:\n{res.stderr}")
    print("   ", res.stdout.strip().splitlines()[-1])
    return elapsed


def open_page(index: Path, chromium: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        t = time.perf_counter()
        page.goto(index.as_uri())
        page.wait_for_selector("body[data-painted]", timeout=120_000)
        wall = time.perf_counter() - t
        ready_ms = float(page.evaluate("() => document.body.dataset.painted"))
        n_cards = page.locator("#cards .card").count()
        page.wait_for_selector("body[data-compare-done]", timeout=120_000)
        rows_s = time.perf_counter() - t
        n_rows = page.locator("#compare-list .cmp").count()
        n_nodes = page.evaluate("() => document.getElementsByTagName('*').length")
        phases = page.evaluate("() => performance.getEntriesByType('mark').filter(m => m.name.startsWith('micon:'))"
                               ".map(m => [m.name.slice(6), Math.round(m.startTime)])")
        browser.close()
    return {"wall_s": wall, "rows_s": rows_s, "ready_ms": ready_ms, "cards": n_cards, "compare_rows": n_rows, "dom_nodes": n_nodes,
            "phases": ", ".join(f"{k} {v} ms" for k, v in phases)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(ROOT / "out" / "bench-report"), help="kept between runs (data, runs, report)")
    ap.add_argument("--ref_size", type=int, default=768, help="reference image side, px (default 768)")
    ap.add_argument("--gen_size", type=int, default=1024, help="generated image side, px (default 1024)")
    ap.add_argument("--chromium", default=os.environ.get("MICON_CHROMIUM") or shutil.which("chromium"))
    args = ap.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MICON_CACHE_DIR", str(work / "cache"))
    runs = make_runs(work, args.ref_size, args.gen_size)
    images = sum(1 for r in runs for _ in (r / "images").rglob("*.png")) + int((work / "data.done").read_text())
    report = work / "report"
    shutil.rmtree(report, ignore_errors=True)
    print(f"report of {len(runs)} runs x 1043 cases, {images} source images "
          f"(references {args.ref_size} px, generated {args.gen_size} px), {len(os.sched_getaffinity(0))} CPU cores")
    cold = timed_build(runs, report)
    print(f"cold build: {cold:.1f} s (target < 180 s)")
    warm = timed_build(runs, report)
    print(f"warm build: {warm:.1f} s (target < 20 s)")
    index = report / "index.html"
    thumbs = list((report / "assets" / "thumbs").glob("*.webp"))
    print(f"index.html: {index.stat().st_size / 1e6:.1f} MB; thumbnails: {len(thumbs)} files, "
          f"{sum(p.stat().st_size for p in thumbs) / 1e6:.0f} MB")
    if not args.chromium:
        print("page open: not measured (no chromium; install it or pass --chromium)")
        return 0
    opened = [open_page(index, args.chromium) for _ in range(2)]
    for o in opened:
        print(f"page open: {o['wall_s']:.2f} s to every card in the DOM ({o['cards']} cards, {o['compare_rows']} "
              f"run-vs-run rows, {o['dom_nodes']} elements; painted {o['ready_ms']:.0f} ms after navigation start: {o['phases']}; every run-vs-run row in the DOM "
              f"after {o['rows_s']:.2f} s) (target < 3 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
