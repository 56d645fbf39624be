"""Judge-stage throughput: the ``openai`` backend against loopback fake servers, at the benchmark's image size.

Two figures (issue: the harness must vanish from the judge stage's profile):

* **instant judge**: a server that answers at once, so the wall time and the CPU time are the
  harness's own (prompt rendering, fitting and encoding 3 references + 1 output per case, the HTTP
  client, parsing, scoring). Target: harness CPU <= 30 ms per case at 1024 x 1024.
* **judge-bound**: a server answering after 200 ms at concurrency 32; the stage should take about
  ``cases x 0.2 s / 32`` (the judge's own time), not more.

The servers run in subprocesses, so this process's CPU time (every thread's, encoding included) is
the harness alone. Images are
photograph-like (gradients plus noise), distinct per case (each case's references are its own
objects, prepared once per case and shared by its prompts), handed over as stored PNG bytes the way
the runner does (``images.open_lazy``: sent as stored, nothing decoded) and, for comparison, as
decoded images (fitted and re-encoded), and sent in cases of ``--chunk`` per
``judge_batch`` call, as the runner does.

    python benchmarks/judge_throughput.py                        # 96 cases of 4 x 1024 px, c=32
    python benchmarks/judge_throughput.py --image-size 64 --cases 200
    python benchmarks/judge_throughput.py --concurrency 8              # 25 ms of judge per case
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from micon_tasks import load_judge  # noqa: E402
from micon_tasks.devices import cpu_cores  # noqa: E402
from micon_tasks.judges import JudgeRequest  # noqa: E402
from micon_tasks.scoring import score_case  # noqa: E402
from micon_tasks.types import Case, Checkpoint  # noqa: E402

CHECKPOINTS = [
    Checkpoint(f"{d}_check_{i}", d, f"Question {d}{i} about the generated image?", i == 1 and d in "AB", d if i == 1 and d in "AB" else None)
    for d, n in (("A", 3), ("B", 3), ("C", 3), ("D", 4), ("G", 2))
    for i in range(1, n + 1)
]


def photo_like(size: int, seed: int) -> Image.Image:
    """Smooth gradients plus sensor-like noise: compresses like a photograph, not like a flat colour."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, size, dtype=np.float32)
    base = np.add.outer(x, x[::-1]) / 2
    arr = np.stack([base, base.T, 255 - base], -1) + rng.normal(0, 10, (size, size, 3))
    return Image.fromarray(np.roll(arr, seed * 37, axis=1).clip(0, 255).astype(np.uint8))


def as_stored(pool: list[Image.Image]) -> list[bytes]:
    """The pool as PNG files' bytes, as the runner hands them to the judge (``images.open_lazy``)."""
    from micon_tasks.png import png_bytes

    return [png_bytes(im) for im in pool]


def _own(item: Image.Image | bytes) -> Image.Image:
    from micon_tasks.images import open_lazy

    return open_lazy(item) if isinstance(item, bytes) else item.copy()


def make_requests(start: int, n: int, pool: list) -> list[JudgeRequest]:
    out = []
    for i in range(start, start + n):
        refs = [_own(pool[(i + k) % len(pool)]) for k in range(3)]  # this case's own objects
        case = Case(
            task="object_composition", case_id=f"case_{i:04d}", refs=refs, ref_roles=["RA", "RB", "RC"],
            prompt=f"Compose the objects of RA, RB and RC on a table (case {i}).", goal="All three objects on one table.",
            constraints_hard=["every object from its reference", "one table"],
        )
        out.append(JudgeRequest("object_composition", case, _own(pool[(i + 3) % len(pool)]), CHECKPOINTS))
    return out


def run(base_url: str, cases: int, chunk: int, pool: list[Image.Image], concurrency: int, **judge_args) -> tuple[float, float]:
    """(wall s, harness CPU s) for judging ``cases`` cases, building each chunk outside the timed region."""
    judge = load_judge("openai", base_url=base_url, model="fake-vlm", concurrency=concurrency, max_retries=0,
                       timeout=60.0, **judge_args)
    wall = cpu = 0.0
    bad = 0
    for start in range(0, cases, chunk):
        requests = make_requests(start, min(chunk, cases - start), pool)
        cpu0, t0 = time.process_time(), time.perf_counter()
        results = judge.judge_batch(requests)
        scores = [score_case(CHECKPOINTS, r, case_id=q.case.case_id, story=False) for r, q in zip(results, requests)]
        wall += time.perf_counter() - t0
        cpu += time.process_time() - cpu0
        bad += sum(not s.clean for s in scores)
        if bad:
            raise SystemExit(f"{bad} case(s) were not clean: {results[0].verdicts[0].error}")
    judge.close()
    return wall, cpu


def serve(delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_judge_server.py"), "--delay", str(delay)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen) -> float:
    """Stop a server; its CPU seconds (it shares this machine's cores with the harness)."""
    proc.stdin.close()  # type: ignore[union-attr]
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=96)
    ap.add_argument("--delay", type=float, default=0.2, help="judge-bound run: server seconds per reply")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=128, help="cases per judge_batch call (the runner: one per concurrency slot)")
    ap.add_argument("--image-size", type=int, default=1024, help="side of the 3 references and the generated image")
    ap.add_argument("--image-format", default="jpeg", help="judge argument image_format (jpeg or png)")
    args = ap.parse_args()

    decoded = [photo_like(args.image_size, s) for s in range(8)]
    stored = as_stored(decoded)
    extra = {"image_format": args.image_format}
    fast, fast_url = serve(0.0)
    try:
        run(fast_url, 4, 4, decoded, 4, **extra)  # warm-up: imports, first connections
        i_wall, i_cpu = run(fast_url, args.cases, args.chunk, stored, args.concurrency, **extra)
        d_wall, d_cpu = run(fast_url, args.cases, args.chunk, decoded, args.concurrency, **extra)
    finally:
        stop(fast)
    slow, slow_url = serve(args.delay)
    try:
        s_wall, s_cpu = run(slow_url, args.cases, args.chunk, stored, args.concurrency, **extra)
    finally:
        server_cpu = stop(slow)

    n = args.cases
    bound = n * args.delay / args.concurrency
    print(f"{n} cases, {len(CHECKPOINTS)} checkpoints/case, 4 images of {args.image_size} px/case "
          f"({args.image_format}), concurrency {args.concurrency}, {cpu_cores()} cores")
    print("stored PNGs (as the runner hands them: sent as stored, nothing decoded)")
    print(f"instant judge : wall {i_wall / n * 1000:.1f} ms/case, harness CPU {i_cpu / n * 1000:.1f} ms/case "
          f"(target <= 30 ms)")
    print(f"judge at {args.delay * 1000:.0f} ms : wall {s_wall:.2f} s for {n} cases ({s_wall / n * 1000:.1f} ms/case); "
          f"the judge alone needs {bound:.2f} s ({bound / n * 1000:.1f} ms/case): {s_wall / bound:.2f}x of it; "
          f"harness CPU {s_cpu / n * 1000:.1f} ms/case, the server's CPU {server_cpu / n * 1000:.1f} ms/case")
    floor = (s_cpu + server_cpu) / n / cpu_cores()
    print(f"  (harness and server share {cpu_cores()} cores: their CPU alone needs {floor * 1000:.1f} ms/case; "
          f"the stage is judge-bound where the judge needs more, harness-bound where less)")
    print(f"decoded images (fitted and re-encoded): instant judge wall {d_wall / n * 1000:.1f} ms/case, "
          f"harness CPU {d_cpu / n * 1000:.1f} ms/case")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
