"""The real-text pipeline's combiner stage: run the preset's combiners and add their rows.

Called by `modgen_bench.replicate` after the built-in models are evaluated (stage 8). Every method
of
the leaderboard (built-in and registered) gets case ``cost`` rows (params_ratio, compute_ratio,
token_ratio; `base.Cost`) and case ``paired`` rows against the SPD gate (per mixture: delta and
its per-window paired s.e., as `modgen_bench.replicate` writes for its own pairs); each combiner's
test NLL joins ``win`` (and its Z band ``zband``), so the replicate writes its test rows like any
model's; a combiner that declines writes one case ``skip`` row with its reason.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from ..matching import train_flops
from ..models import lm_config
from .base import COMBINERS, CombinerContext, Cost, run_combiners, train_flops_module
from .gates import gate_budget, gate_cost

__all__ = [
    "add_combiners",
    "check_combiners",
    "combiner_context",
    "REFERENCE",
    "make_budget",
    "q_draws",
]

#: the method every leaderboard cell is paired against
REFERENCE = "gate_excess_logZ"


def check_combiners(settings: dict) -> None:
    """Every name of a preset's ``combiners`` table is registered (a UserError listing them)."""
    for name in settings:
        if name not in COMBINERS:
            raise UserError(
                f"combiners: unknown combiner {name!r}; choose from {', '.join(sorted(COMBINERS))}"
            )


def make_budget(cfg, p: int, T: int, expert_params: int, n_gate: int, vocab_size: int) -> dict:
    """The denominators of `Cost`: the p experts' parameters, training FLOPs and tokens, the gate's
    parameters (`matching.train_flops`, the same count as the monolith's ratios)."""
    e = cfg.expert
    e_cfg = lm_config(e, vocab_size, T)
    return {
        "expert_params": p * expert_params,
        "gate_params": n_gate,
        "expert_flops": p * train_flops(e_cfg, e.steps, e.batch_size),
        "expert_tokens": p * e.steps * e.batch_size * T,
    }


def q_draws(experts, n: int, seed: int, store, dev):
    """The stage-7 draws from q, (inputs (n, T), log E (n, p)), reloaded from the store under the
    key `pipeline.sample.sample_gates` used (drawn again the same way if the file is gone)."""
    from ..experts import ExpertProposal
    from ..pipeline.sample import draws_key
    from ..sampling import draw_from_q

    key = draws_key(experts, n, seed)
    proposal = ExpertProposal(experts.experts, experts.T)
    inputs, log_e, _ = store.get(
        "q-draws", key, lambda: draw_from_q(proposal, n, torch.Generator().manual_seed(seed))
    )
    return inputs, log_e


def combiner_context(
    cfg,
    *,
    splits,
    experts,
    cache,
    gates,
    monos,
    mono_spec,
    d_mono,
    run,
    n_gate,
) -> CombinerContext:
    """The `CombinerContext` of one replicate from its stage outputs and its ``run`` (a
    `pipeline.context.StageRun`)."""
    from ..pipeline.sample import sampling_seed

    return CombinerContext(
        cfg,
        splits,
        experts,
        cache,
        gates,
        monos,
        mono_spec,
        d_mono,
        lambda: q_draws(experts, cfg.n_draws, sampling_seed(run, "q"), run.store, run.device),
        run,
        make_budget(cfg, splits.p, splits.T, experts.n_params, n_gate, experts.vocab_size),
    )


def _builtin_costs(ctx, ratios: dict, router_params: int) -> dict:
    """Cost of the pipeline's own methods: SPD gates, monoliths, free baselines, the router."""
    b, n_gate = ctx.budget, ctx.budget["gate_params"]
    spd = gate_cost(ctx, n_gate)
    mono = Cost(ratios["params_ratio"], ratios["compute_ratio"], ratios["token_ratio"])
    free = ctx.cost(b["expert_params"], b["expert_flops"], b["expert_tokens"])
    # the distilled router replaces the gate at inference; its training comes on top of the gate's
    g_flops, g_tokens = gate_budget(ctx, n_gate)
    r_tokens = ctx.cfg.router.steps * ctx.cfg.router.batch_size * ctx.splits.T
    router = ctx.cost(
        b["expert_params"] + router_params,
        g_flops + train_flops_module(router_params, r_tokens),
        g_tokens + r_tokens,
    )
    out = {
        "gate_excess_logZ": spd,
        "gate_nll_logZ": spd,
        "const_gate": free,
        "bayes_router": free,
        "router": router,
    }
    out.update({m: mono for m in ctx.monos})
    return out


def add_combiners(
    add,
    win: dict,
    zband: dict,
    ctx,
    settings: dict,
    ratios: dict,
    router_params: int,
    mixtures,
    done_pairs=(),
) -> None:
    """Run ``settings``' combiners on ``ctx`` (a `base.CombinerContext`), put their test NLL in
    ``win``/``zband``, and write the cost, skip, extra and paired rows through ``add`` (pairs
    (m, REFERENCE) in ``done_pairs`` are already written by the replicate)."""
    costs = _builtin_costs(ctx, ratios, router_params)
    for name, res in run_combiners(ctx, settings).items():
        if res.skip:
            add("skip", name, "skipped", float("nan"), reason=res.skip)
            continue
        win[name] = res.nll
        if res.z_band is not None:
            zband[name] = res.z_band
        costs[name] = res.cost
        for case, metric, value in res.rows:
            add(case, name, metric, value)
    for name, c in costs.items():
        if name in win:
            for metric, v in vars(c).items():
                add("cost", name, metric, v)
    _paired_vs_reference(
        add,
        win,
        ctx.splits.p,
        mixtures,
        [m for m in costs if m in win and m != REFERENCE and (m, REFERENCE) not in done_pairs],
    )


def _paired_vs_reference(add, win, p, mixtures, methods) -> None:
    """Case "paired", method "<m>-vs-<REFERENCE>": per mixture the mean per-window difference and
    its per-window paired s.e. (domains combined with the mixture's weights); worst vertex too."""
    from ..stats import per_window_paired_se

    if REFERENCE not in win:
        return
    y = win[REFERENCE].double().numpy().reshape(p, -1)
    for m in methods:
        x = win[m].double().numpy().reshape(p, -1)
        per = [per_window_paired_se(x[k], y[k]) for k in range(p)]
        mean_k, se_k = np.array([iv.mean for iv in per]), np.array([iv.se for iv in per])
        for lam in mixtures:
            lam = np.asarray(lam, float)
            add("paired", f"{m}-vs-{REFERENCE}", "delta", float(lam @ mean_k), lam=lam)
            add(
                "paired",
                f"{m}-vs-{REFERENCE}",
                "delta_window_se",
                float(np.sqrt(lam**2 @ se_k**2)),
                lam=lam,
            )
