"""Stage 4, the SPD gate: a non-causal `SequenceGate` trained by Stochastic Primal-Dual over the
cached expert log-likelihoods (PAPER.md section 4, "SPD"; `algorithms.spd.train_spd`).

Inputs: `Splits`, `ExpertCache`, the gate sizes (`SmallNet`), SPD's settings (a dict of
`SPDConfig` fields), the lam signal ('excess' or the paper's 'nll'), the seeds.
Outputs: `GateResult` (the gate in eval mode, lam (p,), mu, SPD's history with the gate's
gradient conflict in its ``conflict`` column). Cache key: `gate_key` (cache key, sizes, SPD
settings, signal, seed).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from ..algorithms.spd import SPDConfig, train_spd
from ..data.corpora import VOCAB_SIZE
from ..logs import label
from ..models import GateConfig, SequenceGate
from ..provenance import stable_seed
from .config import SmallNet
from .conflict import gate_conflict, probe_windows
from .data import Splits
from .loglik import ExpertCache, spd_sampler
from .store import Store, stage_key

__all__ = ["GateResult", "gate_config", "gate_key", "train_gate"]


@dataclass
class GateResult:
    gate: SequenceGate
    lam: np.ndarray
    mu: float
    history: pd.DataFrame
    key: str


def gate_config(spec: SmallNet, T: int, p: int) -> GateConfig:
    return GateConfig(VOCAB_SIZE, T, p, spec.n_layer, spec.n_head, spec.d_model, spec.d_ff)


def gate_key(cache: ExpertCache, spec: SmallNet, spd: dict, signal: str, seed: int, resample: int,
             conflict_batch: int) -> str:
    return stage_key("gate", cache.key, asdict(spec), spd, signal, seed, resample, conflict_batch)


def train_gate(splits: Splits, cache: ExpertCache, spec: SmallNet, spd: dict, signal: str, seed: int,
               resample: int, store: Store, device="cpu", progress: bool = False,
               conflict_batch: int = 16) -> GateResult:
    """Train (or reload) the gate for one lam signal. Initialisation from (seed, 'gate') — the same
    for every signal — and SPD's batches from (seed, resample, 'spd', signal)."""
    p, T = splits.p, splits.T
    gcfg = gate_config(spec, T, p)
    key = gate_key(cache, spec, spd, signal, seed, resample, conflict_batch)

    def fit():
        torch.manual_seed(stable_seed(seed, "init", "gate"))
        gate = SequenceGate(gcfg)
        conf = SPDConfig(**{**spd, "lam_signal": signal, "seed": stable_seed(seed, resample, "spd", signal)})
        probe, probe_e = probe_windows(splits.pool, cache.pool, conflict_batch)
        res = train_spd(gate, spd_sampler(splits, cache), conf, device, progress=progress,
                        label=label("spd", model=f"gate-{signal}", seed=seed, rep=resample),
                        evaluate=gate_conflict(probe, probe_e, T, device))
        return {"state": res.gate.state_dict(), "lam": res.lam, "mu": res.mu,
                "history": res.history.to_dict("list")}
    out = store.get(f"gate-{signal}", key, fit)
    gate = SequenceGate(gcfg).to(device)
    gate.load_state_dict(out["state"])
    return GateResult(gate.eval(), np.asarray(out["lam"], dtype=np.float64), float(out["mu"]),
                      pd.DataFrame(out["history"]), key)
