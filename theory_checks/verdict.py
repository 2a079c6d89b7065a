"""The verdict of one claim under one reading, and the tally that produces it.

A check evaluates a claim on many instances; on each it records the *margin* (how far the claim
holds: bound minus actual for an upper bound, actual minus bound for a lower bound, minus the
residual for an identity; negative = violated) and the certificate of the exact solves behind it.
A negative margin no larger in size than the instance's tolerance (its certificate plus a
floating-point floor) is not a violation.

The tolerance grows only with a *certified* certificate (finite, at most CERT_MAX). A solve that
did not certify (certificate inf, NaN or above CERT_MAX, e.g. a failed solve with a gap of 1.5)
is a solver failure: its margin is not tallied, the row counts it, and a claim that would
otherwise hold is "inconclusive".

Tightness: an instance may also record the two sides of the claimed inequality as ``sides =
(smaller, larger)`` (observed / bound for an upper bound, bound / observed for a lower bound).
Their ratio is 1 where the bound is attained, below 1 where it is slack and above 1 where it is
violated; the verdict reports its median and maximum (the tightest instance) over the instances
where both sides are positive. Identities (two sides that must be equal) record no ratio.

A reading that lies outside the theorem's hypothesis (``outside=True``) is tallied the same way but
its status is "outside hypothesis": it shows what happens beyond the theorem, never a failure of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from modgen_bench.problem import DiscreteProblem

__all__ = ["Verdict", "Tally", "FLOOR", "CERT_MAX", "STATUSES"]

#: Floating-point floor added to every certificate: nats-scale sums of ~1e2 terms in float64.
FLOOR = 1e-9

#: Largest certificate that still certifies. The exact core certifies to 1e-9 + 1e-9 |V|, the
#: static gate to 1e-6; the loosest legitimate certificate is thm7's TV bound sqrt(KL gap / 2)
#: of its projections (~3e-4 measured). Anything larger is a solve that failed.
CERT_MAX = 1e-3

STATUSES = ("holds", "fails", "vacuous", "inconclusive", "outside hypothesis")


def _none_if_nan(x: float):
    return None if math.isnan(x) else x


@dataclass
class Verdict:
    """One row of the verdict table.

    Attributes:
        claim: claim id (a key of `theory_checks.CLAIMS`), e.g. "lemma1".
        reading: the assumption or convention checked, e.g. "support=domains".
        instances: instances on which the claim's hypothesis held and it was evaluated.
        status: "holds", "fails", "vacuous" (no instance met the hypothesis), "inconclusive"
            (no certified violation, but some solves did not certify: see ``solver_failures``)
            or "outside hypothesis" (a reading beyond the theorem's hypothesis: reported, never a
            failure of the theorem).
        worst_margin: margin at the worst instance, the one closest to a violation after its
            tolerance (negative beyond tolerance = a counterexample).
        worst_instance: how to regenerate the worst instance (family, seed, parameters).
        certificate: largest duality gap (or optimality residual) of the solves used.
        tolerance: the violation threshold applied at the worst instance.
        tight: instances whose margin is within tolerance of 0 (the bound is attained).
        violations: instances whose margin is below minus their tolerance.
        solver_failures: instances whose solves did not certify (not tallied; see CERT_MAX).
        note: what the numbers mean (findings, the constant used, what happens otherwise).
        counterexample: the worst instance as a problem, kept when the claim fails.
        counterexample_file: where `run_checks` saved it (set by the runner).
        figures: (caption, path) pairs made by the check.
        ratio_median, ratio_max: tightness, smaller side / larger side of the claimed inequality
            (1 = attained, > 1 = violated), median and maximum over the instances with both
            sides positive; NaN for identities.
        ratios: how many instances those two numbers summarise.
        power: mutations of this reading caught by the check, "caught/tried" ("" = none tried;
            set by `mutations.attach_power`).
    """

    claim: str
    reading: str
    instances: int
    status: str
    worst_margin: float
    worst_instance: str
    certificate: float
    tolerance: float
    tight: int = 0
    violations: int = 0
    note: str = ""
    counterexample: DiscreteProblem | None = None
    solver_failures: int = 0
    counterexample_file: str = ""
    figures: list = field(default_factory=list)
    ratio_median: float = math.nan
    ratio_max: float = math.nan
    ratios: int = 0
    power: str = ""

    def row(self) -> dict:
        """The flat record written to verdicts.csv / verdicts.json (no margin: None, not NaN)."""
        margin = None if math.isnan(self.worst_margin) else self.worst_margin
        return {
            "claim": self.claim,
            "reading": self.reading,
            "instances": self.instances,
            "status": self.status,
            "worst_margin": margin,
            "worst_instance": self.worst_instance,
            "certificate": self.certificate,
            "tolerance": self.tolerance,
            "tight": self.tight,
            "violations": self.violations,
            "solver_failures": self.solver_failures,
            "ratio_median": _none_if_nan(self.ratio_median),
            "ratio_max": _none_if_nan(self.ratio_max),
            "ratios": self.ratios,
            "power": self.power,
            "note": self.note,
            "counterexample_file": self.counterexample_file,
        }


@dataclass
class Tally:
    """Accumulates (margin, certificate, instance) records and turns them into a `Verdict`."""

    claim: str
    reading: str
    n: int = 0
    worst_margin: float = math.inf
    worst_slack: float = math.inf  # margin + tolerance: negative = a real violation
    worst_instance: str = ""
    worst_problem: DiscreteProblem | None = None
    worst_tolerance: float = FLOOR
    certificate: float = 0.0
    tight: int = 0
    violations: int = 0
    solver_failures: int = 0
    first_failure: str = ""
    outside: bool = False
    ratios: list = field(default_factory=list)

    def add(
        self,
        margin: float,
        instance: str,
        certificate: float = 0.0,
        problem: DiscreteProblem | None = None,
        sides=None,
    ) -> None:
        """Record one evaluated instance; NaN margins are errors, not data.

        ``sides = (smaller, larger)``: the two sides of the claimed inequality, kept for the
        tightness ratio when both are positive and finite. An uncertified certificate (NaN, inf
        or > CERT_MAX) records a solver failure instead: the margin is not tallied and the
        tolerance does not grow."""
        certificate = float(certificate)
        if not (certificate <= CERT_MAX):  # NaN and inf included
            self.solver_failures += 1
            self.first_failure = self.first_failure or f"{instance} (certificate {certificate:.3g})"
            return
        if math.isnan(margin):
            raise ValueError(f"{self.claim}/{self.reading}: NaN margin on {instance}")
        certificate = max(certificate, 0.0)
        tol = certificate + FLOOR
        self.n += 1
        if sides is not None:
            small, large = float(sides[0]), float(sides[1])
            if small > 0 and np.isfinite(small) and 0 < large < math.inf:
                self.ratios.append(small / large)
        self.certificate = max(self.certificate, certificate)
        if abs(margin) <= tol:
            self.tight += 1
        slack = margin + tol
        self.violations += int(slack < 0)
        if slack < self.worst_slack:
            self.worst_slack, self.worst_margin = slack, margin
            self.worst_instance, self.worst_problem, self.worst_tolerance = instance, problem, tol

    @property
    def fails(self) -> bool:
        return self.n > 0 and self.worst_slack < 0

    def verdict(self, note: str = "", figures=None) -> Verdict:
        status = (
            "vacuous"
            if self.n == 0 and not self.solver_failures
            else "outside hypothesis"
            if self.outside
            else "fails"
            if self.fails
            else "inconclusive"
            if self.solver_failures
            else "holds"
        )
        if self.solver_failures:
            note = (
                f"{self.solver_failures} instance(s) not tallied: their solves did not certify "
                f"(first: {self.first_failure}). " + note
            )
        return Verdict(
            claim=self.claim,
            reading=self.reading,
            instances=self.n,
            status=status,
            worst_margin=self.worst_margin if self.n else math.nan,
            worst_instance=self.worst_instance,
            certificate=self.certificate,
            tolerance=self.worst_tolerance,
            tight=self.tight,
            violations=self.violations,
            note=note,
            solver_failures=self.solver_failures,
            counterexample=self.worst_problem if self.fails else None,
            figures=list(figures or []),
            ratio_median=float(np.median(self.ratios)) if self.ratios else math.nan,
            ratio_max=float(np.max(self.ratios)) if self.ratios else math.nan,
            ratios=len(self.ratios),
        )
