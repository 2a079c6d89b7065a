"""Mutation power: each claim's check run on plausible wrong versions of the claim.

A check that says "holds" is only evidence if it would have said "fails" on a false statement
close to the true one. Each `Mutation` models a wrong proof someone could plausibly write (a
constant off by a factor 2 in the direction that makes the bound too strong, a sign flipped,
a square root lost, a term dropped or counted twice, the wrong end of an envelope) through the
claim module's ``MUTATION`` hook, and names the reading that must then fail. `power` runs the
mutated checks at a small budget (seed as given) and records whether each is caught;
`attach_power` writes "caught/tried" on the verdicts. Only mutations that make the statement
false are listed: a bound made weaker is still true and no check can reject it.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

__all__ = ["Mutation", "MUTATIONS", "MutationResult", "power", "attach_power", "mutated", "BUDGET"]

#: instances per mutated check (the golden-verdict budget of tests/test_theory_verdict.py)
BUDGET = 5


@dataclass(frozen=True)
class Mutation:
    """A false variant of a claim: ``hook`` is set as the claim module's ``MUTATION``, and
    ``reading`` (a reading that holds as stated) must then fail."""

    claim: str
    name: str
    error: str  # the wrong proof step it models
    hook: tuple  # (key, value) pairs of the MUTATION dict
    reading: str


def _m(claim, name, error, reading, **hook) -> Mutation:
    return Mutation(claim, name, error, tuple(sorted(hook.items())), reading)


_PROP2 = "pi = lam @ E"
_JSD = "JSD identity"
_THM3 = "support=union (sigma in G1)"
_PRIOR = "W(D)-W(L) <= L d_H, L=M/2 (linearised)"
_THM6 = "monolith >= lam.eps - JSD_lam"
_TAB = "tabular class, exact sup over G, delta=0.05"
_FIN = "finite class (constant grid + random gates), sup over G, delta=0.05"
_ONE = "one gate (Rad = 0), two-point worst case, delta=0.05"

MUTATIONS: tuple[Mutation, ...] = (
    _m(
        "lemma1",
        "Z target 1.1",
        "normaliser required to reach 1.1 (a constant off by 10%)",
        "support=union",
        mass_target=1.1,
    ),
    _m(
        "lemma1",
        "min envelope",
        "largest normaliser taken as sum_S min_k E_k (only the "
        "pointwise-smallest expert considered)",
        "support=union",
        envelope="min",
    ),
    _m("identities", "JSD dropped", "sum lam KL(P_k||pi) = KL(P_lam||pi)", _JSD, drop_jsd=True),
    _m("identities", "JSD sign flipped", "... = KL(P_lam||pi) - JSD_lam", _JSD, jsd_sign=-1.0),
    _m(
        "identities",
        "JSD unweighted",
        "JSD with uniform weights instead of lam",
        _JSD,
        jsd_uniform=True,
    ),
    _m(
        "identities",
        "H(lam) / 2",
        "JSD_lam <= H(lam) / 2 (a factor 2 too strong)",
        "0 <= JSD_lam <= H(lam)",
        h_scale=0.5,
    ),
    _m("prop2", "eps x 1/2", "lam . eps / 2 (a factor 2 too strong)", _PROP2, scale=0.5),
    _m(
        "prop2",
        "minus JSD",
        "lam . eps - JSD_lam (Thm 3/6's term carried over)",
        _PROP2,
        minus_jsd=True,
    ),
    _m(
        "prop2", "min eps", "min_k eps_k (convexity used the wrong way round)", _PROP2, min_eps=True
    ),
    _m(
        "static_barrier",
        "lse x 1.01",
        "logsumexp(eps) x 1.01 (1% too strong)",
        "disjoint domains, disjoint experts",
        scale=1.01,
    ),
    _m(
        "static_barrier",
        "lse x 2",
        "2 logsumexp(eps) (a factor 2 too strong)",
        "disjoint domains, disjoint experts",
        scale=2.0,
    ),
    _m(
        "static_barrier",
        "max eps + log p",
        "the uniform gate's value max_k eps_k + log p taken for the minimax",
        "disjoint domains, disjoint experts",
        max_plus_log_p=True,
    ),
    _m("thm3", "bound x 1/2", "the whole bound halved", _THM3, scale=0.5),
    _m("thm3", "lse -> max eps", "logsumexp(eps) replaced by max_k eps_k", _THM3, lse_to_max=True),
    _m("thm3", "JSD x 2", "JSD_lam subtracted twice", _THM3, jsd_factor=2.0),
    _m(
        "thm3",
        "gain x 2",
        "the overlap gain H_sigma(lam*) subtracted twice",
        _THM3,
        gain_factor=2.0,
    ),
    _m(
        "lam_star",
        "all domains",
        "every domain attains V*, supported by lam* or not",
        "equalisation on supp lam*",
        drop_weight=True,
    ),
    _m(
        "lam_star",
        "cross-entropy",
        "lam* equalises the cross-entropies (raw NLL) instead of the KLs",
        "equalisation on supp lam*",
        cross_entropy=True,
    ),
    _m("prior", "no Lipschitz term", "V(Delta) - V(Lambda) <= 0", _PRIOR, scale=0.0),
    _m("prior", "L / 2", "L = M / 4 (a factor 2 too strong)", _PRIOR, scale=0.5),
    _m(
        "prior",
        "d_H squared",
        "L d_H^2 (smoothness where only Lipschitz holds)",
        _PRIOR,
        dh_power=2,
    ),
    _m("prior", "max envelope", "M from max_k E_k instead of min_k E_k", _PRIOR, envelope="max"),
    _m("thm6", "JSD dropped", "lam . eps (no JSD)", _THM6, drop_jsd=True),
    _m("thm6", "JSD sign flipped", "lam . eps + JSD_lam", _THM6, jsd_factor=-1.0),
    _m("thm6", "JSD / 2", "lam . eps - JSD_lam / 2 (a factor 2)", _THM6, jsd_factor=0.5),
    _m("thm6", "eps x 2", "2 lam . eps - JSD_lam (a factor 2)", _THM6, eps_factor=2.0),
    _m(
        "thm7",
        "last term dropped",
        "sum over all but the last domain",
        "unrestricted",
        drop_term=True,
    ),
    _m(
        "thm7",
        "uniform weights",
        "the plain average of the pi_k",
        "mixture family, domains in F",
        uniform_weights=True,
    ),
    _m(
        "thm7",
        "geometric pooling",
        "prod_k pi_k^lam_k normalised (e- for m-projection)",
        "mixture family, domains in F",
        geometric=True,
    ),
    _m(
        "thm9",
        "e^M dropped",
        "the contraction without its e^M Lipschitz factor",
        _TAB,
        drop_exp_M=True,
    ),
    _m(
        "thm9",
        "2 sqrt 2 -> sqrt 2",
        "the Rademacher constant off by a factor 2",
        _TAB,
        rad_factor=0.5,
    ),
    _m(
        "thm9",
        "no confidence term",
        "the M sqrt(log(p/delta)/2m) term dropped",
        _ONE,
        drop_conf=True,
    ),
    _m("thm9", "bound x 1/2", "the whole bound halved", _ONE, scale=0.5),
    _m(
        "thm9",
        "sqrt -> first power",
        "M log(p/delta)/(2m) instead of its square root",
        _ONE,
        conf_linear=True,
    ),
    _m("thm9", "no union bound", "log(1/delta) instead of log(p/delta)", _TAB, no_union=True),
    _m(
        "thm9",
        "10% violations",
        "a planted violation rate of 0.1 = 2 delta (caught w.p. >= 0.9)",
        _TAB,
        plant=0.1,
    ),
)


@dataclass
class MutationResult:
    """One mutated run: the mutation, the reading's status and counts under it."""

    mutation: Mutation
    status: str
    violations: int
    instances: int

    @property
    def caught(self) -> bool:
        return self.status == "fails"

    def row(self) -> dict:
        m = self.mutation
        return {
            "claim": m.claim,
            "reading": m.reading,
            "mutation": m.name,
            "error": m.error,
            "status": self.status,
            "caught": self.caught,
            "violations": self.violations,
            "instances": self.instances,
        }


