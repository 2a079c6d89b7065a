"""Short training runs of every DDP-aware loop (train_lm, train_spd, train_router) on tiny models.

Run under ``torchrun --nproc-per-node 2 tests/_ddp_worker.py OUT.json`` (gloo on CPU): rank 0
writes the trajectories; tests/test_distributed.py runs `trajectories()` in one process and
compares. Global batches: 8 sequences (divisible by 2)."""

import json
import sys

import torch


def trajectories() -> dict:
    from modgen_bench.algorithms.spd import SPDConfig, train_spd
    from modgen_bench.distill import train_router
    from modgen_bench.models import CausalRouter, GateConfig, LMConfig, SequenceGate, TransformerLM
    from modgen_bench.sequence.sampler import CachedProposalSampler
    from modgen_bench.sequence.train import train_lm

    V, T, p = 11, 9, 2
    g = torch.Generator().manual_seed(0)
    seqs = [
        torch.cat(
            [torch.full((32, 1), V - 1), torch.randint(0, V - 1, (32, T - 1), generator=g)], 1
        )
        for _ in range(p)
    ]
    log_e = [torch.randn(32, p, generator=g) - 12 for _ in range(p)]
    out = {}

    torch.manual_seed(1)
    lm = TransformerLM(LMConfig(V, T, 1, 2, 8, 16))
    batches = lambda gen: torch.cat([s[torch.randint(0, 32, (4,), generator=gen)] for s in seqs])  # noqa: E731
    w = torch.tensor([1.5] * 4 + [0.5] * 4)  # a mixture weight per sequence
    out["train_lm"] = train_lm(lm, batches, 12, 1e-2, seed=3, weights=w)["losses"]

    torch.manual_seed(2)
    gate = SequenceGate(GateConfig(V, T, p, 1, 2, 4, 8))
    sampler = CachedProposalSampler(
        seqs, log_e, seqs, log_e, [torch.ones(32, dtype=torch.bool)] * p
    )
    res = train_spd(
        gate,
        sampler,
        SPDConfig(steps=10, per_domain=4, lr=1e-2, lam_signal="excess", log_every=1, seed=4),
    )
    h = res.history
    out["spd"] = {
        c: h[c].tolist()
        for c in ["loss", "Z_hat", "mu", "lam_0", "lam_1", "nll_0", "nll_1", "signal_0", "signal_1"]
    }

    torch.manual_seed(5)
    router = CausalRouter(GateConfig(V, T, p, 1, 2, 4, 8))
    tok = torch.randn(32, T - 1, p, generator=g).log_softmax(-1) - 2
    out["router"] = train_router(router, seqs[0], tok, 10, 1e-2, 8, seed=6)
    return out


if __name__ == "__main__":
    from modgen_bench import distributed as dist

    torch.set_num_threads(1)
    assert (
        dist.init_from_env("cpu") and dist.world_size() == 2 and dist.backend_for("cpu") == "gloo"
    )
    result = trajectories()
    if dist.is_writer():
        with open(sys.argv[1], "w") as f:
            json.dump(result, f)
    dist.destroy()
