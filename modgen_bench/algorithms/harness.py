"""Every stochastic method on a discrete problem, graded exactly (PAPER.md section 4; DESIGN.md
conventions).

Methods propose a gate; the core grades it: `grade` normalises pi_g by its exact Z and reports
the exact worst-case KL (`modgen_bench.gates.evaluate_gate`) and the suboptimality against the
exact minimax value V* (`modgen_bench.exact.solve`). ``ALGORITHMS`` maps a method name to a
runner ``(problem, support, steps, seed, device, lam_signal, gate, evaluate) -> (gate (N, p), lam,
mu, history)``:

- ``alg1``: Algorithm 1 with exact gradients (`alg1.algorithm1`); its gain is the exact
  counterpart of the lam signal (default kl); the gate argument is unused (tabular by construction).
- ``spd``: SPD with the EG lam rule; ``doremi``, ``groupdro``, ``afl``: the same SPD harness with
  the peer lam rule (`lam_rules`), on the rule's own signal unless one is given.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from ..errors import UserError
from ..exact import solve
from ..gates import evaluate_gate
from ..problem import DiscreteProblem
from ..provenance import stable_seed
from ..registry import Registry
from ..threads import cpu_threads
from .alg1 import Alg1Config, algorithm1
from .discrete import DiscreteSampler
from .gates import gate_table, make_gate
from .lam_rules import LAM_RULES
from .spd import SPDConfig, train_spd

__all__ = [
    "ALGORITHMS",
    "MethodRun",
    "grade",
    "exact_value",
    "method_names",
    "run_method",
    "signal_of",
]

ALGORITHMS = Registry("algorithm")


def exact_value(problem: DiscreteProblem, support: str = "domains") -> float:
    """V* from the exact core; an empty G1 or an infinite loss is one clear error."""
    sol = solve(problem, support=support)
    if not sol.optimal:
        raise UserError(sol.reason)
    return float(sol.value)


def grade(problem: DiscreteProblem, gate: np.ndarray, support: str, value: float) -> dict:
    """Exact grade of a (N, p) gate: worst_case_kl, Z, suboptimality = worst_case_kl - V*,
    per-domain KL."""
    ev = evaluate_gate(problem, gate, support)
    return {
        "worst_case_kl": ev["worst_case_kl"],
        "Z": ev["Z"],
        "suboptimality": ev["worst_case_kl"] - value,
        "per_domain_kl": ev["per_domain_kl"],
    }


@ALGORITHMS.register("alg1")
def _run_alg1(problem, support, steps, seed, device, lam_signal, gate, evaluate, **kw):
    kw = dict(kw, signal=lam_signal) if steps is None else dict(kw, signal=lam_signal, steps=steps)
    cfg = Alg1Config(**kw)
    res = algorithm1(problem, cfg, support=support, device=device, evaluate=evaluate)
    return res.gate, res.lam, float("nan"), res.history


def _spd_runner(rule: str):
    def run(problem, support, steps, seed, device, lam_signal, gate, evaluate, **kw):
        cfg = SPDConfig(
            lam_rule=rule, lam_signal=lam_signal, seed=stable_seed(seed, "sampling"), **kw
        )
        if steps is not None:
            cfg = replace(cfg, steps=steps)
        torch.manual_seed(stable_seed(seed, "init"))
        module = make_gate(gate, problem.N, problem.p, seed=stable_seed(seed, "gate"))
        sampler = DiscreteSampler(problem, support, device=device)
        wrapped = None if evaluate is None else (lambda m: evaluate(gate_table(m, problem.N)))
        res = train_spd(module, sampler, cfg, device=device, evaluate=wrapped)
        return gate_table(res.gate, problem.N), res.lam, res.mu, res.history

    return run


ALGORITHMS.register("spd")(_spd_runner("eg"))
for _name in ("doremi", "groupdro", "afl"):
    ALGORITHMS.register(_name)(_spd_runner(_name))


def method_names() -> list[str]:
    """Every name `run_method` accepts: the registered algorithms plus every registered lam rule
    (a rule registered with ``@LAM_RULES.register("name")`` runs in the SPD harness; "eg" is
    "spd")."""
    return sorted(set(ALGORITHMS) | (set(LAM_RULES) - {"eg"}))


def _runner(method: str):
    """The runner of ``method``: a registered algorithm, else SPD with the lam rule of that name."""
    if method in ALGORITHMS:
        return ALGORITHMS[method]
    if method in LAM_RULES and method != "eg":
        return _spd_runner(method)
    raise KeyError(f"unknown method '{method}'; choose one of {', '.join(method_names())}")


def signal_of(method: str, lam_signal: str | None) -> str:
    """The lam signal a method uses: the one given, else the peer rule's own, else 'kl'."""
    if lam_signal is not None:
        return lam_signal
    if method in LAM_RULES and LAM_RULES[method].native_signal:
        return LAM_RULES[method].native_signal
    return "kl"


@dataclass
class MethodRun:
    """A graded run: the returned gate and lam, mu, the log (with exact grades per logged step)."""

    method: str
    lam_signal: str
    gate: np.ndarray
    lam: np.ndarray
    mu: float
    exact_value: float
    grade: dict
    history: pd.DataFrame


def run_method(
    problem: DiscreteProblem,
    method: str = "spd",
    lam_signal: str | None = None,
    gate: str = "table",
    support: str = "domains",
    steps: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    track: bool = False,
    value: float | None = None,
    **config,
) -> MethodRun:
    """Run one registered method and grade its gate exactly; ``track`` grades every logged step.

    ``config`` goes to the method's config dataclass (`SPDConfig` or `Alg1Config`).
    """
    runner = _runner(method)
    value = exact_value(problem, support) if value is None else value
    signal = signal_of(method, lam_signal)
    evaluate = None
    if track:

        def evaluate(g):
            out = grade(problem, g, support, value)
            return {k: out[k] for k in ("worst_case_kl", "Z", "suboptimality")}

    with cpu_threads(1):  # tensors of a few hundred entries: extra intra-op threads only add waits
        g, lam, mu, history = runner(
            problem, support, steps, seed, device, signal, gate, evaluate, **config
        )
    return MethodRun(
        method=method,
        lam_signal=signal,
        gate=g,
        lam=np.asarray(lam),
        mu=mu,
        exact_value=value,
        grade=grade(problem, g, support, value),
        history=history,
    )
