"""Print DAR's cost inside a stack of transformer blocks, where a pipeline actually pays it.

``dar_overhead.py`` times the attention call alone; on a GPU that isolates DAR's ~20 small kernels and
their launch cost. Here each block does what a FLUX-like joint block does around attention (QKV
projection, attention, output projection, MLP), so launch overhead can hide behind the big matmuls.
DAR runs the way the hooks run it: query positions sampled once per forward, weights per layer, keys
scaled, then the library's SDPA.

    python benchmarks/dar_in_block.py                       # GPU bf16 if present, else a small CPU shape
    python benchmarks/dar_in_block.py --device cpu --small
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

    def forward(self, x, dar=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if dar is not None:
            ref, cfg, sampled, qmask = dar
            w, _ = dar_weights(q, k, ref, cfg, query_mask=qmask, sampled=sampled)
            k = k * w[:, None, :, None].to(k.dtype)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        x = x + self.out(a)
        return x + self.mlp(x)


def run(device: str, dtype: torch.dtype, text: int, gen: int, refs: int, hidden: int, heads: int, layers: int,
        repeats: int) -> None:
    torch.manual_seed(0)
    n = text + gen + refs
    blocks = torch.nn.ModuleList(Block(hidden, heads) for _ in range(layers)).to(device, dtype).eval()
    x = torch.randn(1, n, hidden, device=device, dtype=dtype)
    ref = torch.zeros(1, n, dtype=torch.bool, device=device)
    ref[:, text + gen:] = True
    qmask = torch.zeros(1, n, dtype=torch.bool, device=device)
    qmask[:, text:text + gen] = True
    cfg = DARConfig()

    def forward(with_dar: bool):
        state = None
        if with_dar:  # once per forward, as the hooks do
            state = (ref, cfg, sample_query_positions(qmask, 1, n, cfg, device), qmask)
        h = x
        for blk in blocks:
            h = blk(h, state)
        return h

    def timed(with_dar: bool) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        forward(with_dar)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with torch.inference_mode():
        for flag in (False, True):
            timed(flag)  # warm-up
        plain = [timed(False) for _ in range(repeats)]
        with_dar = [timed(True) for _ in range(repeats)]
    p, d = statistics.median(plain), statistics.median(with_dar)
    print(f"device={device} dtype={str(dtype).removeprefix('torch.')} tokens={n} (text {text}, generated {gen}, "
          f"refs {refs}) hidden={hidden} heads={heads} layers={layers}")
    print(f"  forward without DAR {p * 1e3:9.2f} ms   with DAR {d * 1e3:9.2f} ms   ratio {d / p:.3f}  (median of {repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--small", action="store_true", help="a shape the CPU finishes in seconds")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    if device == "cuda" and not args.small:
        # FLUX-like: 512 text + 4096 generated + 2 x 4096 reference tokens, hidden 3072, 24 heads
        run("cuda", torch.bfloat16, 512, 4096, 2 * 4096, 3072, 24, args.layers or 8, args.repeats)
    else:
        run(device, torch.float32 if device == "cpu" else torch.bfloat16, 64, 1024, 2 * 1024, 256, 4,
            args.layers or 4, args.repeats)


if __name__ == "__main__":
    main()
