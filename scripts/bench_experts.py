"""Scoring throughput of the two `ExpertLM` adapters on the same windows (tokens/s).

The suite's byte `TransformerLM` and a Hugging Face GPT-2 of the same depth, heads and width over
a 257-id byte-level BPE vocabulary score the same (n, T) windows through `token_logprobs`; the
best of ``--repeats`` timed passes after one warm-up is reported. Usage:

    .venv/bin/python scripts/bench_experts.py [--n 2048] [--T 33] [--d 48] [--layers 2]
        [--batch 256] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from modgen_bench.experts.builtin import BuiltinFamily
from modgen_bench.experts.hf import HFFamily, train_bpe


def tokens_per_s(expert, windows, repeats: int) -> float:
    expert.token_logprobs(windows[: expert.batch_size])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        expert.token_logprobs(windows)
        best = min(best, time.perf_counter() - t0)
    return windows[:, 1:].numel() / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--T", type=int, default=33)
    ap.add_argument("--d", type=int, default=48)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    builtin = BuiltinFamily()
    b = builtin.expert(builtin.make(a.layers, 2, a.d, 0, a.T, 0), "builtin", a.device)
    tok = train_bpe(["modgen-bench"], 257)  # 256 bytes + <|endoftext|>
    hf = HFFamily.gpt2(tok, a.T)
    h = hf.expert(hf.make(a.layers, 2, a.d, 0, a.T, 0), "hf", a.device)
    b.batch_size = h.batch_size = a.batch
    g = torch.Generator().manual_seed(0)
    windows = torch.cat(
        [torch.full((a.n, 1), 256), torch.randint(0, 256, (a.n, a.T - 1), generator=g)], 1
    )
    print(
        f"{a.n} windows of T = {a.T}, {a.layers} layers, d = {a.d}, batch {a.batch}, {a.device}, "
        f"{a.threads} thread(s)"
    )
    for name, e in [("builtin TransformerLM", b), ("HF GPT2LMHeadModel", h)]:
        print(
            f"{name:22s} {e.n_params:>9d} params  "
            f"{tokens_per_s(e, windows, a.repeats):>12,.0f} tokens/s"
        )


if __name__ == "__main__":
    main()
