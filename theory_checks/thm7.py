"""Thm 7 (safety in convex settings, PAPER.md section 3) under each reading of "convex family".

Claim: the model refitted on P_lam, M_lam = argmin_{q in F} KL(P_lam || q), equals
sum_k lam[k] pi_k with pi_k = argmin_{q in F} KL(P[k] || q). Margin = -TV(M_lam, sum lam pi_k),
tolerance = sqrt(certificate / 2) (Pinsker on the fits' suboptimality). Readings of F:

- unrestricted (all distributions): pi_k = P[k], M_lam = P_lam; holds exactly.
- mixture family F = conv(B) (m fixed components), with the domains inside F (well specified)
  or outside (misspecified); fitted by `fits.fit_mixture_many` (projected Newton, Frank-Wolfe
  certificate).
- exponential (log-linear) family with d features, fitted by `fits.fit_loglinear_many`. Csiszar's
  Pythagorean identity gives M_lam = Proj_F(sum lam pi_k) (moments are linear in the
  distribution), not M_lam = sum lam pi_k; both statements are checked.
The note also reports safety: how often KL(P_lam || sum lam pi_k) <= KL(P_lam || M_lam).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from modgen_bench.divergences import kl
from modgen_bench.provenance import stable_seed

from .draws import lam_grid
from .fits import fit_loglinear_many, fit_mixture_many, loglinear
from .verdict import Tally

CLAIM = "thm7"
N, P_DOMAINS, M_COMPONENTS, D_FEATURES = 10, 3, 4, 3

#: Mutation hook (theory_checks/mutations.py; empty = the claim as stated), each a plausible wrong
#: form of the refitted model: {"drop_term": True} drops the last domain's term from
#: sum_k lam[k] pi_k (renormalised); {"uniform_weights": True} uses the plain average of the pi_k;
#: {"geometric": True} the normalised geometric pooling prod_k pi_k^lam[k] (the e-projection's
#: form where the m-projection's is meant).
MUTATION: dict = {}


def claimed_model(lam, pis) -> np.ndarray:
    """sum_k lam[k] pi_k, the refitted model Thm 7 claims (MUTATION applied); pis (p, N)."""
    if MUTATION.get("drop_term") and lam[-1] < 1:
        return (lam[:-1] @ pis[:-1]) / lam[:-1].sum()
    if MUTATION.get("uniform_weights"):
        return pis.mean(axis=0)
    if MUTATION.get("geometric"):
        with np.errstate(divide="ignore"):
            log_mix = lam @ np.where(lam[:, None] > 0, np.log(pis), 0.0)
        g = np.exp(log_mix - log_mix.max())
        return g / g.sum()
    return lam @ pis


def tv(a, b) -> float:
    return 0.5 * float(np.abs(a - b).sum())


class Family(NamedTuple):
    """A model family F: "unrestricted", "mixture" (``param`` = the components B, (m, N)) or
    "exponential" (``param`` = the features phi, (N, d)). Called on a target a, the KL projection
    onto F and its certificate; `project_many` projects many targets at once."""

    kind: str
    param: np.ndarray | None = None

    def __call__(self, a) -> tuple[np.ndarray, float]:
        models, certs = project_many([self], np.asarray(a, dtype=np.float64)[None, :])
        return models[0], float(certs[0])


def project_many(families, A) -> tuple[np.ndarray, np.ndarray]:
    """(models (R, N), certificates (R,)): row r of A projected onto families[r], the rows of
    one kind fitted together (`fits.fit_mixture_many`, `fits.fit_loglinear_many`)."""
    A = np.asarray(A, dtype=np.float64)
    models, certs = A.copy(), np.zeros(len(A))  # unrestricted: the target itself, exactly
    for kind in ("mixture", "exponential"):
        rows = [r for r, f in enumerate(families) if f.kind == kind]
        if not rows:
            continue
        params = np.stack([families[r].param for r in rows])
        if kind == "mixture":
            w, certs[rows] = fit_mixture_many(A[rows], params)
            models[rows] = np.einsum("rm,rmn->rn", w, params)
        else:
            theta, certs[rows] = fit_loglinear_many(A[rows], params)
            models[rows] = loglinear(theta, params)
    return models, certs


def _readings(rng):
    """(reading, domains P (p, N), projection onto F) for one random draw."""
    B = rng.dirichlet(np.full(N, 0.5), size=M_COMPONENTS)
    phi = rng.normal(size=(N, D_FEATURES))
    P_out = rng.dirichlet(np.full(N, 0.5), size=P_DOMAINS)
    P_in = rng.dirichlet(np.ones(M_COMPONENTS), size=P_DOMAINS) @ B
    yield "unrestricted", P_out, Family("unrestricted")
    yield "mixture family, domains in F", P_in, Family("mixture", B)
    yield "mixture family, misspecified", P_out, Family("mixture", B)
    yield "exponential family", P_out, Family("exponential", phi)
    yield "exp. family: M_lam = Proj(sum lam pi_k)", P_out, Family("exponential", phi)


def _points(n: int, seed: int):
    """Every (draw seed, reading, P, lam, P_lam, M_lam, target, certificate) of the check, the
    projections of all draws fitted together; in the order draw, reading, lam."""
    lams = lam_grid(P_DOMAINS, 4)
    cases = [
        (s, reading, P, fam)
        for s in (stable_seed(seed, CLAIM, i) for i in range(max(1, n // 5)))
        for reading, P, fam in _readings(np.random.default_rng(s))
    ]
    L = len(lams)
    # the experts pi_k of every case, then M_lam of every (case, lam)
    pis, c_pi = project_many(
        [f for *_, f in cases for _ in range(P_DOMAINS)],
        np.concatenate([P for _, _, P, _ in cases]),
    )
    pis = pis.reshape(len(cases), P_DOMAINS, N)
    c_pi = c_pi.reshape(len(cases), P_DOMAINS).max(axis=1)
    # lam @ P row by row, as `claimed_model` forms lam @ pis (the unrestricted reading compares
    # the two to the last bit)
    P_lam = np.stack([[lam @ P for lam in lams] for _, _, P, _ in cases])
    M, c_m = project_many([f for *_, f in cases for _ in range(L)], P_lam.reshape(-1, N))
    mix = np.stack([claimed_model(lam, pi) for pi in pis for lam in lams])
    target = mix.copy()
    refit = [j for j, (_, r, _, _) in enumerate(cases) if r.startswith("exp. family:")]
    if refit:
        idx = np.concatenate([np.arange(j * L, (j + 1) * L) for j in refit])
        target[idx] = project_many([cases[j][3] for j in refit for _ in range(L)], mix[idx])[0]
    cert = c_m + np.repeat(c_pi, L)
    for j, (s, reading, _, _) in enumerate(cases):
        for i, lam in enumerate(lams):
            r = j * L + i
            yield s, reading, lam, P_lam[j, i], M[r], mix[r], target[r], cert[r]


def check(n: int, seed: int, fig_dir=None) -> list:
    tallies, safe = {}, {}
    for s, reading, lam, P_lam, M, mix, target, cert in _points(n, seed):
        tally = tallies.setdefault(reading, Tally(CLAIM, reading))
        tag = f"thm7._readings(default_rng({s})) {reading}, lam={np.round(lam, 2).tolist()}"
        tally.add(-tv(M, target), tag, np.sqrt(cert / 2))
        ok = kl(P_lam, mix) <= kl(P_lam, M) + 1e-9
        safe.setdefault(reading, []).append(ok)
    notes = {
        r: f"Safety KL(P_lam||sum lam pi_k) <= KL(P_lam||M_lam) at {np.mean(v):.0%} of "
        f"{len(v)} (draw, lam) points."
        for r, v in safe.items()
    }
    notes["exponential family"] += (
        " M_lam has the moments of sum lam pi_k but is log-linear, the mixture is not: they differ."
    )
    notes["mixture family, misspecified"] += (
        " Projections onto a convex family are not linear in the target."
    )
    return [t.verdict(notes[r]) for r, t in tallies.items()]
