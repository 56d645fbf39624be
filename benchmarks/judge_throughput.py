"""Judge throughput: the ``openai`` backend against the loopback fake server answering after a delay.

Prints wall time at concurrency 1 and 32 and the harness's own CPU time per case. The server runs in
a subprocess, so this process's CPU time is the harness alone (prompt rendering, PNG encoding, the
openai SDK, parsing, scoring). Targets (issue 3): at least 20x faster than sequential at concurrency
32; under 5 ms of harness time per case.

    python benchmarks/judge_throughput.py                   # 200 cases at c=32, 20 at c=1
    python benchmarks/judge_throughput.py --image-size 1024 # real-size images: PNG encoding dominates
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from micon_tasks import load_judge  # noqa: E402
from micon_tasks.judges import JudgeRequest  # noqa: E402
from micon_tasks.scoring import score_case  # noqa: E402
from micon_tasks.types import Case, Checkpoint  # noqa: E402

CHECKPOINTS = [
    Checkpoint(f"{d}_check_{i}", d, f"Question {d}{i} about the generated image?", i == 1 and d in "AB", d if i == 1 and d in "AB" else None)
    for d, n in (("A", 3), ("B", 3), ("C", 3), ("D", 4), ("G", 2))
    for i in range(1, n + 1)
]


def make_requests(n: int, size: int) -> list[JudgeRequest]:
    def img(seed: int) -> Image.Image:
        # A gradient, not a flat colour, so PNG encoding does real work.
        return Image.linear_gradient("L").resize((size, size)).convert("RGB").rotate(seed % 360)

    refs = [img(1), img(2), img(3)]
    out = []
    for i in range(n):
        case = Case(
            task="object_composition", case_id=f"case_{i:04d}", refs=refs, ref_roles=["RA", "RB", "RC"],
            prompt=f"Compose the objects of RA, RB and RC on a table (case {i}).", goal="All three objects on one table.",
            constraints_hard=["every object from its reference", "one table"],
        )
        out.append(JudgeRequest("object_composition", case, img(i + 10), CHECKPOINTS))
    return out


def run(base_url: str, requests: list[JudgeRequest], concurrency: int) -> tuple[float, float]:
    judge = load_judge("openai", base_url=base_url, model="fake-vlm", concurrency=concurrency, max_retries=0, timeout=30.0)
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = judge.judge_batch(requests)
    scores = [score_case(CHECKPOINTS, r, case_id=q.case.case_id, story=False) for r, q in zip(results, requests)]
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    bad = sum(not s.clean for s in scores)
    if bad:
        raise SystemExit(f"{bad} case(s) were not clean: {results[0].verdicts[0].error}")
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--sequential-cases", type=int, default=20, help="cases for the concurrency-1 run (extrapolated)")
    ap.add_argument("--delay", type=float, default=0.2, help="server seconds per reply")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=64, help="side of the 3 references and the generated image")
    args = ap.parse_args()

    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fake_judge_server.py"), "--delay", str(args.delay)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        base_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        run(base_url, make_requests(2, args.image_size), 2)  # warm-up: imports, first connections
        seq_n = min(args.sequential_cases, args.cases)
        seq_wall, seq_cpu = run(base_url, make_requests(seq_n, args.image_size), 1)
        par_wall, par_cpu = run(base_url, make_requests(args.cases, args.image_size), args.concurrency)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)

    seq_per_case = seq_wall / seq_n
    seq_total = seq_per_case * args.cases
    print(f"server delay {args.delay * 1000:.0f} ms/reply, {len(CHECKPOINTS)} checkpoints/case, 4 images of {args.image_size}px/case")
    print(f"concurrency 1 : {seq_n} cases in {seq_wall:.2f} s ({seq_per_case * 1000:.1f} ms/case)"
          f" -> {args.cases} cases ~ {seq_total:.1f} s (extrapolated)")
    print(f"concurrency {args.concurrency}: {args.cases} cases in {par_wall:.2f} s ({par_wall / args.cases * 1000:.1f} ms/case)")
    print(f"speed-up      : {seq_total / par_wall:.1f}x (target >= 20x; ideal {args.concurrency}x)")
    print(f"harness CPU   : {par_cpu / args.cases * 1000:.2f} ms/case at concurrency {args.concurrency}, "
          f"{seq_cpu / seq_n * 1000:.2f} ms/case at concurrency 1 (target < 5 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
