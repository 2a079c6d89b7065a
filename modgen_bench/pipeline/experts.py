"""Stage 2, expert training: one causal byte-level LM per domain, trained on that domain alone
(PAPER.md section 5: the frozen experts E[k]).

Inputs: `Splits` (training tokens), the expert `LMTrain` sizes, the training seed.
Outputs: `Experts` (p frozen `TransformerLM`s, their final training losses, parameter count).
Cache key: `experts_key` (splits key, sizes, seed); each expert's `train_lm` checkpoint lives at
``store.path("expert-<name>", key)`` and doubles as the stage output (a rerun loads it; a killed
run resumes inside training).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..data.corpora import VOCAB_SIZE, random_windows
from ..logs import label
from ..models import LMConfig, TransformerLM, count_params
from ..provenance import stable_seed
from ..sequence.train import train_lm
from .config import LMTrain
from .data import Splits
from .store import Store, stage_key

__all__ = ["Experts", "make_lm", "experts_key", "train_experts"]


@dataclass
class Experts:
    models: list              # p frozen TransformerLMs, eval mode, on the device
    final_loss: list          # per expert: mean training loss over the last 10% of steps
    n_params: int             # parameters of one expert
    key: str


def make_lm(spec: LMTrain, d_model: int, T: int, seed: int) -> TransformerLM:
    """A fresh `TransformerLM` of ``spec``'s depth and ``d_model`` width, initialised from ``seed``."""
    torch.manual_seed(seed)
    return TransformerLM(LMConfig(VOCAB_SIZE, T, spec.n_layer, spec.n_head, d_model, spec.d_ff or 4 * d_model))


def experts_key(splits: Splits, spec: LMTrain, seed: int) -> str:
    return stage_key("experts", splits.key, asdict(spec), seed)


def train_experts(splits: Splits, spec: LMTrain, seed: int, resample: int, store: Store, device="cpu",
                  progress: bool = False, checkpoint_every: int = 200) -> Experts:
    """Train (or reload) one expert per domain on ``spec.batch_size`` random windows per step.

    Seeds: initialisation from (seed, expert, corpus); batches from (seed, resample, expert, corpus).
    """
    T, key = splits.T, experts_key(splits, spec, seed)
    models, final = [], []
    for name, tokens in zip(splits.corpora, splits.train):
        e = make_lm(spec, spec.d_model, T, stable_seed(seed, "init", "expert", name))
        log = train_lm(e, lambda g, t=tokens: random_windows(t, T, spec.batch_size, g), spec.steps, spec.lr,
                       device, seed=stable_seed(seed, resample, "expert", name),
                       checkpoint=store.path(f"expert-{name}", key), progress=progress,
                       label=label("train_lm", model=f"expert-{name}", seed=seed, rep=resample),
                       warmup=spec.warmup, checkpoint_every=checkpoint_every)
        final.append(log["final_loss"])
        models.append(e.eval().requires_grad_(False))
    return Experts(models, final, count_params(models[0]), key)
