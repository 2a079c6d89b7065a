"""Verdicts, the claim registry, run_checks outputs and the `modgen-bench check` CLI."""

import json
import math

import pandas as pd
import pytest

from modgen_bench.cli import main
from modgen_bench.exact import solve
from modgen_bench.problem import DiscreteProblem
from theory_checks import CLAIMS, run_checks, run_claims
from theory_checks.verdict import FLOOR, Tally


def test_a_violation_within_the_certificate_is_not_a_violation():
    t = Tally("c", "r")
    t.add(-1e-7, "a", certificate=2e-7)
    t.add(0.5, "b")
    v = t.verdict()
    assert v.status == "holds" and v.violations == 0 and v.tight == 1
    assert v.worst_margin == -1e-7 and v.worst_instance == "a" and v.counterexample is None


def test_a_violation_beyond_the_certificate_fails_and_keeps_its_instance():
    prob = DiscreteProblem.from_arrays([[1.0]], [[1.0]])
    t = Tally("c", "r")
    t.add(-3e-7, "bad", certificate=2e-7, problem=prob)
    t.add(-1e-3, "worse but certified", certificate=1e-2)
    v = t.verdict()
    assert v.status == "fails" and v.violations == 1
    assert v.worst_instance == "bad" and v.counterexample is prob
    assert v.tolerance == pytest.approx(2e-7 + FLOOR)


def test_no_instance_is_vacuous_and_nan_is_an_error():
    t = Tally("c", "r")
    assert t.verdict().status == "vacuous" and math.isnan(t.verdict().worst_margin)
    with pytest.raises(ValueError, match="NaN margin"):
        t.add(float("nan"), "x")


def test_unknown_claim_lists_the_valid_ones():
    with pytest.raises(KeyError, match="choose one of .*lemma1.*thm3"):
        run_claims(["lemma2"], instances=1, seed=0)


def test_registry_has_at_least_the_required_claims():
    assert {
        "lemma1",
        "identities",
        "prop2",
        "static_barrier",
        "thm3",
        "lam_star",
        "prior",
        "thm6",
        "thm7",
    } <= set(CLAIMS)


def test_run_checks_writes_outputs_and_rerunnable_counterexamples(tmp_path, capsys):
    assert run_checks(["lemma1"], instances=8, seed=3, out=str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "support=domains, adversarial search" in printed and "fails" in printed
    df = pd.read_csv(tmp_path / "verdicts.csv")
    rows = json.loads((tmp_path / "verdicts.json").read_text())
    assert len(df) == len(rows["verdicts"]) == 5 and "git_commit" in rows["provenance"]
    failing = df[df.status == "fails"]
    assert set(failing.reading) >= {"support=domains, adversarial search"}
    for f in failing.counterexample_file:
        sol = solve(DiscreteProblem.load(tmp_path / f), support="domains")
        assert sol.status == "infeasible" and "G1 is empty" in sol.reason
    report = (tmp_path / "report.md").read_text()
    assert "## lemma1" in report and (tmp_path / "index.html").is_file()


def test_same_seed_same_numbers(tmp_path):
    a = run_claims(["prop2"], instances=4, seed=7)[0]
    b = run_claims(["prop2"], instances=4, seed=7)[0]
    assert [v.row() for v in a] == [v.row() for v in b]


def test_cli_check_runs_and_rejects_unknown_claims(tmp_path, capsys):
    assert main(["check", "lam_star", "--instances", "3", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "verdicts.csv").is_file()
    assert main(["check", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown claim 'nope'; choose one of" in capsys.readouterr().err


TRUE_ROWS = {
    ("lemma1", "support=union"),
    ("lemma1", "support=union, adversarial search"),
    ("lemma1", "exact criterion vs LP"),
    ("identities", "JSD identity"),
    ("identities", "0 <= JSD_lam <= H(lam)"),
    ("identities", "vertex property"),
    ("identities", "equal game values"),
    ("prop2", "pi = lam @ E"),
    ("prop2", "gate lam graded on X0 (pi/Z)"),
    ("static_barrier", "disjoint domains, disjoint experts"),
    ("thm3", "support=union (sigma in G1)"),
    ("thm3", "support=domains, sigma in G1"),
    ("thm3", "support=domains, sigma not in G1"),
    ("lam_star", "equalisation on supp lam*"),
    ("prior", "V monotone in Lambda (original)"),
    ("prior", "V monotone in Lambda (linearised)"),
    ("prior", "W(D)-W(L) <= L d_H, L=M/2 (linearised)"),
    ("thm6", "monolith >= lam.eps - JSD_lam"),
    ("thm7", "unrestricted"),
    ("thm7", "mixture family, domains in F"),
    ("thm7", "exp. family: M_lam = Proj(sum lam pi_k)"),
    ("thm9", "tabular class, exact sup over G, delta=0.05"),
    ("thm9", "finite class (constant grid + random gates), sup over G, delta=0.05"),
    ("thm9", "one gate (Rad = 0), two-point worst case, delta=0.05"),
}
FALSE_ROWS = {
    ("lemma1", "support=domains, adversarial search"),
    ("static_barrier", "disjoint domains, leaking experts"),
    ("lam_star", "lam* weights -> best static gate"),
    ("lam_star", "lam* weights beat uniform weights"),
    ("thm7", "mixture family, misspecified"),
    ("thm7", "exponential family"),
}
#: readings beyond the theorem's hypothesis: reported (the bound is violated there), never a failure
OUTSIDE_ROWS = {("thm6", "monolith family strictly larger (d + 2 features)")}


def test_every_claim_keeps_its_verdict_on_a_small_budget():
    """Golden verdicts (seed 0, 5 instances): a regression that breaks a true claim, or hides a
    counterexample the suite finds, changes a status here. Regenerate with
    `modgen-bench check --instances 5 --seed 0`."""
    verdicts, _ = run_claims([], instances=5, seed=0)
    status = {(v.claim, v.reading): v.status for v in verdicts}
    assert len(status) >= 10
    assert {r for r in TRUE_ROWS if status[r] != "holds"} == set()
    assert {r for r in FALSE_ROWS if status[r] != "fails"} == set()
    assert {r for r in OUTSIDE_ROWS if status[r] != "outside hypothesis"} == set()
    for v in verdicts:
        if (v.claim, v.reading) in OUTSIDE_ROWS:
            assert v.violations > 0  # what happens beyond the hypothesis
        if v.status == "fails":
            assert v.counterexample is not None or v.claim == "thm7"
