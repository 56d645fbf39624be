"""Print DAR's cost relative to plain SDPA (time ratio and peak extra memory), beside a naive variant.

Not a timed test: a script whose figures go into docs/dar.md. Shape of the issue: B=1, H=8, D=64,
Lq = 4096 generated-image queries, Lk = 4096 generated + 2 x 4096 reference + 256 text keys, m = 64,
fp32 on the CPU and bf16 on a GPU when present. The target is DAR/SDPA <= 1.10 on the CPU at that shape
(the analysis is m / Lq, about 1.6 %, of the QK work).

    python benchmarks/dar_overhead.py                 # CPU (and GPU if present), table of shapes
    python benchmarks/dar_overhead.py --device cpu --shapes full --repeats 5
    python benchmarks/dar_overhead.py --compile        # also the torch.compile'd analysis (DARConfig(compile=True))

"naive" materialises the full Lq x Lk logits, reads the sampled rows' probabilities from it, reweights
the reference columns and applies softmax and V: what DAR avoids. Peak extra memory is what a call
allocates beyond its inputs: exact on a GPU (allocator statistics); on the CPU the peak of live tensors
created by the call, counted by a TorchDispatchMode (kernel-internal scratch of a fused SDPA is not
visible there, so the CPU SDPA column reads as its output only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import weakref
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dar import DARConfig, dar_attention  # noqa: E402
from dar.op import dar_weights  # noqa: E402

FULL = (4096, 4096 + 2 * 4096 + 256)
SMALL = [(1024, 1024 + 2 * 1024 + 256), (2048, 2048 + 2 * 2048 + 256)]


def make_inputs(lq, lk, device, dtype, heads=8, dim=64, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(1, heads, lq, dim, generator=g).to(device, dtype)
    k = torch.randn(1, heads, lk, dim, generator=g).to(device, dtype)
    v = torch.randn(1, heads, lk, dim, generator=g).to(device, dtype)
    n_gen, n_text = lq, 256
    ref = torch.zeros(lk, dtype=torch.bool, device=device)
    ref[n_text + n_gen:] = True  # [text | generated | ref 1 | ref 2]
    return q, k, v, ref


def naive_dar(q, k, v, ref, config):
    """Full Lq x Lk attention matrix, reweighted (the straightforward way)."""
    scale = q.shape[-1] ** -0.5
    logits = (q @ k.transpose(-1, -2)).float() * scale  # (B, H, Lq, Lk)
    lq = q.shape[2]
    m = min(config.num_queries, lq)
    rows = (torch.arange(m, device=q.device) * 2 + 1) * lq // (2 * m)
    probs = torch.softmax(logits[:, :, rows], dim=-1)
    r = (probs * ref).sum(dim=(1, 2))
    big = torch.where(ref, r, float("-inf")).amax(-1, keepdim=True)
    small = torch.where(ref, r, float("inf")).amin(-1, keepdim=True)
    r_hat = (r - small) / (big - small)
    w = torch.ones_like(r)
    w = torch.where(ref & (r_hat >= config.tau_high), 1 + config.gamma, w)
    w = torch.where(ref & (r_hat <= config.tau_low), 1 - config.gamma, w)
    logits.mul_(w[:, None, None, :])
    return (torch.softmax(logits, dim=-1).to(v.dtype) @ v)


class LiveBytes(TorchDispatchMode):
    """Peak bytes of tensors allocated inside the mode and still alive (CPU memory proxy)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.seen: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.seen:
                ptr, size = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
                self.seen.add(ptr)
                self.live += size
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, ptr, size)
        return out

    def _free(self, ptr, size):
        self.live -= size
        self.seen.discard(ptr)


