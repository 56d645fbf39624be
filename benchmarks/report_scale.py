"""``micon report`` at the full benchmark's size: build time cold and warm, page-open time in Chromium.

Makes (once, deterministically, under --workdir, never committed) the synthetic full-size benchmark of
``benchmarks/synthetic_benchmark.py`` (1043 cases, 2518 photograph-like reference PNGs), then two
finished runs of those cases through the real pipeline: ``collage`` (--gen_size square) and
``first_ref`` (--gen_size wide, 4:3), judged by the loopback fake judge (each run its own verdicts).
2518 references + 2 x 1043 generated images, all distinct. Then it times, each in a fresh process:

- the cold build (an empty REPORT_DIR: every thumbnail made), target < 180 s on 2 cores;
- the warm build (the same REPORT_DIR again), target < 20 s;
- opening index.html in headless Chromium until every card is in the DOM and the first frame after
  that is painted, target < 3 s.

    python benchmarks/report_scale.py [--workdir out/bench-report] [--ref_size 1024] [--gen_size 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

from micon_tasks.devices import cpu_cores  # noqa: E402


def make_runs(work: Path, ref_size: int, gen_size: int) -> list[Path]:
    from synthetic_benchmark import build
    from test_webreport_helpers import salted_reply

    from micon_tasks import evaluate
    from micon_tasks.runner.pipeline import find_model_dir

    data = work / f"data-{ref_size}"
    if not (data / "done").exists():
        t = time.perf_counter()
        build(data, size=ref_size, workers=cpu_cores())
        n_refs = sum(1 for _ in data.glob("*/refs/*.png"))
        (data / "done").write_text(str(n_refs))
        print(f"dataset: {n_refs} references of {ref_size}x{ref_size} px in {time.perf_counter() - t:.0f} s")
    runs = []
    from fake_judge_server import FakeJudgeServer

    # first_ref at a 4:3 size, so its images differ from every reference (at the references' own size
    # it would write byte-identical copies, and the report would share their thumbnails)
    for model, model_args in (("collage", {"width": gen_size, "height": gen_size}),
                              ("first_ref", {"width": gen_size, "height": gen_size * 3 // 4})):
        out = work / f"runs-{ref_size}-{gen_size}" / model
        if not (out / "done").exists() or json.loads((out / "done").read_text() or "null") != model_args:
            t = time.perf_counter()
            with FakeJudgeServer(salted_reply(model)) as srv:
                evaluate(model=model, model_args=model_args, tasks=["micon"],
                         source=str(data), output_path=out, judge="openai", progress=False, overwrite=True,
                         judge_args={"base_url": srv.base_url, "model": "fake", "concurrency": 16})
            (out / "done").write_text(json.dumps(model_args))
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
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
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
    ap.add_argument("--ref_size", type=int, default=1024, help="reference image side, px (default 1024)")
    ap.add_argument("--gen_size", type=int, default=1024, help="generated image side, px (default 1024)")
    ap.add_argument("--chromium", default=os.environ.get("MICON_CHROMIUM") or shutil.which("chromium"))
    args = ap.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MICON_CACHE_DIR", str(work / "cache"))
    runs = make_runs(work, args.ref_size, args.gen_size)
    images = sum(1 for r in runs for _ in (r / "images").rglob("*.png")) + int((work / f"data-{args.ref_size}" / "done").read_text())
    report = work / "report"
    shutil.rmtree(report, ignore_errors=True)
    print(f"report of {len(runs)} runs x 1043 cases, {images} source images "
          f"(references {args.ref_size} px, generated {args.gen_size} px), {cpu_cores()} CPU cores")
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
