"""Stage 4, the SPD gate: a non-causal `SequenceGate` trained by Stochastic Primal-Dual over the
cached expert log-likelihoods (PAPER.md section 4, "SPD"; `algorithms.spd.train_spd`).

Inputs: `Splits`, `ExpertCache`, the gate sizes (`SmallNet`), SPD's settings (a dict of
`SPDConfig` fields), the lam signal ('excess' or the paper's 'nll'), the seeds.
Outputs: `GateResult` (the gate in eval mode, lam (p,), mu, SPD's history with the gate's
gradient conflict in its ``conflict`` column). When the cache holds restoration draws
(``ExpertCache.restore``), SPD's last iterate is moved onto Z = 1 on them
(`algorithms.normaliser.restore_z`: G1's equality, which SPD's multiplier meets only
approximately); ``gate`` is then the restored gate, ``gate_spd`` SPD's own and ``restoration``
what the step did. Cache key: `gate_key` (cache key, sizes, SPD settings, signal, seed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from ..algorithms.normaliser import restore_z
from ..algorithms.spd import SPDConfig, train_spd
from ..logs import label
from ..models import GateConfig, SequenceGate
from ..provenance import stable_seed
from .config import SmallNet
from .conflict import gate_conflict, probe_windows
from .context import StageRun
from .data import Splits
from .loglik import ExpertCache, spd_sampler
from .store import stage_key

__all__ = ["GateResult", "gate_config", "gate_key", "train_gate"]


@dataclass
class GateResult:
    gate: SequenceGate
    lam: np.ndarray
    mu: float
    history: pd.DataFrame
    key: str
    gate_spd: SequenceGate | None = None  # SPD's last iterate (the gate itself if no restoration)
    restoration: dict | None = None  # `normaliser.Restoration` as a dict


def gate_config(spec: SmallNet, T: int, p: int, vocab_size: int) -> GateConfig:
    """The gate's (and router's) sizes over the experts' ``vocab_size`` token ids (BOS included)."""
    return GateConfig(vocab_size, T, p, spec.n_layer, spec.n_head, spec.d_model, spec.d_ff)


def gate_key(
    cache: ExpertCache,
    spec: SmallNet,
    spd: dict,
    signal: str,
    seed: int,
    resample: int,
    conflict_batch: int,
) -> str:
    return stage_key("gate", cache.key, asdict(spec), spd, signal, seed, resample, conflict_batch)


def train_gate(
    splits: Splits,
    cache: ExpertCache,
    run: StageRun,
    *,
    spec: SmallNet,
    spd: dict,
    signal: str,
    conflict_batch: int = 16,
) -> GateResult:
    """Train (or reload) the gate for one lam signal. Initialisation from (seed, 'gate') — the same
    for every signal — and SPD's batches from (seed, resample, 'spd', signal)."""
    p, T, dev = splits.p, splits.T, run.device
    gcfg = gate_config(spec, T, p, cache.vocab_size)
    key = gate_key(cache, spec, spd, signal, run.seed, run.resample, conflict_batch)

    def fit():
        torch.manual_seed(stable_seed(run.seed, "init", "gate"))
        gate = SequenceGate(gcfg)
        conf = SPDConfig(**{**spd, "lam_signal": signal, "seed": run.sub("spd", signal)})
        probe, probe_e = probe_windows(splits.pool, cache.pool, conflict_batch)
        res = train_spd(
            gate,
            spd_sampler(splits, cache),
            conf,
            dev,
            progress=run.progress,
            label=label("spd", model=f"gate-{signal}", seed=run.seed, rep=run.resample),
            evaluate=gate_conflict(probe, probe_e, T, dev),
        )
        out = {
            "state": res.gate.state_dict(),
            "lam": res.lam,
            "mu": res.mu,
            "history": res.history.to_dict("list"),
        }
        if cache.restore:
            out["state_spd"] = {k: v.clone() for k, v in out["state"].items()}
            rest = restore_z(res.gate, torch.cat(cache.restore), torch.cat(cache.restore_log_e))
            out["state"], out["restoration"] = res.gate.state_dict(), asdict(rest)
        return out

    out = run.store.get(f"gate-{signal}", key, fit)
    gate = _loaded(gcfg, out["state"], dev)
    return GateResult(
        gate,
        np.asarray(out["lam"], dtype=np.float64),
        float(out["mu"]),
        pd.DataFrame(out["history"]),
        key,
        gate_spd=_loaded(gcfg, out["state_spd"], dev) if "state_spd" in out else gate,
        restoration=out.get("restoration"),
    )


def _loaded(gcfg: GateConfig, state: dict, device) -> SequenceGate:
    gate = SequenceGate(gcfg).to(device)
    gate.load_state_dict(state)
    return gate.eval()
