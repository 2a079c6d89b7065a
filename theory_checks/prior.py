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
from scipy.optimize import minimize

from modgen_bench.exact.waterfill import InnerProblem
from modgen_bench.problem import DiscreteProblem
from modgen_bench.provenance import stable_seed

from .batch_solves import linearised_values
from .certified import certified_solve, certified_solve_many
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
    """d_H(conv(V), simplex) in l1 for vertices V (m, p) on the simplex: the farthest point of the
    simplex is a vertex e_k, and ||e_k - y||_1 = 2 (1 - y_k) for y on the simplex, so
    d_H = max_k min_{y in conv V} 2 (1 - y_k) = max_k 2 (1 - max_i V[i, k])."""
    V = np.asarray(V, dtype=np.float64)
    return float(np.max(2.0 * (1.0 - V.max(axis=0))))


def value_original(problem, V) -> tuple[float, float]:
    """(V(Lambda), duality gap) for Lambda = conv(rows of V), by the vertex-domain reduction."""
    sol = certified_solve(_vertex_problem(problem, V), SUPPORT)
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


def _vertex_problem(problem, V) -> DiscreteProblem:
    """The vertex-domain reduction of `value_original`: domains V @ P, padded by repeats."""
    P_v = V @ problem.P
    rows = max(len(V), problem.p)

    def pad(A):
        return np.vstack([A, np.repeat(A[:1], rows - len(A), axis=0)])

    return DiscreteProblem.from_arrays(pad(P_v), pad(problem.E))


def values_many(problems, Vs) -> tuple[list, list]:
    """[(V, gap)] of `value_original` and [(W, certificate)] of `value_linearised` for every
    (problem, V), solved together per shape (`certified_solve_many`, `batch_solves`); a
    linearised game the batch does not certify falls back to `value_linearised`."""
    reduced = [_vertex_problem(pr, V) for pr, V in zip(problems, Vs, strict=True)]
    sols = certified_solve_many(reduced, SUPPORT)
    original = [(s.value, s.duality_gap) for s in sols]
    linear: list = [None] * len(problems)
    groups: dict = {}
    for i, (pr, V) in enumerate(zip(problems, Vs, strict=True)):
        groups.setdefault((pr.P.shape, np.shape(V)), []).append(i)
    for (shape, vshape), idx in groups.items():
        if vshape[0] == shape[0]:
            W, cert = linearised_values(
                np.stack([problems[i].P for i in idx]),
                np.stack([problems[i].E for i in idx]),
                np.stack([Vs[i] for i in idx]),
                SUPPORT,
            )
            for j, i in enumerate(idx):
                if np.isfinite(cert[j]):
                    linear[i] = (float(W[j]), float(cert[j]))
    for i, got in enumerate(linear):
        if got is None:
            linear[i] = value_linearised(problems[i], Vs[i])
    return original, linear


def shrunk_simplex(p: int, c, t: float) -> np.ndarray:
    """Vertices (1 - t) e_k + t c: the simplex shrunk towards c by t (nested, decreasing in t)."""
    return (1.0 - t) * np.eye(p) + t * np.asarray(c)[None, :]


def _solved(n: int, seed: int) -> list:
    """(draw, centre c, full solve, [(V, gap)] and [(W, certificate)] per t in SHRINK) for every
    draw with p >= 2, every game solved together (`values_many`)."""
    items = []
    for i, d in enumerate(draw_instances(n, seed, CLAIM, families=FAMILIES)):
        if d.problem.p >= 2:
            rng = np.random.default_rng(stable_seed(seed, CLAIM, i))
            items.append((d, rng.dirichlet(np.ones(d.problem.p))))
    full = certified_solve_many([d.problem for d, _ in items], SUPPORT)
    original, linear = values_many(
        [d.problem for d, _ in items for _ in SHRINK],
        [shrunk_simplex(d.problem.p, c, t) for d, c in items for t in SHRINK],
    )
    k = len(SHRINK)
    return [
        (d, c, f, original[j * k : (j + 1) * k], linear[j * k : (j + 1) * k])
        for j, ((d, c), f) in enumerate(zip(items, full, strict=True))
    ]


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
    for d, c, full, original, linear in _solved(n, seed):
        prob = d.problem
        L = lipschitz_constant(prob)
        prev_o = prev_l = None
        for t, (vo, go), (vl, gl) in zip(SHRINK, original, linear, strict=True):
            # Lambda_t grows along SHRINK (t decreasing)
            V = shrunk_simplex(prob.p, c, t)
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
