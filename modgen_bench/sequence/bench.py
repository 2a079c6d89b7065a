"""Throughput of an SPD step with cached expert log-likelihoods vs recomputing the experts each
step.

PAPER.md section 4 (SPD): the experts are frozen, so log E[k](x) can be computed once per training
sequence (`cache.cache_logliks`) and an SPD step costs only the gate. This benchmark times
`algorithms.spd.train_spd` on the same sequences both ways, for the synthetic task's sizes
(PAPER.md section 5: experts d=8, gate d=6) and for the real-text sizes (3 experts of 2 layers,
d=256; a gate of about 290K parameters). Weights are random: throughput does not depend on them.
"""

from __future__ import annotations

import time

import pandas as pd
import torch

from ..algorithms.spd import SPDConfig, train_spd
from ..models import GateConfig, LMConfig, SequenceGate, TransformerLM, count_params
from .cache import cache_logliks
from .sampler import CachedSampler

__all__ = ["SETUPS", "throughput_table"]

# name -> (data vocab, sequence length with BOS, p, expert sizes, gate sizes)
SETUPS = {
    "successor": dict(
        vocab=100,
        T=17,
        p=2,
        expert=dict(n_layer=1, n_head=2, d_model=8, d_ff=32),
        gate=dict(n_layer=1, n_head=2, d_model=6, d_ff=24),
    ),
    "text": dict(
        vocab=256,
        T=129,
        p=3,
        expert=dict(n_layer=2, n_head=4, d_model=256, d_ff=1024),
        gate=dict(n_layer=2, n_head=4, d_model=96, d_ff=384),
    ),
}


class RecomputeSampler:
    """Draws like ``base`` but recomputes the experts' log-likelihoods of every batch (no cache)."""

    def __init__(self, base: CachedSampler, experts, device):
        self.base, self.experts, self.device, self.p = base, experts, device, base.p

    def sample(self, generator, per_domain):
        batch = self.base.sample(generator, per_domain)
        batch.log_experts = cache_logliks(self.experts, batch.inputs, self.device)
        return batch


def _time_spd(make_gate, sampler, per_domain, device, budget_s, max_steps) -> tuple[int, float]:
    """(steps, seconds) of train_spd, after a warm-up run and a 3-step run that sizes it to
    ``budget_s``."""

    def run(steps):
        cfg = SPDConfig(
            steps=steps,
            per_domain=per_domain,
            lam_signal="excess",
            z_estimator="paper",
            log_every=steps,
        )
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_spd(make_gate(), sampler, cfg, device=device)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    run(1)  # first-call costs (allocations, imports) excluded
    per_step = run(3) / 3
    steps = int(max(3, min(max_steps, budget_s / max(per_step, 1e-6))))
    return steps, run(steps)


def throughput_table(
    device="cpu",
    setups=("successor", "text"),
    per_domain: int = 16,
    budget_s: float = 3.0,
    max_steps: int = 500,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (setup, mode): sequences/s of an SPD step, cached vs recomputed experts.

    Columns: setup, mode ('cached' | 'recompute'), device, threads (torch intra-op threads; on a
    shared CPU, one thread is fastest for the tiny models), p, T (tokens with BOS), expert_params
    (each),
    gate_params, per_domain, steps, seconds, seqs_per_s (domain sequences per second; the Z
    estimate re-uses the batch), speedup (cached / recompute, on the 'cached' row).
    """
    unknown = [s for s in setups if s not in SETUPS]
    if unknown:
        raise ValueError(f"unknown setups {unknown}; choose from {sorted(SETUPS)}")
    rows = []
    for name in setups:
        s = SETUPS[name]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            experts = [
                TransformerLM(LMConfig(s["vocab"] + 1, s["T"], **s["expert"])).to(device).eval()
                for _ in range(s["p"])
            ]
            g = torch.Generator().manual_seed(seed)
            pools = [
                torch.cat(
                    [
                        torch.full((128, 1), s["vocab"]),
                        torch.randint(s["vocab"], (128, s["T"] - 1), generator=g),
                    ],
                    dim=1,
                )
                for _ in range(s["p"])
            ]
        cached = CachedSampler(pools, [cache_logliks(experts, x, device) for x in pools])
        gcfg = GateConfig(s["vocab"] + 1, s["T"], s["p"], **s["gate"])

        def make_gate(gcfg=gcfg):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return SequenceGate(gcfg)

        n_gate = count_params(make_gate())
        timed = {}
        for mode, sampler in (
            ("cached", cached),
            ("recompute", RecomputeSampler(cached, experts, device)),
        ):
            steps, secs = _time_spd(make_gate, sampler, per_domain, device, budget_s, max_steps)
            timed[mode] = steps * s["p"] * per_domain / secs
            rows.append(
                dict(
                    setup=name,
                    mode=mode,
                    device=str(device),
                    threads=torch.get_num_threads(),
                    p=s["p"],
                    T=s["T"],
                    expert_params=count_params(experts[0]),
                    gate_params=n_gate,
                    per_domain=per_domain,
                    steps=steps,
                    seconds=secs,
                    seqs_per_s=timed[mode],
                )
            )
        rows[-2]["speedup"] = timed["cached"] / timed["recompute"]
    return pd.DataFrame(rows)
