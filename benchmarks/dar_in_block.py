"""Print DAR's cost inside a stack of transformer blocks, where a pipeline actually pays it.

``dar_overhead.py`` times the attention call alone; on a GPU that isolates DAR's small kernels and
their launch cost. Here each block does what a FLUX-like joint block does around attention (QKV
projection, attention, output projection, MLP), so launch overhead can hide behind the big matmuls.
DAR runs the way the hooks run it: query positions sampled once per forward, weights per layer, keys
scaled, then the library's SDPA. Every line prints the ratio beside the absolute times.

``--reuse-steps k`` also runs a simulated denoising loop (``--steps`` forwards whose input drifts a little
each step, as latents do) with ``DARConfig(reuse_steps=k)``: the weights are computed every k steps per
layer and reused between. It prints the time saved and how far the weights move: the share of reference
keys whose weight at a reused step differs from the weight computed fresh at that step.

    python benchmarks/dar_in_block.py                       # GPU bf16 if present, else a small CPU shape
    python benchmarks/dar_in_block.py --device cpu --small --compile true --reuse-steps 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dar import DARConfig  # noqa: E402
from dar.op import dar_weights, sample_query_positions  # noqa: E402


class Block(torch.nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.out = torch.nn.Linear(hidden, hidden)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(hidden, 4 * hidden), torch.nn.GELU(), torch.nn.Linear(4 * hidden, hidden))

    def forward(self, x, dar=None, cached=None):
        """``cached``: this layer's weights to reuse (None: compute them when ``dar`` is given)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        w = cached
        if dar is not None and w is None:
            ref, cfg, sampled, qmask = dar
            w, _ = dar_weights(q, k, ref, cfg, query_mask=qmask, sampled=sampled)
        if w is not None:
            k = k * w[:, None, :, None].to(k.dtype)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        x = x + self.out(a)
        return x + self.mlp(x), w


def run(device: str, dtype: torch.dtype, text: int, gen: int, refs: int, hidden: int, heads: int, layers: int,
        repeats: int, compile_mode, reuse: int, steps: int) -> None:
    torch.manual_seed(0)
    n = text + gen + refs
    blocks = torch.nn.ModuleList(Block(hidden, heads) for _ in range(layers)).to(device, dtype).eval()
    x0 = torch.randn(1, n, hidden, device=device, dtype=dtype)
    ref = torch.zeros(1, n, dtype=torch.bool, device=device)
    ref[:, text + gen:] = True
    qmask = torch.zeros(1, n, dtype=torch.bool)
    qmask[:, text:text + gen] = True
    cfg = DARConfig(compile=compile_mode)

    def forward(x, with_dar: bool, cache=None, refresh=True):
        state = None
        if with_dar:  # once per forward, as the hooks do
            state = (ref, cfg, sample_query_positions(qmask, 1, n, cfg, device), qmask)
        weights = []
        for i, blk in enumerate(blocks):
            x, w = blk(x, state, None if refresh or cache is None else cache[i])
            weights.append(w)
        return x, weights

    def timed(fn) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        for flag in (False, True):
            forward(x0, flag)  # warm-up (and compilation)
        plain, with_dar = [], []
        for _ in range(repeats):  # interleaved, so load drifts hit both alike
            plain.append(timed(lambda: forward(x0, False)))
            with_dar.append(timed(lambda: forward(x0, True)))
    p, d = statistics.median(plain), statistics.median(with_dar)
    print(f"device={device} dtype={str(dtype).removeprefix('torch.')} tokens={n} (text {text}, generated {gen}, "
          f"refs {refs}) hidden={hidden} heads={heads} layers={layers} compile={cfg.compile}")
    print(f"  forward without DAR {p * 1e3:9.2f} ms   with DAR {d * 1e3:9.2f} ms   ratio {d / p:.3f}  (median of {repeats})")
    if reuse > 1:
        loop(forward, x0, timed, reuse, steps, ref)


def loop(forward, x0, timed, reuse: int, steps: int, ref) -> None:
    """A simulated denoising loop: fresh weights every step vs weights reused for ``reuse`` steps."""
    g = torch.Generator(device="cpu").manual_seed(1)
    drift = [0.05 * torch.randn(x0.shape, generator=g).to(x0.device, x0.dtype) for _ in range(steps)]

    def denoise(k: int, record: list | None = None):
        x, cache = x0, None
        for s in range(steps):
            out, weights = forward(x + drift[s], True, cache, refresh=s % k == 0)
            cache = weights if s % k == 0 else cache
            if record is not None:
                record.append(weights)
            x = x + 0.5 * drift[s]

    with torch.inference_mode():
        fresh: list = []
        denoise(1, fresh)  # warm-up, and the fresh weights at every step
        times: dict[int, list[float]] = {1: [], reuse: []}
        for _ in range(3):  # interleaved
            for k in times:
                times[k].append(timed(lambda k=k: denoise(k)))
        t_fresh, t_reuse = statistics.median(times[1]), statistics.median(times[reuse])
        moved = []
        for s in range(steps):
            base = s - s % reuse
            if base != s:
                for w_now, w_kept in zip(fresh[s], fresh[base]):
                    moved.append(((w_now != w_kept) & ref).sum().item() / ref.sum().item())
    share = statistics.mean(moved) if moved else 0.0
    print(f"  {steps} steps, weights every step {t_fresh * 1e3:9.2f} ms, every {reuse} steps {t_reuse * 1e3:9.2f} ms "
          f"(ratio {t_reuse / t_fresh:.3f}); at reused steps {100 * share:.2f} % of reference keys hold a weight "
          f"that differs from the fresh one (max {100 * max(moved, default=0.0):.2f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--small", action="store_true", help="a shape the CPU finishes in seconds")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", choices=["auto", "true", "false"], default="auto",
                        help="DARConfig.compile for the analysis (auto: compiled on CUDA only)")
    parser.add_argument("--reuse-steps", type=int, default=1, help="also time a denoising loop with reuse_steps=k")
    parser.add_argument("--steps", type=int, default=8, help="denoising steps of that loop")
    args = parser.parse_args()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    extra = (args.compile, args.reuse_steps, args.steps)  # DARConfig reads 'true'/'false' itself
    if device == "cuda" and not args.small:
        # FLUX-like: 512 text + 4096 generated + 2 x 4096 reference tokens, hidden 3072, 24 heads
        run("cuda", torch.bfloat16, 512, 4096, 2 * 4096, 3072, 24, args.layers or 8, args.repeats, *extra)
    else:
        run(device, torch.float32 if device == "cpu" else torch.bfloat16, 64, 1024, 2 * 1024, 256, 4,
            args.layers or 4, args.repeats, *extra)


if __name__ == "__main__":
    main()
