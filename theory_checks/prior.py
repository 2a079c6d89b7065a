"""Prior knowledge (PAPER.md section 4.3, Thms 4-5): V* over a polytope Lambda = conv(vertices).

Two games restricted to Lambda, both computed exactly:
- original: V(Lambda) = min_q max_{lam in Lambda} KL(P_lam || q). KL(P_lam || q) is convex in lam,
  so the max sits at a vertex v of Lambda and V(Lambda) is the unrestricted problem whose
  "domains" are the vertex mixtures P_v (rows padded by repeats, experts padded by repeats so the
  envelope is unchanged): waterfill solves it, certified.
- linearised: W(Lambda) = min_q max_{lam in Lambda} sum_k lam[k] KL(P[k] || q) = max_{lam in Lambda}
  D(lam) (minimax theorem; D = the waterfill dual function, concave), maximised over the vertex
  weights by SLSQP; certificate = max_v v . KL(q) - D(lam) at the returned lam.

Lipschitz constant (ours; l1 Hausdorff distance d_H; Lambda inside Lambda'): with q the optimum for
Lambda and lam' in Lambda nearest to a maximiser over Lambda',
    W(Lambda') - W(Lambda) <= <KL(q), lam - lam'> <= (max_k KL_k(q) - min_k KL_k(q)) / 2 * d_H
                           <= L * d_H,   L = M / 2,   M = max_{x in X0} log(1 / min_k E[k](x)),
since KL(P[k] || q) <= CE(P[k], q) <= M for any q >= min_k E[k]. L is finite when every expert
covers X0. The same L is tested on the original game, which it does not cover: JSD_lam enters
V(Lambda) and behaves like t log(1/t) near the vertices, so no Lipschitz constant exists there.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, minimize

from modgen_bench.exact.waterfill import InnerProblem
from modgen_bench.problem import DiscreteProblem
from modgen_bench.provenance import stable_seed

from .certified import certified_solve
from .draws import draw_instances
from .verdict import Tally

CLAIM = "prior"
SUPPORT = "union"
SHRINK = (0.5, 0.2, 0.05, 0.01, 0.001)
FAMILIES = ("dirichlet", "overlap", "identical", "near_deterministic", "face")

#: Mutation hook (theory_checks/mutations.py; empty = the claim as stated), each a plausible wrong
#: proof of a smaller constant: {"scale": s} checks s x L; {"envelope": "max"} takes M from
#: max_k E[k] instead of min_k E[k] (the wrong end of the experts' envelope); {"dh_power": 2}
#: checks L d_H^2 (a smoothness argument where only Lipschitz continuity holds).
MUTATION: dict = {}


def lipschitz_constant(problem) -> float:
    """L = (1/2) max_{x in X0} log(1 / min_k E[k](x)) (inf if an expert misses X0)."""
    seen = np.any(problem.P > 0, axis=0)
    envelope = np.max if MUTATION.get("envelope") == "max" else np.min
    lo = envelope(problem.E[:, seen], axis=0)
    with np.errstate(divide="ignore"):
        return MUTATION.get("scale", 1.0) * 0.5 * float(np.max(-np.log(lo)))


def lipschitz_bound(L: float, dH: float) -> float:
    """L d_H, the claimed bound on V(Delta) - V(Lambda) (MUTATION applied)."""
    return L * dH ** MUTATION.get("dh_power", 1)


def hausdorff_to_simplex(V) -> float:
    """d_H(conv(V), simplex) in l1 = max_k min_{mu} ||e_k - V^T mu||_1 (one LP per vertex e_k)."""
    m, p = V.shape
    worst = 0.0
    for k in range(p):
        e = np.eye(p)[k]
        # variables (mu (m), s (p)); minimise sum s, s >= +-(e - V^T mu), sum mu = 1
        A_ub = np.block([[-V.T, -np.eye(p)], [V.T, -np.eye(p)]])
        b_ub = np.r_[-e, e]
        res = linprog(
            np.r_[np.zeros(m), np.ones(p)],
            A_ub=A_ub,
            b_ub=b_ub,
            A_eq=np.r_[np.ones(m), np.zeros(p)][None, :],
            b_eq=[1.0],
            bounds=(0, None),
            method="highs",
        )
        worst = max(worst, float(res.fun))
    return worst


def value_original(problem, V) -> tuple[float, float]:
    """(V(Lambda), duality gap) for Lambda = conv(rows of V), by the vertex-domain reduction."""
    P_v = V @ problem.P
    rows = max(len(V), problem.p)

    def pad(A):
        return np.vstack([A, np.repeat(A[:1], rows - len(A), axis=0)])

    sol = certified_solve(DiscreteProblem.from_arrays(pad(P_v), pad(problem.E)), SUPPORT)
    return sol.value, sol.duality_gap


def value_linearised(problem, V) -> tuple[float, float]:
    """(W(Lambda), certificate) = max_{mu in simplex} D(V^T mu), by SLSQP on mu from the
    barycentre and from the best vertex; the start with the smaller certificate wins."""
    inner = InnerProblem(problem, SUPPORT)
    m = len(V)

    def lam_of(mu):
        mu = np.clip(mu, 0, None)
        return mu @ V / mu.sum() if mu.sum() > 0 else V.mean(axis=0)

    def neg_D(mu):
        lam = lam_of(mu)
        q, t = inner.model(lam)
        g = inner.kl_per_domain(q)
        return -float(lam @ g), -(V @ g)  # D(lam) = lam . KL(q(lam)) when sum q = 1

    def certify(mu):
        lam = lam_of(mu)
        q, t = inner.model(lam)
        primal = float(np.max(V @ inner.kl_per_domain(q)))
        # the core's bound divides by t and is garbage on degenerate boxes (lo = hi where
        # P_lam > 0; reported upstream): no certificate (inf) rather than a wrong one
        bound = inner.dual_bound(lam, q, t) if t > 0 else -np.inf
        return primal, primal - bound if bound <= primal + 1e-9 else np.inf

    best_vertex = np.eye(m)[int(np.argmin([neg_D(e)[0] for e in np.eye(m)]))]
    results = []
    for mu0 in (np.full(m, 1.0 / m), 0.9 * best_vertex + 0.1 / m):
        res = minimize(
            neg_D,
            mu0,
            jac=True,
            method="SLSQP",
            bounds=[(0, 1)] * m,
            constraints=[
                {"type": "eq", "fun": lambda mu: mu.sum() - 1.0, "jac": lambda mu: np.ones(m)}
            ],
            options={"ftol": 1e-15, "maxiter": 500},
        )
        results.append(certify(res.x))
    return min(results, key=lambda r: r[1])


def shrunk_simplex(p: int, c, t: float) -> np.ndarray:
    """Vertices (1 - t) e_k + t c: the simplex shrunk towards c by t (nested, decreasing in t)."""
    return (1.0 - t) * np.eye(p) + t * np.asarray(c)[None, :]


def check(n: int, seed: int, fig_dir=None) -> list:
    mono_o, mono_l = (
        Tally(CLAIM, "V monotone in Lambda (original)"),
        Tally(CLAIM, "V monotone in Lambda (linearised)"),
    )
    lip_l, lip_o = (
        Tally(CLAIM, "W(D)-W(L) <= L d_H, L=M/2 (linearised)"),
        Tally(CLAIM, "same L, original game"),
    )
    ratios = []
    for i, d in enumerate(draw_instances(n, seed, CLAIM, families=FAMILIES)):
        prob = d.problem
        if prob.p < 2:
            continue
        rng = np.random.default_rng(stable_seed(seed, CLAIM, i))
        full = certified_solve(prob, SUPPORT)
        L = lipschitz_constant(prob)
        c = rng.dirichlet(np.ones(prob.p))
        prev_o = prev_l = None
        for t in SHRINK:  # Lambda_t grows along SHRINK (t decreasing)
            V = shrunk_simplex(prob.p, c, t)
            vo, go = value_original(prob, V)
            vl, gl = value_linearised(prob, V)
            tag = f"{d} Lambda = simplex shrunk by t={t} towards c={np.round(c, 4).tolist()}"
            if prev_o is not None:
                mono_o.add(vo - prev_o[0], tag, prev_o[1] + go, prob, sides=(prev_o[0], vo))
                mono_l.add(vl - prev_l[0], tag, prev_l[1] + gl, prob, sides=(prev_l[0], vl))
            prev_o, prev_l = (vo, go), (vl, gl)
            dH = hausdorff_to_simplex(V)
            if np.isfinite(L):
                bound = lipschitz_bound(L, dH)
                lip_l.add(
                    bound - (full.value - vl),
                    tag,
                    full.duality_gap + gl,
                    prob,
                    sides=(full.value - vl, bound),
                )
                lip_o.add(
                    bound - (full.value - vo),
                    tag,
                    full.duality_gap + go,
                    prob,
                    sides=(full.value - vo, bound),
                )
            if dH > 0:
                ratios.append(((full.value - vo) / dH, (full.value - vl) / dH, t))
    r = np.array(ratios)
    small = r[r[:, 2] == min(SHRINK)]
    note = (
        (
            f"Empirical (V(Delta) - V(Lambda)) / d_H: linearised max {r[:, 1].max():.3g}, "
            f"original max {r[:, 0].max():.3g}; at t = {min(SHRINK)} the original ratio reaches "
            f"{small[:, 0].max():.3g} (it grows like log(1/t)) while the linearised one stays "
            f"<= {small[:, 1].max():.3g}."
        )
        if len(r)
        else ""
    )
    return [
        mono_o.verdict("Nested shrunk simplices; margin = V(bigger) - V(smaller)."),
        mono_l.verdict("Nested shrunk simplices; margin = W(bigger) - W(smaller)."),
        lip_l.verdict("Derived constant L = M/2 with M = max_X0 log(1/min_k E_k). " + note),
        lip_o.verdict(
            "The original game is not Lipschitz in Lambda (JSD_lam ~ t log(1/t) at "
            "the vertices). " + note
        ),
    ]
