"""The exact core's seam: a solver path is one registered object, and adding one touches one
file. A toy path registered here becomes a `solve --method` choice, a `bench exact` row and a
link of the fallback chain, graded by the same certificate as the built-in paths."""

import json

import numpy as np
import pytest

from modgen_bench import instances
from modgen_bench.cli import main
from modgen_bench.exact import PathResult, methods, register_path, solve
from modgen_bench.exact.paths import chain, unregister_path


@pytest.fixture
def toy():
    """A toy method: the closed-form model at the uniform mixture (certifies only when that
    mixture happens to be least favourable)."""

    @register_path("toy-uniform", method="toy")
    def toy_uniform(ctx):
        p = ctx.inner.P.shape[0]
        lam = np.full(p, 1.0 / p) if ctx.lam_fixed is None else ctx.lam_fixed
        q, t = ctx.inner.model(lam)
        return PathResult(
            model=q, lam=lam, bound=ctx.inner.dual_bound(lam, q, t), path="toy-uniform"
        )

    yield "toy"
    unregister_path("toy-uniform")


def test_a_registered_path_is_a_method_and_joins_the_chain(toy):
    assert toy in methods() and methods()[0] == "waterfill" and methods()[-1] == "cvxpy"
    assert [p.name for p in chain(toy, "minimax", fallback=False)] == ["toy-uniform"]
    assert chain(toy, "minimax")[1:] and "toy-uniform" not in [
        p.name for p in chain("waterfill", "minimax", fallback=False)
    ]
    prob = instances.make("dirichlet", 1, p=3, N=30)
    alone = solve(prob, method=toy, fallback=False)
    assert alone.solver == "toy-uniform" and alone.status == "inaccurate"
    lo, hi = alone.extra["bound"]
    truth = solve(prob)
    assert lo <= truth.value + 1e-9 and truth.value <= hi + 1e-9
    chained = solve(prob, method=toy)  # the other methods follow as fallbacks
    assert chained.optimal and abs(chained.value - truth.value) <= 1e-9
    assert chained.extra["attempts"][0]["solver"] == "toy-uniform"


def test_cli_and_bench_read_their_choices_from_the_registry(toy, tmp_path, capsys):
    from modgen_bench.bench.exact import bench_exact

    prob = instances.make("dirichlet", 2, p=2, N=12)
    path = tmp_path / "prob.json"
    prob.save(path)
    assert main(["solve", str(path), "--method", toy, "--json"]) in (0, 3)
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == toy and out["status"] == "optimal"
    assert out["solver"] == "toy-uniform" or out["solver"].startswith("waterfill")
    df = bench_exact(
        sizes=(50,), ps=(2,), structured=False, speedup_case=None, repeats=1, log=lambda m: None
    )
    assert set(df["method"]) == set(methods()) and toy in set(df["method"])


def test_unregistered_method_is_gone(toy):
    unregister_path("toy-uniform")
    assert toy not in methods()
    with pytest.raises(ValueError, match="choose one of"):
        solve(instances.make("dirichlet", 0, p=2, N=3), method=toy)
