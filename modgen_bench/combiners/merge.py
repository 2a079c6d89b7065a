"""Weight merging of experts that branch from one base model.

- ``merge_avg``: the uniform average of the experts' weights, theta = (1/p) sum_k theta_k;
- ``merge_task_arith`` (Ilharco et al. 2023, arXiv 2212.04089): theta = theta_0 + alpha sum_k
  (theta_k - theta_0), task vectors theta_k - theta_0 from the shared base theta_0, alpha chosen
  from a grid on the validation windows by the worst domain's NLL (alpha = 1/p is the average).

The merged model is one causal LM (Z = 1 per step). Averaging weights is meaningful only when
the experts share an initialisation (they then sit in one basin); for experts trained from
separate initialisations the combiner declines with that reason rather than report a number
that measures nothing.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .base import Combiner, CombinerResult, register

__all__ = [
    "merge_average",
    "task_arithmetic",
    "shared_base",
    "MergeAvg",
    "MergeTaskArith",
    "NO_SHARED_INIT",
]

NO_SHARED_INIT = (
    "experts do not share an initialisation (merging needs experts branched from "
    "one base: the 'branch' expert source)"
)


def merge_average(states: list) -> dict:
    """The uniform average (1/p) sum_k theta_k of state dicts with equal keys and shapes."""
    _check(states)
    return {
        k: torch.stack([s[k].double() for s in states]).mean(dim=0).to(states[0][k].dtype)
        for k in states[0]
    }


def task_arithmetic(base: dict, states: list, alpha: float) -> dict:
    """theta_0 + alpha sum_k (theta_k - theta_0), key by key (arXiv 2212.04089, eq. 1)."""
    _check([base, *states])
    return {
        k: (base[k].double() + alpha * sum(s[k].double() - base[k].double() for s in states)).to(
            base[k].dtype
        )
        for k in base
    }


def _check(states: list) -> None:
    keys = set(states[0])
    for s in states[1:]:
        if set(s) != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise ValueError(
                "merging needs state dicts of one architecture (equal keys and shapes)"
            )


def shared_base(experts):
    """The experts' shared base model's state dict, or None when they do not branch from one
    (an `Experts` carries it as ``base_state`` when its source branches)."""
    return getattr(experts, "base_state", None)


def _merged(experts, state: dict):
    model = copy.deepcopy(experts.modules[0])
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


def _worst_val(ctx, model) -> float:
    from ..pipeline.evaluate import lm_nll, per_domain

    return float(per_domain(lm_nll(model, ctx.splits.val, ctx.device), ctx.splits.p).max())


class _MergeBase(Combiner):
    grading = "exact"

    def fit(self, ctx, settings):
        base = shared_base(ctx.experts)
        if base is None:
            return CombinerResult(None, skip=NO_SHARED_INIT)
        from ..pipeline.evaluate import lm_nll

        states = [m.state_dict() for m in ctx.experts.modules]
        model, rows = self.merge(ctx, base, states, settings)
        b = ctx.budget
        cost = ctx.cost(b["expert_params"] / ctx.splits.p, b["expert_flops"], b["expert_tokens"])
        return CombinerResult(lm_nll(model, ctx.splits.test, ctx.device).double(), cost, rows=rows)


@register("merge_avg")
class MergeAvg(_MergeBase):
    trains = "nothing (the experts' weights averaged)"

    def merge(self, ctx, base, states, settings):
        return _merged(ctx.experts, merge_average(states)), []


@register("merge_task_arith")
class MergeTaskArith(_MergeBase):
    """Settings: ``alphas`` (the grid; default 0.2, 0.4, 0.6, 0.8, 1.0)."""

    trains = "alpha of the task vectors (grid, worst validation domain)"

    def merge(self, ctx, base, states, settings):
        alphas = [float(a) for a in settings.get("alphas", [0.2, 0.4, 0.6, 0.8, 1.0])]
        models = [_merged(ctx.experts, task_arithmetic(base, states, a)) for a in alphas]
        worst = [_worst_val(ctx, m) for m in models]
        i = int(np.argmin(worst))
        return models[i], [("train", "alpha", alphas[i]), ("train", "worst_val_nll", worst[i])]
