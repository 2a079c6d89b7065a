"""Thm 3 (PAPER.md section 3): for the saddle point (lam*, g*) and every mixture lam,

    KL(P_lam || pi_g*) <= logsumexp(eps) - H_sigma(lam*) - JSD_lam,    sigma = softmax(eps).

Margin = bound - actual, minimised over lam three ways: the vertices, a grid on the simplex, and
(on every SEARCH_EVERY-th instance) Nelder-Mead on softmax logits; 10 n random instances are
drawn. On top, Nelder-Mead over whole small problems (p = 2, N = 4)
looks for the smallest margin (is the bound ever tight?). Readings: support `union` (sigma is
always in G1), support `domains` when sigma is in G1 (the experts put no mass off X0), and
support `domains` when it is not (leaking experts; instances with an empty G1 are skipped),
the last also searched over the leak and noise of the `leaking` family.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from modgen_bench import instances
from modgen_bench.divergences import jsd, kl, mixture, overlap_gain, sigma_weights, static_barrier
from modgen_bench.gates import constant_gate, evaluate_gate
from modgen_bench.provenance import stable_seed

from .certified import certified_solve, certified_solve_many
from .draws import DEFAULT_FAMILIES, draw_instances, lam_grid, problem_from_logits, search_lam
from .report import save_figure
from .verdict import Tally

CLAIM = "thm3"
GRID_STEPS = 10
SEARCH_EVERY = 10

#: Mutation hook (theory_checks/mutations.py; empty = the claim as stated), each a plausible wrong
#: proof of a stronger bound: {"scale": s} checks s x the bound; {"drop_lse": True} drops
#: logsumexp(eps); {"lse_to_max": True} replaces logsumexp(eps) by max_k eps_k (the softmax's
#: log-partition slack lost); {"jsd_factor": 2} counts JSD_lam twice; {"gain_factor": 2} counts
#: the overlap gain H_sigma(lam*) twice.
MUTATION: dict = {}


class Bound:
    """The two sides of Thm 3 on one problem, solved once under one support convention."""

    def __init__(self, problem, support: str, sol=None):
        self.problem = problem
        self.sol = certified_solve(problem, support) if sol is None else sol
        eps = kl(problem.P, problem.E)
        self.sigma = sigma_weights(eps)
        self.sigma_in_g1 = (
            abs(evaluate_gate(problem, constant_gate(self.sigma, problem.N), support)["Z"] - 1.0)
            <= 1e-12
        )
        self.const = np.nan  # no certified lam*: `record` tallies a solver failure instead
        if self.sol.optimal:
            lse = float(eps.max()) if MUTATION.get("lse_to_max") else static_barrier(eps)
            gain = overlap_gain(self.sol.lam, problem.P, problem.E, self.sigma)
            self.const = lse - MUTATION.get("gain_factor", 1.0) * gain

    def actual(self, lam) -> float:
        """KL(P_lam || pi_g*)."""
        return float(kl(mixture(lam, self.problem.P), self.sol.model))

    def bound(self, lam) -> float:
        """logsumexp(eps) - H_sigma(lam*) - JSD_lam (MUTATION applied)."""
        b = self.const - MUTATION.get("jsd_factor", 1.0) * jsd(lam, self.problem.P)
        if MUTATION.get("drop_lse"):
            b -= static_barrier(kl(self.problem.P, self.problem.E))
        return MUTATION.get("scale", 1.0) * b

    def margin(self, lam) -> float:
        return self.bound(lam) - self.actual(lam)

    def worst(self, rng, search: bool = True) -> tuple[np.ndarray, float]:
        """(lam, margin) minimising the margin: vertices and a grid, then (``search``)
        Nelder-Mead from the best grid point and a random start."""
        p = self.problem.p
        steps = GRID_STEPS if p <= 3 else 3
        if search:
            lam, neg = search_lam(lambda lam: -self.margin(lam), p, rng, starts=1, grid_steps=steps)
            return lam, -neg
        grid = lam_grid(p, steps)
        margins = [self.margin(lam) for lam in grid]
        return grid[int(np.argmin(margins))], float(min(margins))


def record(tally: Tally, b: Bound, rng, instance: str, search: bool = True) -> None:
    """Tally the worst margin of ``b``; a solve that did not certify (status "inaccurate", gap
    inf from `certified_solve`) is tallied as a solver failure (`verdict.Tally.add`), not
    skipped."""
    if not b.sol.optimal:
        tally.add(np.nan, instance, b.sol.duality_gap, b.problem)
        return
    lam, m = b.worst(rng, search=search)
    tally.add(
        m,
        f"{instance} lam={np.round(lam, 4).tolist()}",
        b.sol.duality_gap,
        b.problem,
        sides=(b.actual(lam), b.bound(lam)),
    )


def _search_tight(seed: int, tally: Tally) -> None:
    """Nelder-Mead over (P, E) logits of a p = 2, N = 4 problem, minimising the worst margin."""
    rng = np.random.default_rng(seed)
    grid = lam_grid(2, 4)

    def f(theta):
        b = Bound(problem_from_logits(theta, 2, 4), "union")
        if not b.sol.optimal:
            return 10.0  # no certified answer to measure; the final point is tallied below
        return min(b.margin(lam) for lam in grid)

    res = minimize(f, rng.normal(size=16), method="Nelder-Mead", options={"maxiter": 250})
    prob = problem_from_logits(res.x, 2, 4)
    record(tally, Bound(prob, "union"), rng, f"search over (P, E) logits, seed {seed}:")


def _leaking(seed: int, z) -> tuple:
    sizes = {
        "p": 2,
        "N": 8,
        "support": 5,
        "leak": round(float(0.2 * expit(z[0])), 6),
        "noise": round(float(expit(z[1])), 6),
    }
    return instances.make("leaking", seed, **sizes), sizes


def _search_leaking(seed: int, tally: Tally) -> None:
    """Nelder-Mead on (leak <= 0.2, noise) of `leaking` under `domains`, minimising the margin."""
    grid = lam_grid(2, 4)

    def f(z):
        b = Bound(_leaking(seed, z)[0], "domains")
        if not b.sol.optimal or b.sigma_in_g1:
            return 10.0  # outside the reading: G1 empty, or nothing leaks
        return min(b.margin(lam) for lam in grid)

    res = minimize(f, np.array([-3.0, -1.0]), method="Nelder-Mead", options={"maxiter": 80})
    prob, sizes = _leaking(seed, res.x)
    b = Bound(prob, "domains")
    if b.sol.status != "infeasible" and not b.sigma_in_g1:
        args = ", ".join(f"{k}={v!r}" for k, v in sizes.items())
        record(
            tally,
            b,
            np.random.default_rng(seed),
            f"search: instances.make('leaking', {seed}, {args})",
        )


def figure(seed: int, fig_dir) -> tuple[str, str]:
    """Bound and actual over lam in [0, 1] for three p = 2 instances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    ts = np.linspace(0, 1, 101)
    for ax, family in zip(axes, ("disjoint", "overlap", "dirichlet"), strict=True):
        b = Bound(
            __import__("modgen_bench.instances", fromlist=["make"]).make(
                family, stable_seed(seed, CLAIM, "figure", family), p=2, N=10
            ),
            "union",
        )
        lams = np.stack([ts, 1 - ts], axis=1)
        ax.plot(ts, [b.bound(lam) for lam in lams], label="Thm 3 bound")
        ax.plot(ts, [b.actual(lam) for lam in lams], "--", label="KL(P_lam || pi_g*)")
        ax.set_title(f"{family} (p=2, N=10)")
        ax.set_xlabel("lam[0]")
    axes[0].set_ylabel("nats")
    axes[0].legend()
    return save_figure(
        fig,
        fig_dir,
        "thm3_bound_vs_actual",
        "Thm 3: bound (solid) and actual KL(P_lam || pi_g*) (dashed) over lam, p = 2: "
        "both curve with -JSD_lam and the gap is smallest at the vertices",
    )