def extra_memory_mb(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
        del out
        return peak / 2**20
    with LiveBytes() as tracker:
        out = fn()
    del out
    return tracker.peak / 2**20


def timed(fn, device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(lq, lk, device, dtype, repeats, with_naive, config, with_compiled=False):
    q, k, v, ref = make_inputs(lq, lk, device, dtype)
    eager = replace(config, compile=False)
    fns = {"sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
           "dar": lambda: dar_attention(q, k, v, ref, eager),
           "analysis": lambda: dar_weights(q, k, ref, eager)}
    if with_compiled:
        fns["dar_compiled"] = lambda: dar_attention(q, k, v, ref, replace(config, compile=True))
        fns["analysis_compiled"] = lambda: dar_weights(q, k, ref, replace(config, compile=True))
    if with_naive:
        fns["naive"] = lambda: naive_dar(q, k, v, ref, config)
    with torch.inference_mode():
        for fn in fns.values():  # warm-up
            fn()
        times = {name: [] for name in fns}
        for _ in range(repeats):  # interleaved, so load drifts hit every variant alike
            for name, fn in fns.items():
                times[name].append(timed(fn, device))
        memory = {name: extra_memory_mb(fn, device) for name, fn in fns.items() if "compiled" not in name}
    med = {name: statistics.median(ts) for name, ts in times.items()}
    best = {name: min(ts) for name, ts in times.items()}
    return med, best, memory


def check(device, dtype) -> None:
    """Correctness on the device at a mid shape: gamma=0 identity and agreement with the CPU fp32 result."""
    q, k, v, ref = make_inputs(512, 512 * 3 + 256, torch.device("cpu"), torch.float32)
    with torch.inference_mode():
        out_cpu, w_cpu, _ = dar_attention(q, k, v, ref, DARConfig(), return_weights=True)
        qd, kd, vd, refd = (t.to(device) for t in (q, k, v, ref))
        same = torch.equal(dar_attention(qd.to(dtype), kd.to(dtype), vd.to(dtype), refd, DARConfig(gamma=0.0)),
                           F.scaled_dot_product_attention(qd.to(dtype), kd.to(dtype), vd.to(dtype)))
        out32, w32, _ = dar_attention(qd, kd, vd, refd, DARConfig(), return_weights=True)
        out16, w16, _ = dar_attention(qd.to(dtype), kd.to(dtype), vd.to(dtype), refd, DARConfig(), return_weights=True)
    print(f"check {device.type}: gamma=0 bit-identical to SDPA ({str(dtype).replace('torch.', '')}): {same}; fp32 vs CPU: max|out| diff "
          f"{(out32.cpu() - out_cpu).abs().max().item():.2e}, weights equal {(w32.cpu() == w_cpu).float().mean().item():.4f}; "
          f"{str(dtype).replace('torch.', '')} vs CPU fp32: max|out| diff {(out16.float().cpu() - out_cpu).abs().max().item():.2e}, "
          f"weights equal {(w16.cpu() == w_cpu).float().mean().item():.4f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: the CPU, plus the GPU when one is present")
    parser.add_argument("--shapes", choices=["all", "full", "small"], default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-queries", type=int, default=64)
    parser.add_argument("--no-naive", action="store_true", help="skip the full-matrix variant (needs Lq*Lk*H*4 bytes)")
    parser.add_argument("--check", action="store_true", help="also check correctness on each device first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the torch.compile'd analysis (the first call per shape compiles: not timed)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = []
    if args.device in ("auto", "cpu"):
        devices.append((torch.device("cpu"), torch.float32))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            parser.error("--device cuda: no GPU is available")
        devices.append((torch.device("cuda"), torch.bfloat16))
    shapes = {"all": [*SMALL, FULL], "full": [FULL], "small": SMALL}[args.shapes]
    config = DARConfig(num_queries=args.num_queries)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, B=1 H=8 D=64 m={config.num_queries}; "
          f"times are medians of {args.repeats} interleaved runs, '(min)' is the ratio of the fastest runs")
    header = (f"{'device':<6} {'dtype':<9} {'Lq':>5} {'Lk':>6} {'sdpa ms':>9} {'dar ms':>9} {'dar/sdpa':>8} {'(min)':>8} "
              f"{'analysis ms':>11} {'naive ms':>9} {'naive/sdpa':>10} {'sdpa MB':>8} {'dar MB':>8} {'naive MB':>9}"
              + (f" {'compiled: dar ms':>16} {'dar/sdpa':>8} {'analysis ms':>11}" if args.compile else ""))
    print(header)
    print("-" * len(header))
    for device, dtype in devices:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        if args.check:
            check(device, dtype)
        for lq, lk in shapes:
            med, best, mem = bench(lq, lk, device, dtype, args.repeats, not args.no_naive, config, args.compile)
            naive_ms = f"{med['naive'] * 1e3:9.1f}" if "naive" in med else f"{'-':>9}"
            naive_ratio = f"{med['naive'] / med['sdpa']:10.2f}" if "naive" in med else f"{'-':>10}"
            naive_mb = f"{mem['naive']:9.1f}" if "naive" in mem else f"{'-':>9}"
            print(f"{device.type:<6} {str(dtype).replace('torch.', ''):<9} {lq:>5} {lk:>6} {med['sdpa'] * 1e3:9.1f} "
                  f"{med['dar'] * 1e3:9.1f} {med['dar'] / med['sdpa']:8.3f} {best['dar'] / best['sdpa']:8.3f} "
                  f"{med['analysis'] * 1e3:11.1f} "
                  f"{naive_ms} {naive_ratio} {mem['sdpa']:8.1f} {mem['dar']:8.1f} {naive_mb}"
                  + (f" {med['dar_compiled'] * 1e3:16.1f} {med['dar_compiled'] / med['sdpa']:8.3f} "
                     f"{med['analysis_compiled'] * 1e3:11.1f}" if args.compile else ""), flush=True)
        if device.type == "cuda":
            print(f"(cuda device: {name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
