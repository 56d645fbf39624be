"""The harness at the benchmark's full size: wall time, time per case, harness CPU and peak memory per stage.

Builds (once, deterministically, not committed) a synthetic MICON-Bench in the official raw layout with
``benchmarks/synthetic_benchmark.py``: 1043 cases and 2518 reference PNGs of 1024 x 1024, and a 130-case
subset. Each stage runs as its own ``micon`` process (fresh cache for ``validate``), against the ``collage``
model at 1024 x 1024 and a loopback judge that answers instantly (a separate process, so its CPU is not
counted), and prints a table: stage x size -> wall s, ms per case, the harness's own ms per case (wall less
start-up and, for generation, the model's own time), for generation how long the model's thread waited for the
harness per case (``timings.harness_wait_s``), CPU ms per case and peak RSS.

    python benchmarks/scale.py [--sizes 130,1043] [--work /tmp/micon-scale] [--repeats 1] [--delay 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
FULL = 1043


def _run(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run one process; its wall time, CPU time (user + system) and peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed:\n{err[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def _dataset(work: Path, n: int) -> Path:
    folder = work / f"data_{n}"
    if not (folder / "story_infer" / "simple_candidate_template.json").exists():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from synthetic_benchmark import build

        build(folder, fraction=n / FULL)
    return folder


def _judge_server(delay: float) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen([PY, str(ROOT / "tests" / "fake_judge_server.py"), "--delay", str(delay)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def measure(work: Path, n: int, delay: float) -> dict[str, dict[str, float]]:
    data = _dataset(work, n)
    n_cases = sum(1 for _ in data.glob("*/cases/*.yaml"))
    cache, out = work / f"cache_{n}", work / f"out_{n}"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "MICON_CACHE_DIR": str(cache), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    micon = [PY, "-m", "micon_tasks"]
    common = ["--tasks", "micon", "--source", str(data)]
    quiet = ["--no_progress", "--verbosity", "WARNING"]
    server, url = _judge_server(delay)
    judge = ["--judge", "openai", "--judge_args", f"base_url={url},model=fake,concurrency=32,max_retries=0"]
    rows: dict[str, dict[str, float]] = {}
    try:
        rows["start-up (micon ls tasks)"] = _run([*micon, "ls", "tasks"], env)
        rows["validate cold (conversion)"] = _run([*micon, "validate", *common, "--verbosity", "WARNING"], env)
        rows["generate"] = _run([*micon, "generate", "--model", "collage", *common, "--output_path", str(out), *quiet], env)
        rows["judge (instant judge)"] = _run([*micon, "judge", str(out / "collage"), *judge, *quiet], env)
        rows["aggregate"] = _run([*micon, "aggregate", str(out / "collage"), "--verbosity", "WARNING"], env)
        rows["re-run of a finished run"] = _run([*micon, "run", "--model", "collage", *common, "--output_path", str(out),
                                                 *judge, *quiet], env)
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    model_s = wait_s = 0.0
    for shard in (out / "collage" / "shards").glob("generate_*.jsonl"):
        for line in shard.read_text().splitlines():
            timings = json.loads(line)["timings"] if line else {}
            model_s += timings.get("generate_s", 0.0)
            wait_s += timings.get("harness_wait_s", 0.0)
    rows["generate"]["model_s"] = model_s
    rows["generate"]["wait_s"] = wait_s
    for row in rows.values():
        row["n"] = n_cases
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="130,1043")
    ap.add_argument("--work", type=Path, default=Path("/tmp/micon-scale"))
    ap.add_argument("--repeats", type=int, default=1, help="median of this many runs per size")
    ap.add_argument("--delay", type=float, default=0.0, help="judge latency in seconds (0: instant)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{'stage':<28} {'cases':>6} {'wall s':>8} {'ms/case':>8} {'harness ms/case':>16} {'model waits':>12} "
          f"{'CPU ms/case':>12} {'peak RSS':>9}")
    for n in (int(x) for x in args.sizes.split(",")):
        runs = [measure(args.work, n, args.delay) for _ in range(args.repeats)]
        start = statistics.median(r["start-up (micon ls tasks)"]["wall"] for r in runs)
        for stage in runs[0]:
            wall = statistics.median(r[stage]["wall"] for r in runs)
            cpu = statistics.median(r[stage]["cpu"] for r in runs)
            rss = max(r[stage]["rss_mb"] for r in runs)
            cases = runs[0][stage]["n"]
            # the harness's own time: the stage's wall less start-up and, for generation, the model's own time
            own = wall - (start if stage != "start-up (micon ls tasks)" else 0)
            own -= statistics.median(r[stage].get("model_s", 0.0) for r in runs)
            # generation: how long the model's thread waited for the harness (decoding, writing), per case
            waits = [r[stage]["wait_s"] for r in runs if "wait_s" in r[stage]]
            wait = f"{1000 * statistics.median(waits) / cases:.1f}" if waits else "-"
            print(f"{stage:<28} {cases:>6} {wall:>8.1f} {1000 * wall / cases:>8.1f} {1000 * own / cases:>16.1f} "
                  f"{wait:>12} {1000 * cpu / cases:>12.1f} {rss / 1024:>7.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
