"""Stage 6, router distillation: a causal router trained on sequences rejection-sampled from the
gated model, with the experts' per-token log-probs cached (PAPER.md section 4, Structural
Distillation; `modgen_bench.distill`).

Inputs: the experts, the rejection sample (`sample.SamplingResult.rejection`), the router sizes
(`SmallNet`) and training (`RouterTrain`), seeds. Outputs: `RouterResult` (router in eval mode,
per-step losses). Cache key: `router_key` (draws key, sizes, training, seed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..distill import train_router
from ..experts import token_logprob_table
from ..logs import label
from ..models import CausalRouter
from ..provenance import stable_seed
from .config import RouterTrain, SmallNet
from .context import StageRun
from .experts import Experts
from .gate import gate_config
from .store import stage_key

__all__ = ["RouterResult", "router_key", "distil_router"]


@dataclass
class RouterResult:
    router: CausalRouter
    losses: list
    key: str

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 10% of steps (nats per token)."""
        return float(np.mean(self.losses[-max(1, len(self.losses) // 10) :]))


def router_key(upstream: str, spec: SmallNet, train: RouterTrain, seed: int, resample: int) -> str:
    return stage_key("router", upstream, asdict(spec), asdict(train), seed, resample)


def distil_router(
    experts: Experts,
    samples: torch.Tensor,
    run: StageRun,
    *,
    spec: SmallNet,
    train: RouterTrain,
    upstream: str,
) -> RouterResult:
    """Train (or reload) the router on ``samples`` (n, T); ``upstream`` is the key of the stage
    that produced them. Initialisation from (seed, 'router'), batches from (seed, resample,
    'router')."""
    T, p = samples.shape[1], len(experts.experts)
    gcfg = gate_config(spec, T, p, experts.vocab_size)
    key = router_key(upstream, spec, train, run.seed, run.resample)

    def compute():
        torch.manual_seed(stable_seed(run.seed, "init", "router"))
        router = CausalRouter(gcfg)
        tok = token_logprob_table(experts.experts, samples)
        losses = train_router(
            router,
            samples,
            tok,
            train.steps,
            train.lr,
            train.batch_size,
            run.sub("router"),
            run.device,
            run.progress,
            label=label("router", seed=run.seed, rep=run.resample),
        )
        return {"state": router.state_dict(), "losses": losses}

    d = run.store.get("router", key, compute)
    router = CausalRouter(gcfg).to(run.device)
    router.load_state_dict(d["state"])
    return RouterResult(router.eval(), list(d["losses"]), key)
