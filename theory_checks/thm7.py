"""Thm 7 (safety in convex settings, PAPER.md section 3) under each reading of "convex family".

Claim: the model refitted on P_lam, M_lam = argmin_{q in F} KL(P_lam || q), equals
sum_k lam[k] pi_k with pi_k = argmin_{q in F} KL(P[k] || q). Margin = -TV(M_lam, sum lam pi_k),
tolerance = sqrt(certificate / 2) (Pinsker on the fits' suboptimality). Readings of F:

- unrestricted (all distributions): pi_k = P[k], M_lam = P_lam; holds exactly.
- mixture family F = conv(B) (m fixed components), with the domains inside F (well specified)
  or outside (misspecified); fitted by `fits.fit_mixture` (SLSQP, Frank-Wolfe certificate).
- exponential (log-linear) family with d features, fitted by `fits.fit_loglinear`. Csiszar's
  Pythagorean identity gives M_lam = Proj_F(sum lam pi_k) (moments are linear in the
  distribution), not M_lam = sum lam pi_k; both statements are checked.
The note also reports safety: how often KL(P_lam || sum lam pi_k) <= KL(P_lam || M_lam).
"""

from __future__ import annotations

import numpy as np

from modgen_bench.divergences import kl, mixture
from modgen_bench.provenance import stable_seed

from .draws import lam_grid
from .fits import fit_loglinear, fit_mixture, loglinear
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


def _mixture_family(B):
    def project(a):
        w, cert = fit_mixture(a, B)
        return w @ B, cert

    return project


def _exp_family(phi):
    def project(a):
        theta, cert = fit_loglinear(a, phi)
        return loglinear(theta, phi), cert

    return project


def _unrestricted(a):
    return np.asarray(a, dtype=np.float64), 0.0


def _readings(rng):
    """(reading, domains P (p, N), projection onto F) for one random draw."""
    B = rng.dirichlet(np.full(N, 0.5), size=M_COMPONENTS)
    phi = rng.normal(size=(N, D_FEATURES))
    P_out = rng.dirichlet(np.full(N, 0.5), size=P_DOMAINS)
    P_in = rng.dirichlet(np.ones(M_COMPONENTS), size=P_DOMAINS) @ B
    yield "unrestricted", P_out, _unrestricted
    yield "mixture family, domains in F", P_in, _mixture_family(B)
    yield "mixture family, misspecified", P_out, _mixture_family(B)
    yield "exponential family", P_out, _exp_family(phi)
    yield "exp. family: M_lam = Proj(sum lam pi_k)", P_out, _exp_family(phi)


def check(n: int, seed: int, fig_dir=None) -> list:
    tallies, safe = {}, {}
    lams = lam_grid(P_DOMAINS, 4)
    for i in range(max(1, n // 5)):
        s = stable_seed(seed, CLAIM, i)
        for reading, P, project in _readings(np.random.default_rng(s)):
            tally = tallies.setdefault(reading, Tally(CLAIM, reading))
            fits = [project(Pk) for Pk in P]
            pis = np.stack([f[0] for f in fits])
            for lam in lams:
                P_lam = mixture(lam, P)
                M, c_m = project(P_lam)
                mix = claimed_model(lam, pis)
                target = project(mix)[0] if reading.startswith("exp. family:") else mix
                cert = c_m + max(f[1] for f in fits)
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
