"""The combiner plug-in contract: what a method trains, how it is graded, what it costs.

A combiner is a rival of the SPD gate over the same frozen experts and data (PAPER.md section 5):
a monolith trained for the worst case, a non-robust gate, a token-level router, a fixed-weight
gate, a merged model. Each is registered in `COMBINERS` under its name with three facts as class
data (the benchopt pattern: a plug-in declares, the core grades):

- ``trains``: what it learns (one line, shown in the leaderboard);
- ``grading``: how its test NLL is a proper likelihood: ``"sequence"`` (a sequence-level gate
  divided by its Z estimated on fresh draws from q, with Z's 95% interval carried into the NLL),
  ``"token"`` (normalised over the vocabulary at every step), ``"exact"`` (a mixture of the
  experts with fixed weights or a causal LM: Z = 1 by construction);
- ``fit(ctx, settings) -> CombinerResult``: trains (through the `Store`, so a rerun reloads) and
  returns the per-window test NLL per token, or ``skip`` with the reason it does not apply.

`run_combiners` runs the configured ones for one replicate and never lets one skip hide another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..registry import Registry

__all__ = [
    "COMBINERS",
    "GRADINGS",
    "Combiner",
    "CombinerContext",
    "CombinerResult",
    "Cost",
    "run_combiners",
    "register",
    "train_flops_module",
    "fresh_z_band",
]

COMBINERS = Registry("combiner")
GRADINGS = ("sequence", "token", "exact")


@dataclass
class Cost:
    """A method's size and training budget against the experts' (the leaderboard's ratio columns).

    params_ratio: parameters at inference / (p experts + the SPD gate); compute_ratio: every
    training FLOP the method needs from scratch (the experts' included when it uses them) / the
    experts' combined training FLOPs; token_ratio: training tokens, counted the same way / the
    experts' combined training tokens."""

    params_ratio: float
    compute_ratio: float
    token_ratio: float


@dataclass
class CombinerResult:
    """What `Combiner.fit` returns: (n_test,) per-token NLL per test window laid out domain by
    domain, or ``skip`` (a reason) with ``nll`` None; ``z_band`` (log Z_lo - log Z_hat,
    log Z_hi - log Z_hat) for sequence-level grading; ``rows`` extra (case, metric, value)."""

    nll: torch.Tensor | None
    cost: Cost | None = None
    z_band: tuple | None = None
    rows: list = field(default_factory=list)
    skip: str = ""


@dataclass
class CombinerContext:
    """Everything a combiner may read for one replicate (stages 1-7 of `modgen_bench.pipeline`).

    cfg: the `PipelineConfig`; splits, experts, cache: stages 1-3; gates: signal -> `GateResult`
    (stage 4); monos: method -> trained monolith (stage 5, ``mono_uniform`` always present);
    mono_spec, d_mono: the monolith's `LMTrain` and width under ``cfg.match``; q_draws(): the
    fresh draws from q that grade every sequence-level gate's Z (inputs (n, T), log E (n, p));
    run: the replicate's `pipeline.context.StageRun` (store, device, seed, resample, progress:
    what the stages a combiner calls take; combiners seed from ``run_seed`` and ``resample``
    with `provenance.stable_seed`); budget: the experts' params, FLOPs, tokens and the SPD
    gate's params (`Cost`'s denominators)."""

    cfg: object
    splits: object
    experts: object
    cache: object
    gates: dict
    monos: dict
    mono_spec: object
    d_mono: int
    q_draws: Callable
    run: object
    budget: dict

    # what combiner plug-ins read: views of the run, so there is one source for each
    @property
    def store(self):
        return self.run.store

    @property
    def device(self) -> str:
        return self.run.device

    @property
    def run_seed(self) -> int:
        return self.run.seed

    @property
    def resample(self) -> int:
        return self.run.resample

    @property
    def progress(self) -> bool:
        return self.run.progress

    def cost(self, params: float, flops: float, tokens: float) -> Cost:
        b = self.budget
        return Cost(
            params / (b["expert_params"] + b["gate_params"]),
            flops / b["expert_flops"],
            tokens / b["expert_tokens"],
        )


class Combiner:
    """Base of the registered plug-ins: ``name``, ``trains``, ``grading`` and ``fit``."""

    name: str = ""
    trains: str = ""
    grading: str = "exact"

    def fit(self, ctx: CombinerContext, settings: dict) -> CombinerResult:
        raise NotImplementedError


def register(name: str):
    """Class decorator: register a `Combiner` subclass in `COMBINERS` as (and named) ``name``."""

    def decorate(cls):
        cls.name = name
        return COMBINERS.register(name)(cls)

    return decorate


def train_flops_module(n_params: int, tokens: float) -> float:
    """Training FLOPs of a small network, 6 N per token (Kaplan et al. 2020: forward 2 N,
    backward 4 N; attention's context term is left out for gates and routers of a few layers)."""
    return 6.0 * n_params * tokens


def run_combiners(ctx: CombinerContext, settings: dict) -> dict:
    """{name: CombinerResult} for every combiner named in ``settings`` (name -> its settings
    table), in the order given; an unknown name is an error listing the registered ones."""
    out = {}
    for name, opts in settings.items():
        comb = COMBINERS[name]()
        res = comb.fit(ctx, dict(opts or {}))
        if res.skip == "" and (res.nll is None or not torch.isfinite(res.nll).all()):
            raise ValueError(f"combiner '{name}' returned no finite test NLL and no skip reason")
        out[name] = res
    return out


def fresh_z_band(gate, draws) -> tuple[float, tuple, list]:
    """(Z_hat, (log Z_lo - log Z_hat, log Z_hi - log Z_hat), rows) of a sequence gate on fresh
    ``draws`` = (inputs (n, T), log E (n, p)) from q: the control-variate estimate of Z with its
    95% interval (`algorithms.normaliser.z_control_variate`), as the SPD gates are graded."""
    from ..algorithms.normaliser import z_control_variate
    from ..sampling import log_gate, log_weight

    inputs, log_e = draws
    z, (lo, hi), _ = z_control_variate(log_weight(log_gate(gate, inputs), log_e), log_e)
    band = (math.log(max(lo, 1e-300)) - math.log(z), math.log(hi) - math.log(z))
    return z, band, [("Z", "Z_hat", z), ("Z", "Z_lo", lo), ("Z", "Z_hi", hi)]
