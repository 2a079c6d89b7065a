"""Stage 5, retrains: a monolithic LM whose parameter count matches experts + gate, trained on a
mixture of the domains (PAPER.md section 5's baseline; lam* retrain: section 4.4).

Mixture weights enter as per-sequence loss weights on batches with equal blocks per domain, so
the loss is sum_k lam[k] NLL_k without sampling noise in lam.
Inputs: `Splits`, the mono `LMTrain` (d_model 0: matched, `matched_d_model`), the mixture lam,
the seeds, optionally a `ConflictProbe`.
Outputs: `Retrain` (model, final loss, conflict log). Cache key: `retrain_key` (splits key,
sizes, d_model, lam, seed, method name); the `train_lm` checkpoint is the stage output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..experts.builtin import BuiltinFamily
from ..logs import label
from ..models import TransformerLM
from ..provenance import stable_seed
from ..sequence.train import train_lm
from .config import LMTrain
from .conflict import ConflictProbe
from .context import StageRun
from .data import Splits, domain_batches
from .store import stage_key

__all__ = ["Retrain", "lm_params", "matched_d_model", "retrain_key", "train_retrain"]


@dataclass
class Retrain:
    model: TransformerLM  # or the experts' family's LM (`experts.hf.HFCausalLM`)
    final_loss: float
    conflict: list  # [(step, mean pairwise cosine)] when probed, else []
    key: str


def lm_params(vocab_size: int, block_size: int, n_layer: int, d_model: int, d_ff: int) -> int:
    """Parameters of a `TransformerLM`, in closed form: embeddings V C + T C; per block two
    LayerNorms 4 C, attention 4 C^2 + 4 C, MLP 2 C F + F + C; final LayerNorm 2 C; head C V."""
    C, F = d_model, d_ff
    block = 4 * C + (4 * C * C + 4 * C) + (2 * C * F + F + C)
    return vocab_size * C + block_size * C + n_layer * block + 2 * C + C * vocab_size


def matched_d_model(spec: LMTrain, T: int, target: int, vocab_size: int) -> int:
    """The d_model (a multiple of 2 * n_head) whose LM parameter count over ``vocab_size`` token
    ids is closest to ``target``."""
    best, best_gap = None, None
    for d in range(2 * spec.n_head, 2049, 2 * spec.n_head):
        n = lm_params(vocab_size, T, spec.n_layer, d, spec.d_ff or 4 * d)
        if best_gap is None or abs(n - target) < best_gap:
            best, best_gap = d, abs(n - target)
        if n > target:
            break
    return best


def retrain_key(splits: Splits, spec: LMTrain, d_model: int, lam, seed: int, method: str) -> str:
    return stage_key(
        "retrain", splits.key, asdict(spec), d_model, [float(v) for v in lam], seed, method
    )


def train_retrain(
    splits: Splits,
    run: StageRun,
    *,
    spec: LMTrain,
    d_model: int,
    lam,
    method: str,
    probe: ConflictProbe | None = None,
    family=None,
) -> Retrain:
    """Train (or reload) one monolith on mixture ``lam``, in the experts' ``family`` (None: the
    built-in one). Initialisation from (seed, 'mono') — the same for every mixture — and batches
    from (seed, resample, 'mono', method)."""
    p, T, m = splits.p, splits.T, spec.batch_size
    lam = np.asarray(lam, dtype=np.float64)
    key = retrain_key(splits, spec, d_model, lam, run.seed, method)
    family = family or BuiltinFamily()
    mono = family.make(
        spec.n_layer, spec.n_head, d_model, spec.d_ff, T, stable_seed(run.seed, "init", "mono")
    )
    weights = torch.as_tensor(np.repeat(lam * p, m), dtype=torch.float32)
    log = train_lm(
        mono,
        domain_batches(splits.train, T, m, splits.bos),
        spec.steps,
        spec.lr,
        run.device,
        seed=run.sub("mono", method),
        checkpoint=run.store.path(method, key),
        progress=run.progress,
        weights=weights,
        warmup=spec.warmup,
        checkpoint_every=run.checkpoint_every,
        hook=probe,
        label=label("train_lm", model=method, seed=run.seed, rep=run.resample),
    )
    return Retrain(
        mono.eval().requires_grad_(False), log["final_loss"], list(probe.log) if probe else [], key
    )
