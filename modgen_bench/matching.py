"""Matching conventions for the monolith against p experts.

What "a monolith of equal size" means decides the sign of gate-vs-monolith, so it is a setting
recorded in every row, never implicit. A convention fixes the monolith's width (capacity) and its
training steps (budget):

- ``params``: total parameters (embeddings and head included) = experts' + gate's; the monolith
  trains for the experts' steps on ``batch`` windows per domain (so it sees each expert's
  tokens per domain, the suite's historical convention).
- ``nonembedding``: non-embedding parameters = r x the experts' combined (r = 1 by default);
  budget as ``tokens``.
- ``tokens``: width from r; the monolith sees the experts' combined training tokens
  (steps_m = steps_e, batch_m = p x batch_e per step).
- ``compute``: width from r; training FLOPs = the experts' combined training FLOPs
  (steps_m = steps_e x F_e / F_m at batch_m = p x batch_e).
- ``compute_total``: width from r; training FLOPs = every FLOP of the gate side
  (`gate_side_flops`: the experts' training, scoring the cached windows, the proposal,
  restoration and fresh-Z draws with their scoring, SPD, the Z restoration and routing).

Counts follow `modgen_bench.models.TransformerLM` exactly (untied head, learned positions);
FLOPs follow Kaplan et al. 2020 ("Scaling laws for neural language models", Table 1):
forward per token 2 N + 2 n_layer n_ctx d_model with N the non-embedding count plus the head's
matmul (V d; byte vocabularies make it a real cost), training = 3 x forward.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

__all__ = [
    "CONVENTIONS",
    "nonembedding_count",
    "nonembedding_params",
    "embedding_params",
    "total_params",
    "train_flops_per_token",
    "train_flops",
    "width_for_nonembedding",
    "width_for_params",
    "closed_form_counts",
    "MonolithPlan",
    "match_monolith",
    "causal_pass_flops",
    "gate_pass_flops",
    "GateSideFlops",
    "gate_side_flops",
]

CONVENTIONS = ("params", "nonembedding", "compute", "compute_total", "tokens")


def nonembedding_count(module) -> int:
    """Non-embedding parameters of a built module (LM, gate, router, or a list of them): all
    parameters except token and position embeddings and a vocabulary-sized output head."""
    if isinstance(module, (list, tuple)):
        return sum(nonembedding_count(m) for m in module)
    vocab = getattr(getattr(module, "config", None), "vocab_size", None)
    total = 0
    for name, prm in module.named_parameters():
        if name.endswith(("tok.weight", "pos.weight")):
            continue
        if name.endswith("head.weight") and prm.shape[0] == vocab:
            continue
        total += prm.numel()
    return total


def nonembedding_params(cfg) -> int:
    """Parameters outside the token/position embeddings and the output head.

    Per block: two LayerNorms (4 d), qkv (3 d^2 + 3 d), attention proj (d^2 + d), MLP
    (2 d d_ff + d_ff + d); plus the final LayerNorm (2 d):
    n_layer (4 d^2 + 2 d d_ff + 9 d + d_ff) + 2 d.
    """
    d, f = cfg.d_model, cfg.d_ff
    return cfg.n_layer * (4 * d * d + 2 * d * f + 9 * d + f) + 2 * d


def embedding_params(cfg) -> int:
    """Token embedding (V d) + position embedding (T d) + untied head (V d)."""
    return (2 * cfg.vocab_size + cfg.block_size) * cfg.d_model


def total_params(cfg) -> int:
    return nonembedding_params(cfg) + embedding_params(cfg)


def train_flops_per_token(cfg) -> float:
    """Training FLOPs per token position: 3 x (2 (N_nonemb + V d) + 2 n_layer T d) (Kaplan)."""
    fwd = (
        2 * (nonembedding_params(cfg) + cfg.vocab_size * cfg.d_model)
        + 2 * cfg.n_layer * cfg.block_size * cfg.d_model
    )
    return 3.0 * fwd


def train_flops(cfg, steps: int, sequences_per_step: int) -> float:
    """FLOPs of ``steps`` steps on ``sequences_per_step`` sequences of ``block_size`` positions."""
    return train_flops_per_token(cfg) * steps * sequences_per_step * cfg.block_size


def _widths(template, d_max: int = 4096):
    step = template.n_head
    return range(step, d_max + 1, step)


def closed_form_counts(cfg) -> tuple[int, int]:
    """(total, non-embedding) parameters of a built-in `TransformerLM` config (closed forms)."""
    return total_params(cfg), nonembedding_params(cfg)


def _nearest_width(count, target: float, template, scale_ff: bool) -> int:
    """The width d (a multiple of n_head, up to 4096) whose ``count(config at d)`` is nearest
    ``target`` in log ratio, the smaller d on a tie. Counts grow with d, so a bisection finds the
    crossing and only its two neighbours are compared: a few counts, not one per width (a
    family's count may build the model)."""
    widths = _widths(template)

    def cnt(i):
        d = widths[i]
        return count(replace(template, d_model=d, d_ff=4 * d if scale_ff else template.d_ff))

    lo, hi = 0, len(widths) - 1
    while lo < hi:  # first i with cnt(i) >= target (or the last width)
        mid = (lo + hi) // 2
        if cnt(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    best = [i for i in (lo - 1, lo) if i >= 0]
    return widths[min(best, key=lambda i: (abs(math.log(cnt(i) / target)), i))]


def width_for_nonembedding(
    target: float, template, scale_ff: bool = True, counts=closed_form_counts
) -> int:
    """d_model (a multiple of n_head) whose non-embedding count is nearest ``target`` in log
    ratio; d_ff = 4 d when ``scale_ff`` (else the template's d_ff). ``counts(cfg) -> (total,
    non-embedding)``: the family's parameter counts (closed forms for the built-in LMs)."""
    if target <= 0:
        raise ValueError(f"target non-embedding count must be > 0 (got {target})")
    return _nearest_width(lambda c: counts(c)[1], target, template, scale_ff)


def width_for_params(
    target: float, template, scale_ff: bool = True, counts=closed_form_counts
) -> int:
    """d_model whose total count (embeddings and head included) is nearest ``target``."""
    return _nearest_width(lambda c: counts(c)[0], target, template, scale_ff)


@dataclass
class MonolithPlan:
    """The monolith a convention produces, and the ratios every table states.

    Attributes:
        convention: one of CONVENTIONS.
        d_model, d_ff, steps: the monolith's width and training steps.
        batch_per_domain: windows per domain per step (the monolith's batch is p x this).
        r: non-embedding ratio, monolith / experts' combined (gate excluded).
        params_ratio: total params, monolith / (experts + gate).
        compute_ratio: training FLOPs, monolith / experts' combined.
        token_ratio: training tokens, monolith / experts' combined.
    """

    convention: str
    d_model: int
    d_ff: int
    steps: int
    batch_per_domain: int
    r: float
    params_ratio: float
    compute_ratio: float
    token_ratio: float

    def row(self) -> dict:
        return {f"match_{k}" if k != "convention" else "match": v for k, v in asdict(self).items()}


def match_monolith(
    convention: str,
    expert,
    p: int,
    expert_steps: int,
    batch: int,
    template,
    r: float = 1.0,
    gate_params: int = 0,
    scale_ff: bool = True,
    extra_flops: float = 0.0,
    counts=closed_form_counts,
) -> MonolithPlan:
    """Width and steps of the monolith under ``convention`` (see the module docstring).

    ``extra_flops``: the gate side's FLOPs beyond the experts' training (``compute_total`` adds
    them to the budget the monolith trains on; `GateSideFlops.total` minus ``experts_train``).

    ``expert``: the LMConfig of one expert (all p share it); ``template``: the monolith's
    LMConfig (its d_model/d_ff are replaced); each expert trains ``expert_steps`` steps on
    ``batch`` windows. ``r`` is the target non-embedding ratio (ignored by ``params``).
    ``counts(cfg) -> (total, non-embedding)``: the experts' family's parameter counts (a Hugging
    Face family ties its head, for one); FLOPs keep the closed forms.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown matching convention {convention!r}; choose from {CONVENTIONS}")
    if p < 1 or expert_steps < 1 or batch < 1:
        raise ValueError("p, expert_steps and batch must be >= 1")
    total_e, ne_e = counts(expert)
    ne_experts = p * ne_e
    if convention == "params":
        d = width_for_params(p * total_e + gate_params, template, scale_ff, counts)
    else:
        if not r > 0:
            raise ValueError(f"non-embedding ratio r must be > 0 (got {r})")
        d = width_for_nonembedding(r * ne_experts, template, scale_ff, counts)
    mono = replace(template, d_model=d, d_ff=4 * d if scale_ff else template.d_ff)
    f_e, f_m = train_flops_per_token(expert), train_flops_per_token(mono)
    steps = expert_steps
    flops_e = p * train_flops(expert, expert_steps, batch)
    if convention == "compute":
        steps = max(1, round(expert_steps * f_e / f_m))
    elif convention == "compute_total":
        steps = max(1, round((flops_e + extra_flops) / train_flops(mono, 1, p * batch)))
    flops_m = train_flops(mono, steps, p * batch)
    total_m, ne_m = counts(mono)
    return MonolithPlan(
        convention,
        d,
        mono.d_ff,
        steps,
        batch,
        r=ne_m / ne_experts,
        params_ratio=total_m / (p * total_e + gate_params),
        compute_ratio=flops_m / flops_e,
        token_ratio=steps / expert_steps,
    )


def causal_pass_flops(cfg, n: int) -> float:
    """FLOPs of n causal passes over ``block_size - 1`` predicted positions: scoring n windows,
    or drawing n sequences ancestrally WITH a KV cache (each new token runs once, attending to
    the t cached positions before it). Position t (1..T-1) costs 2 (N_nonemb + V d) for the
    weights and 4 n_layer t d for Q K^T and A V, so a window costs
    2 (T - 1)(N + V d) + 2 n_layer d T (T - 1)."""
    T, d = cfg.block_size, cfg.d_model
    per = 2 * (T - 1) * (
        nonembedding_params(cfg) + cfg.vocab_size * d
    ) + 2 * cfg.n_layer * d * T * (T - 1)
    return float(n) * per


def gate_pass_flops(n_nonemb: int, n_layer: int, d_model: int, T: int, n: int) -> float:
    """Forward FLOPs of a non-causal gate on n sequences of T tokens: every position runs the
    weights (2 N_nonemb, the pooled head counted per position: an upper bound) and attends to all
    T positions (4 n_layer T d): n (2 T N + 4 n_layer T^2 d)."""
    return float(n) * (2 * T * n_nonemb + 4 * n_layer * T * T * d_model)


@dataclass
class GateSideFlops:
    """Every FLOP the gate side spends (training = 3 x forward, Kaplan et al. 2020).

    Attributes:
        experts_train: p experts' training (`train_flops`).
        expert_scoring: the cached windows (SPD's pool and the test windows of every domain)
            scored under every expert.
        sampling: draws from the experts (proposal pool, restoration draws, fresh-Z draws), KV
            cached, each then scored under every expert.
        gate_train: SPD: a forward and backward pass of the gate on p x per_domain data windows
            and as many expert draws per step.
        restoration: the Z restoration: a forward and backward pass on its draws per Gauss-Newton
            step plus one for the start, and one forward per accepted step (line-search halvings
            not counted: a lower bound).
        routing: the gate's forward passes that grade it (test windows, fresh-Z draws).
    """

    experts_train: float
    expert_scoring: float
    sampling: float
    gate_train: float
    restoration: float
    routing: float

    @property
    def total(self) -> float:
        return sum(asdict(self).values())

    @property
    def beyond_training(self) -> float:
        return self.total - self.experts_train


def gate_side_flops(
    expert,
    p: int,
    expert_steps: int,
    batch: int,
    n_windows: int,
    n_draws: int,
    gate,
    spd_steps: int,
    per_domain: int,
    n_restore_draws: int,
    restore_steps: int,
    n_routed: int,
) -> GateSideFlops:
    """`GateSideFlops` of one (experts, gate) pair.

    ``expert``: one expert's LMConfig; ``n_windows``: cached windows in all (each scored by p
    experts); ``n_draws``: sequences drawn from the experts in all; ``gate``:
    (n_nonemb, n_layer, d_model) of the gate; ``n_restore_draws``: draws the restoration solves
    on; ``n_routed``: sequences the gate is graded on.
    """
    T = expert.block_size
    g_ne, g_layer, g_d = gate

    def fwd_gate(n):
        return gate_pass_flops(g_ne, g_layer, g_d, T, n)

    return GateSideFlops(
        experts_train=p * train_flops(expert, expert_steps, batch),
        expert_scoring=p * causal_pass_flops(expert, n_windows),
        sampling=(1 + p) * causal_pass_flops(expert, n_draws),
        gate_train=3 * fwd_gate(spd_steps * 2 * p * per_domain),
        restoration=(3 * (1 + restore_steps) + restore_steps) * fwd_gate(n_restore_draws),
        routing=fwd_gate(n_routed),
    )
