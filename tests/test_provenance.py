"""run.json provenance lists every installed distribution, not a hand-picked few."""

from importlib import metadata

from modgen_bench.provenance import distributions, provenance


def test_every_installed_distribution_is_listed():
    dists = distributions()
    installed = {d.metadata["Name"] for d in metadata.distributions()}
    assert set(dists) == installed
    for name in ("clarabel", "scs", "osqp", "cvxpy", "torch", "numpy"):  # solvers behind cvxpy too
        assert dists[name] == metadata.version(name)
    assert list(dists) == sorted(dists, key=str.lower)


def test_provenance_carries_them():
    prov = provenance(seed=3)
    assert prov["distributions"] == distributions() and prov["seed"] == 3
    assert prov["versions"]["modgen-bench"] == metadata.version("modgen-bench")
