"""The verdict of one claim under one reading, and the tally that produces it.

A check evaluates a claim on many instances; on each it records the *margin* (how far the claim
holds: bound minus actual for an upper bound, actual minus bound for a lower bound, minus the
residual for an identity; negative = violated) and the certificate of the exact solves behind it.
A negative margin no larger in size than the instance's tolerance (its certificate plus a
floating-point floor) is not a violation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from modgen_bench.problem import DiscreteProblem

__all__ = ["Verdict", "Tally", "FLOOR", "STATUSES"]

#: Floating-point floor added to every certificate: nats-scale sums of ~1e2 terms in float64.
FLOOR = 1e-9

STATUSES = ("holds", "fails", "vacuous")


@dataclass
class Verdict:
    """One row of the verdict table.

    Attributes:
        claim: claim id (a key of `theory_checks.CLAIMS`), e.g. "lemma1".
        reading: the assumption or convention checked, e.g. "support=domains".
        instances: instances on which the claim's hypothesis held and it was evaluated.
        status: "holds", "fails" or "vacuous" (no instance met the hypothesis).
        worst_margin: margin at the worst instance, the one closest to a violation after its
            tolerance (negative beyond tolerance = a counterexample).
        worst_instance: how to regenerate the worst instance (family, seed, parameters).
        certificate: largest duality gap (or optimality residual) of the solves used.
        tolerance: the violation threshold applied at the worst instance.
        tight: instances whose margin is within tolerance of 0 (the bound is attained).
        violations: instances whose margin is below minus their tolerance.
        note: what the numbers mean (findings, the constant used, what happens otherwise).
        counterexample: the worst instance as a problem, kept when the claim fails.
        counterexample_file: where `run_checks` saved it (set by the runner).
        figures: (caption, path) pairs made by the check.
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
    counterexample_file: str = ""
    figures: list = field(default_factory=list)

    def row(self) -> dict:
        """The flat record written to verdicts.csv / verdicts.json (no margin: None, not NaN)."""
        margin = None if math.isnan(self.worst_margin) else self.worst_margin
        return {"claim": self.claim, "reading": self.reading, "instances": self.instances,
                "status": self.status, "worst_margin": margin,
                "worst_instance": self.worst_instance, "certificate": self.certificate,
                "tolerance": self.tolerance, "tight": self.tight,
                "violations": self.violations, "note": self.note,
                "counterexample_file": self.counterexample_file}


@dataclass
class Tally:
    """Accumulates (margin, certificate, instance) records and turns them into a `Verdict`."""

    claim: str
    reading: str
    n: int = 0
    worst_margin: float = math.inf
    worst_slack: float = math.inf       # margin + tolerance: negative = a real violation
    worst_instance: str = ""
    worst_problem: DiscreteProblem | None = None
    worst_tolerance: float = FLOOR
    certificate: float = 0.0
    tight: int = 0
    violations: int = 0

    def add(self, margin: float, instance: str, certificate: float = 0.0,
            problem: DiscreteProblem | None = None) -> None:
        """Record one evaluated instance; NaN margins are errors, not data."""
        if math.isnan(margin):
            raise ValueError(f"{self.claim}/{self.reading}: NaN margin on {instance}")
        certificate = max(float(certificate), 0.0)
        tol = certificate + FLOOR
        self.n += 1
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
        status = "vacuous" if self.n == 0 else "fails" if self.fails else "holds"
        return Verdict(claim=self.claim, reading=self.reading, instances=self.n, status=status,
                       worst_margin=self.worst_margin if self.n else math.nan,
                       worst_instance=self.worst_instance, certificate=self.certificate,
                       tolerance=self.worst_tolerance, tight=self.tight,
                       violations=self.violations, note=note,
                       counterexample=self.worst_problem if self.fails else None,
                       figures=list(figures or []))
