"""Stage 3, the experts' log-likelihoods, cached once (PAPER.md section 4: with log E[k](x) stored,
an
SPD step costs only the gate; the per-token table is what Structural Distillation reads).

Inputs: `Experts`, `Splits`, ``n_proposal`` draws per expert (for SPD's unbiased Z estimate,
proposal q = (1/p) sum_k E[k]) and the seed of those draws.
Outputs: `ExpertCache`: pool (p, n_gate_train, p) whole-window log E[j](x) of SPD's windows,
test_tok (p*n_eval, T-1, p) per-token log-probs of the test windows, val (p*n_eval, p), drawn
[p] (n_proposal, T) sequences from each expert and drawn_log_e [p] (n_proposal, p); restore
[p] (n_restore, T) and restore_log_e, independent draws (own generator) on which stage 4 restores
the gate's Z = 1 (`algorithms.normaliser.restore_z`; empty when n_restore = 0).
Cache key: `loglik_key` (experts key, n_proposal, draw seed, n_restore when > 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..experts import loglik_table, token_logprob_table
from ..provenance import stable_seed
from ..sequence.sampler import CachedProposalSampler
from .context import StageRun
from .data import Splits
from .experts import Experts
from .store import stage_key

__all__ = ["ExpertCache", "loglik_key", "cache_experts", "spd_sampler"]


@dataclass
class ExpertCache:
    pool: torch.Tensor
    test_tok: torch.Tensor
    val: torch.Tensor
    drawn: list
    drawn_log_e: list
    key: str
    vocab_size: int  # the experts' token ids: the gate's embedding size
    restore: list = field(default_factory=list)
    restore_log_e: list = field(default_factory=list)

    @property
    def test(self) -> torch.Tensor:
        """(p*n_eval, p) whole-window log E[j](x) of the test windows."""
        return self.test_tok.sum(dim=1)


def loglik_key(experts: Experts, n_proposal: int, seed: int, n_restore: int = 0) -> str:
    return stage_key("loglik", experts.key, n_proposal, seed, *([n_restore] if n_restore else []))


def cache_experts(
    experts: Experts,
    splits: Splits,
    run: StageRun,
    *,
    n_proposal: int,
    seed: int,
    n_restore: int = 0,
) -> ExpertCache:
    """Compute (or reload) every cached table of the experts; draws use CPU generators from
    ``seed`` (SPD's pool) and from (seed, 'restore') (the Z restoration's draws). The experts
    are read through the `experts.ExpertLM` interface only (their device is their own)."""
    p, T, ex = splits.p, splits.T, experts.experts
    if experts.tokenizer_hash != splits.tokenizer_hash:
        raise ValueError("the experts' tokenizer is not the one the splits were tokenized with")
    key = loglik_key(experts, n_proposal, seed, n_restore)

    def compute():
        g = torch.Generator().manual_seed(seed)
        drawn = [ex[k].sample(n_proposal, T, g) for k in range(p)]
        g_r = torch.Generator().manual_seed(stable_seed(seed, "restore"))
        restore = [ex[k].sample(n_restore, T, g_r) for k in range(p)] if n_restore else []
        return {
            "pool": loglik_table(ex, splits.pool.view(-1, T)).view(p, -1, p),
            "test_tok": token_logprob_table(ex, splits.test),
            "val": loglik_table(ex, splits.val),
            "drawn": drawn,
            "drawn_log_e": [loglik_table(ex, d) for d in drawn],
            "restore": restore,
            "restore_log_e": [loglik_table(ex, d) for d in restore],
        }

    c = run.store.get("loglik", key, compute)
    return ExpertCache(
        c["pool"],
        c["test_tok"],
        c["val"],
        c["drawn"],
        c["drawn_log_e"],
        key,
        experts.vocab_size,
        c.get("restore", []),
        c.get("restore_log_e", []),
    )


def spd_sampler(splits: Splits, cache: ExpertCache) -> CachedProposalSampler:
    """SPD's sampler: domain windows from the pool, expert draws for the Z estimate."""
    return CachedProposalSampler(
        list(splits.pool),
        list(cache.pool),
        cache.drawn,
        cache.drawn_log_e,
        [torch.ones(len(d), dtype=torch.bool) for d in cache.drawn],
    )