def check(n: int, seed: int, fig_dir=None) -> list:
    union = Tally(CLAIM, "support=union (sigma in G1)")
    dom_in = Tally(CLAIM, "support=domains, sigma in G1")
    dom_out = Tally(CLAIM, "support=domains, sigma not in G1")
    empty, tight = 0, {}
    families = DEFAULT_FAMILIES + ("leaking",)
    draws = list(draw_instances(SEARCH_EVERY * n, seed, CLAIM, families=families))
    sols = {
        support: certified_solve_many([d.problem for d in draws], support)
        for support in ("union", "domains")
    }  # solved together (`solve_many`)
    for i, d in enumerate(draws):
        rng = np.random.default_rng(stable_seed(seed, CLAIM, i))
        for support in ("union", "domains"):
            b = Bound(d.problem, support, sols[support][i])
            if b.sol.status == "infeasible":
                empty += 1
                continue
            if b.sol.optimal and not np.isfinite(b.const):
                continue
            tally = union if support == "union" else dom_in if b.sigma_in_g1 else dom_out
            n_tight = tally.tight
            record(tally, b, rng, str(d), search=i % SEARCH_EVERY == 0)
            if support == "union" and tally.tight > n_tight:
                tight[d.family] = tight.get(d.family, 0) + 1
    for i in range(max(1, n // 4)):
        s = stable_seed(seed, CLAIM, "leaking", i)
        rng = np.random.default_rng(s)
        sizes = {
            "p": int(rng.integers(2, 4)),
            "N": 10,
            "support": int(rng.integers(5, 10)),
            "leak": round(float(rng.uniform(0.002, 0.1)), 4),
        }
        b = Bound(instances.make("leaking", s, **sizes), "domains")
        if b.sol.status == "infeasible":
            empty += 1
            continue
        record(
            dom_in if b.sigma_in_g1 else dom_out,
            b,
            rng,
            f"instances.make('leaking', {s}, **{sizes})",
        )
    random_worst = union.worst_margin
    for i in range(max(1, n // 50)):
        _search_tight(stable_seed(seed, CLAIM, "search", i), union)
        _search_leaking(stable_seed(seed, CLAIM, "search-leaking", i), dom_out)
    figures = [figure(seed, fig_dir)] if fig_dir else []
    return [
        union.verdict(
            f"Worst margin on random instances {random_worst:.3g} nats. Tight (margin "
            f"within the certificate) on {sum(tight.values())} instances, by family "
            f"{tight}: all domains the same point mass a with every E_k(a) equal "
            "(`leaking` with support = 1), where bound = V* = eps_k; also exactly "
            "tight for exact experts on disjoint domains (E_k = P_k: V* = log p = "
            "bound at every lam, pinned in tests). "
            "Elsewhere the search over p = 2, N = 4 problems drives the margin towards "
            "0 at lam* on a vertex e_k where sigma is nearly optimal for domain k.",
            figures,
        ),
        dom_in.verdict("Same bound under the paper's convention when the experts live on X0."),
        dom_out.verdict(
            "Leaking experts: the witness sigma is not in G1, so the paper's proof "
            "does not apply, yet no violation is found (the search drives the leak "
            "to 0). Why: when G1 is non-empty, sum_X0 hi >= 1 >= Z_sigma, so some q "
            "in G1 has q >= pi_sigma on X0, hence KL(P_k||q) <= KL(P_k||pi_sigma) "
            "for every k and the bound follows. When G1 is empty there is no g* and "
            f"the theorem says nothing ({empty} instance/convention pairs, "
            "skipped)."
        ),
    ]
