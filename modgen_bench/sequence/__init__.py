"""Training and evaluating the sequence models (PAPER.md sections 4-5): `train_lm` with its
resumable checkpoints (`checkpoint`), the frozen experts' cached log-likelihoods, cached batches
for SPD, exact evaluation on test mixtures.

With `modgen_bench.models` this package owns the models and their training; the real-text
study's stages (`modgen_bench.pipeline`) call it, and `modgen_bench.replicate` composes the
stages. Nothing here imports the stages.

BOS convention: see `modgen_bench.models.transformer` (BOS = data vocabulary size).
"""

from .cache import cache_logliks, cache_token_logprobs
from .evaluate import domain_nll, mixture_kl, mixture_nll_per_token, sample_weights
from .sampler import CachedProposalSampler, CachedSampler
from .train import train_lm

__all__ = [
    "train_lm",
    "cache_logliks",
    "cache_token_logprobs",
    "CachedSampler",
    "CachedProposalSampler",
    "domain_nll",
    "mixture_nll_per_token",
    "mixture_kl",
    "sample_weights",
]
