"""gate_erm: the SPD gate's non-robust twin (what Branch-Train-MiX and mergekit-moe routers do).

The same `SequenceGate`, the same cached data, the same optimiser, steps and Z treatment as the
SPD gate (PAPER.md section 4), with one change: lam is frozen at the uniform mixture
(``eta_lam = 0``), so the gate maximises the likelihood of (1/p) sum_k P[k] instead of playing
the minimax game. With ``z_penalty`` (default) SPD's multiplier mu still pushes Z towards 1;
without it the training is plain maximum likelihood (mu = 0 throughout). Either way Z = 1 is
then restored on the restoration draws (`algorithms.normaliser.restore_z`) and the gate is graded
divided by Z_hat on the fresh draws from q, Z's interval carried into the NLL: the SPD gate's
grade exactly, so the difference is what the minimax training itself buys.
"""

from __future__ import annotations

import math

from ..models import count_params
from .base import Combiner, CombinerResult, fresh_z_band, register, train_flops_module

__all__ = ["GateERM", "erm_spd_settings", "gate_budget", "gate_cost"]


def erm_spd_settings(spd: dict, z_penalty: bool = True) -> dict:
    """SPD's settings with lam frozen at uniform (eta_lam = 0: EG never moves lam) and, without
    ``z_penalty``, no multiplier (mu0 = eta_mu = rho = 0: plain maximum likelihood)."""
    out = {**spd, "eta_lam": 0.0}
    if not z_penalty:
        out.update(mu0=0.0, eta_mu=0.0, rho=0.0)
    return out


def gate_budget(ctx, n_gate: int) -> tuple[float, float]:
    """(FLOPs, tokens) of the experts' training plus an SPD-sized gate training (each step reads
    per_domain windows per domain and as many expert draws for Z; 6 N per token)."""
    from ..algorithms.spd import SPDConfig

    spd, b = ctx.cfg.spd, ctx.budget
    steps = int(spd.get("steps", SPDConfig.steps))
    per = int(spd.get("per_domain", SPDConfig.per_domain))
    tokens = steps * 2 * ctx.splits.p * per * ctx.splits.T
    return b["expert_flops"] + train_flops_module(n_gate, tokens), b["expert_tokens"] + tokens


def gate_cost(ctx, n_gate: int):
    """`Cost` of a sequence gate over the experts (`gate_budget`)."""
    return ctx.cost(ctx.budget["expert_params"] + n_gate, *gate_budget(ctx, n_gate))


@register("gate_erm")
class GateERM(Combiner):
    """Settings: ``z_penalty`` (bool, default true: keep SPD's multiplier on Z = 1)."""

    trains = "the SPD gate's network by maximum likelihood on the uniform mixture (lam frozen)"
    grading = "sequence"

    def fit(self, ctx, settings):
        from ..pipeline.gate import train_gate

        spd = erm_spd_settings(ctx.cfg.spd, bool(settings.get("z_penalty", True)))
        g = train_gate(
            ctx.splits,
            ctx.cache,
            ctx.run,
            spec=ctx.cfg.gate,
            spd=spd,
            signal="nll",
            conflict_batch=ctx.cfg.conflict_batch,
        )
        z, band, zrows = fresh_z_band(g.gate, ctx.q_draws())
        nll = _gate_test_nll(ctx, g.gate) + math.log(z) / (ctx.splits.T - 1)
        rows = zrows + [("train", "mu", g.mu)]
        rows += [("train", f"Z_restore_{k}", v) for k, v in (g.restoration or {}).items()]
        return CombinerResult(nll, gate_cost(ctx, count_params(g.gate)), z_band=band, rows=rows)


def _gate_test_nll(ctx, gate):
    from ..pipeline.evaluate import gate_nll

    return gate_nll(gate, ctx.splits.test, ctx.cache.test, ctx.device).double()
