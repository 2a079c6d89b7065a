"""The sequence pipeline (PAPER.md sections 4-5): train LMs with checkpoints, cache the frozen
experts' log-likelihoods, sample cached batches for SPD, evaluate on test mixtures.

BOS convention: see `modgen_bench.models.transformer` (BOS = data vocabulary size).
"""
from .cache import cache_logliks, cache_token_logprobs
from .evaluate import domain_nll, mixture_kl, mixture_nll_per_token, sample_weights
from .sampler import CachedProposalSampler, CachedSampler
from .train import train_lm

__all__ = ["train_lm", "cache_logliks", "cache_token_logprobs", "CachedSampler", "CachedProposalSampler",
           "domain_nll", "mixture_nll_per_token", "mixture_kl", "sample_weights"]
