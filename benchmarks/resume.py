"""Resume cost: re-running a finished run must make 0 generate calls and 0 judge calls, and add < 3 s.

Builds a finished run (the ``collage`` baseline, a loopback OpenAI-compatible judge), then runs the
same ``evaluate()`` again and reports: generate calls, judge calls, and the wall time of the re-run in a
warm process (what resuming adds beyond start-up), next to the time of a cold ``micon run`` re-run
in a fresh process and of bare start-up (``micon ls tasks``). ``--n_cases`` uses a synthetic raw folder with
that many cases per task instead of the bundled sample (5 per task).

    python benchmarks/resume.py [--n_cases 50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n_cases", type=int, default=0, help="cases per task in a synthetic dataset (0: the bundled sample)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from fake_judge_server import FakeJudgeServer, good_reply

    import registry
    from adapters.baselines import CollageBaseline
    from micon_tasks import evaluate

    calls = {"generate": 0}

    @registry.register_adapter("bench_collage", override=True)
    class CountingCollage(CollageBaseline):
        default_size = (256, 256)

        def generate_batch(self, requests, *, dar=None):
            calls["generate"] += len(requests)
            return super().generate_batch(requests, dar=dar)

    work = Path(tempfile.mkdtemp(prefix="micon-bench-resume-"))
    os.environ.setdefault("MICON_CACHE_DIR", str(work / "cache"))
    source = "sample"
    if args.n_cases:
        from raw_fixture import make_raw

        source = str(make_raw(work / "raw", n_cases=args.n_cases))
    with FakeJudgeServer(good_reply) as srv:
        kw = dict(model="bench_collage", tasks=["micon"], judge="openai", source=source, output_path=work / "out",
                  judge_args={"base_url": srv.base_url, "model": "fake", "concurrency": 16}, progress=False)
        t0 = time.perf_counter()
        first = evaluate(**kw)
        t_first = time.perf_counter() - t0
        n_cases = first["benchmark"]["n_cases"]
        gen0, judge0 = calls["generate"], len(srv.requests)
        warm = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            evaluate(**kw)
            warm.append(time.perf_counter() - t0)
        gen_calls, judge_calls = calls["generate"] - gen0, len(srv.requests) - judge0

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        cli = [sys.executable, "-c",
               "import sys, registry; from adapters.baselines import CollageBaseline\n"
               "@registry.register_adapter('bench_collage', override=True)\n"
               "class C(CollageBaseline):\n    default_size = (256, 256)\n"
               "from micon_tasks.cli import main; sys.exit(main(sys.argv[1:]))",
               "run", "--model", "bench_collage", "--tasks", "micon", "--source", source, "--judge", "openai",
               "--judge_args", f"base_url={srv.base_url},model=fake,concurrency=16", "--output_path", str(work / "out"),
               "--no_progress", "--verbosity", "ERROR"]
        startup = [sys.executable, "-m", "micon_tasks", "ls", "tasks"]  # start-up: interpreter, CLI, registry
        cold, bare = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run(startup, env=env, check=True, stdout=subprocess.DEVNULL)
            bare.append(time.perf_counter() - t0)
            n_req = len(srv.requests)
            t0 = time.perf_counter()
            subprocess.run(cli, env=env, check=True, stdout=subprocess.DEVNULL)
            cold.append(time.perf_counter() - t0)
            judge_calls += len(srv.requests) - n_req

    med = statistics.median
    print(f"cases: {n_cases} ({'sample' if not args.n_cases else f'{args.n_cases} per task, synthetic'})")
    print(f"first run (generate + judge + aggregate): {t_first:.2f} s")
    print(f"re-run of the finished run: generate calls {gen_calls}, judge calls {judge_calls}")
    print(f"re-run, warm process (time added beyond start-up): median {med(warm):.2f} s over {len(warm)}")
    print(f"re-run, cold `micon run` subprocess: median {med(cold):.2f} s; start-up (`micon ls tasks`): median {med(bare):.2f} s; "
          f"difference {med(cold) - med(bare):.2f} s")
    ok = gen_calls == 0 and judge_calls == 0 and med(warm) < 3.0
    print("PASS" if ok else "FAIL", "(target: 0 generate calls, 0 judge calls, under 3 s beyond start-up)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