@contextmanager
def mutated(module, hook: dict):
    """Set ``module.MUTATION`` to ``hook`` for the duration; the theorem is restored after."""
    saved = module.MUTATION
    module.MUTATION = dict(hook)
    try:
        yield module
    finally:
        module.MUTATION = saved


def power(claims=(), budget: int = BUDGET, seed: int = 0) -> list[MutationResult]:
    """Run every mutation of ``claims`` (all when empty) at ``budget`` instances; one result each.
    Mutations of one claim sharing a hook run the check once."""
    import sys

    from . import CLAIMS
    from .certified import reusing_solves

    names = set(claims) or set(CLAIMS)
    out, cache = [], {}
    with reusing_solves():
        for mut in (m for m in MUTATIONS if m.claim in names):
            key = (mut.claim, mut.hook)
            if key not in cache:
                check = CLAIMS[mut.claim]
                module = sys.modules[check.__module__]
                with mutated(module, dict(mut.hook)), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cache[key] = {v.reading: v for v in check(budget, seed, None)}
            v = cache[key][mut.reading]
            out.append(MutationResult(mut, v.status, v.violations, v.instances))
    return out


def attach_power(verdicts, results) -> None:
    """Write "caught/tried" on each verdict whose reading some mutation targets."""
    for v in verdicts:
        mine = [
            r for r in results if (r.mutation.claim, r.mutation.reading) == (v.claim, v.reading)
        ]
        if mine:
            v.power = f"{sum(r.caught for r in mine)}/{len(mine)}"


def table(results) -> pd.DataFrame:
    return pd.DataFrame([r.row() for r in results])
