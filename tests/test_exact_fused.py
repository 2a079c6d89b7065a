"""The one-pass Newton point of large problems (`exact.fused`): the breakpoint search finds the
water level of the classic safeguarded Newton (`InnerProblem.model_from`), the fused point is the
classic point (mixture, water level, KL, dual bound, Hessian), solves through it certify as
before, and a Newton solve reads P fewer times (counted, not timed)."""

import contextlib

import numpy as np
from hypothesis import given, note
from hypothesis import strategies as st

from modgen_bench import instances
from modgen_bench.bench.fuzz import _really_optimal
from modgen_bench.exact import fused, solve, tolerance, waterfill
from modgen_bench.exact.waterfill import InnerProblem
from modgen_bench.problem import DiscreteProblem
from modgen_bench.testing.hard import ALL_FAMILIES, hard_arrays

supports = st.sampled_from(["domains", "union"])
seeds = st.integers(0, 2**32 - 1)


def _hard(seed, family, p, N):
    rng = np.random.default_rng(seed)
    N = max(N, 2) if family == "leaking" else N  # one zero column and one the domains see
    return DiscreteProblem.from_arrays(*hard_arrays(rng, family, p, N, block=1, round_to=1e-10))


def _level_by_breakpoints(inner: InnerProblem, a: np.ndarray):
    """q and t of `breakpoint_root` over every outcome (no constant part), wide bracket."""
    t = fused.breakpoint_root(0.0, 0.0, a, inner.lo, inner.hi, inner.target, 1e-250, 1e250)
    return t, (None if t is None else np.clip(a * t, inner.lo, inner.hi))


def _check_level(inner: InnerProblem, a: np.ndarray):
    q_ref, t_ref = inner.model_from(a)
    t, q = _level_by_breakpoints(inner, a)
    note(f"t_ref {t_ref} t {t}")
    if not 0 < t_ref < np.inf:  # pinned floor (t = 0) or nu = 0 branch: no root in t
        return
    assert t is not None
    # the same model (the piece holding the root decides every q), within rounding of t
    scale = max(1.0, float(np.max(q_ref)))
    assert np.max(np.abs(q - q_ref)) <= 1e-12 * scale + 1e-12 * abs(q_ref.sum() - inner.target)
    assert abs(q.sum() - inner.target) <= 1e-12


@given(st.sampled_from(ALL_FAMILIES), st.integers(1, 12), st.integers(1, 300), supports, seeds)
def test_breakpoint_search_finds_the_classic_water_level(family, p, N, support, seed):
    prob = _hard(seed, family, p, N)
    inner = InnerProblem(prob, support)
    if inner.ceiling_sum < inner.target or inner.floor_pinned:
        return  # one-point sets: see the closed-form test below
    rng = np.random.default_rng(seed)
    lam = rng.dirichlet(np.full(p, 0.3))
    lam[rng.random(p) < 0.3] = 0.0  # exact zeros in the mixture too
    if lam.sum() == 0:
        lam[0] = 1.0
    _check_level(inner, lam / lam.sum() @ inner.P)


def test_breakpoint_search_on_ties_zeros_and_tiny_masses():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        a = rng.choice([0.0, 1e-300, 1e-200, 0.25, 0.5, 1.0], size=n) * rng.choice([1, 2], n)
        lo = rng.choice([0.0, 1e-300, 0.01, 0.02], size=n)
        hi = lo + rng.choice([0.0, 1e-300, 0.05, 0.1, 1.0], size=n)
        c = float(rng.uniform(lo.sum(), hi.sum())) if hi.sum() > lo.sum() else lo.sum()
        t = fused.breakpoint_root(0.0, 0.0, a, lo, hi, c, 1e-300, 1e300)
        reach = lo.sum() + (hi - lo)[a > 0].sum()
        if c < reach - 1e-15 and c > lo.sum() + 1e-15:
            assert t is not None
            assert abs(np.clip(a * t, lo, hi).sum() - c) <= 1e-13 * max(1.0, c)


def test_breakpoint_search_on_one_point_sets():
    """lo = hi everywhere: every t of the bracket is a root (the sum does not depend on t) and
    the model is the one point."""
    lo = np.array([0.2, 0.3, 0.5])
    t = fused.breakpoint_root(
        0.0, 0.0, np.array([0.1, 0.0, 0.9]), lo, lo.copy(), lo.sum(), 0.5, 2.0
    )
    assert t is not None and 0.5 <= t <= 2.0
    assert np.array_equal(np.clip(np.array([0.1, 0.0, 0.9]) * t, lo, lo), lo)
    # a sum outside the bracket's range: no root there
    assert (
        fused.breakpoint_root(0.0, 1.0, np.ones(2), np.zeros(2), np.ones(2), 5.0, 0.5, 1.0) is None
    )


def _classic(inner: InnerProblem, lam):
    a = inner.mix(lam)
    q, t = inner.model_from(a)
    return a, q, t, inner.kl_per_domain(q), inner.dual_bound(lam, q, t, a), inner.hessian_at(a, t)


@given(
    st.sampled_from(ALL_FAMILIES),
    st.integers(1, 10),
    st.integers(1, 400),
    supports,
    seeds,
    st.sampled_from([8, 64, 1 << 15]),
)
def test_fused_point_is_the_classic_point(family, p, N, support, seed, block):
    """Mixture, water level, KL, D(lam) and the Hessian of the one-pass point match the classic
    evaluation, at any block size; where the pass cannot settle the point it says so (None)."""
    prob = _hard(seed, family, p, N)
    inner = InnerProblem(prob, support)
    if inner.ceiling_sum <= inner.target + 1e-12 or inner.floor_pinned:
        return
    lam = np.random.default_rng(seed).dirichlet(np.ones(p))
    a, q, t, g, D, H = _classic(inner, lam)
    old = fused.FUSED_BLOCK
    fused.FUSED_BLOCK = block * p
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            pt, a_f = fused.fused_point(inner, lam, t * 1.001)
    finally:
        fused.FUSED_BLOCK = old
    if a_f is not None:
        np.testing.assert_array_equal(a_f, a)
    if pt is None:
        return
    note(f"t {t} fused {pt.t}; D {D} fused {pt.D}")
    assert abs(pt.t - t) <= 1e-12 * t
    finite = np.isfinite(g)
    assert np.array_equal(np.isfinite(pt.g), finite)
    assert np.allclose(pt.g[finite], g[finite], rtol=1e-10, atol=1e-10)
    assert abs(pt.D - D) <= 1e-10 * (1 + abs(D))
    if np.isfinite(H).all():
        assert np.allclose(pt.H, H, rtol=1e-8, atol=1e-8 * np.abs(H).max())
    np.testing.assert_allclose(inner.clip_model(pt.a, pt.t), q, rtol=1e-12, atol=1e-300)


@contextlib.contextmanager
def _fusing(from_n: int, block: int = 16 * 8):
    """One-pass points from ``from_n`` outcomes on, with blocks of ``block`` entries of P."""
    old = waterfill.FUSE_FROM, fused.FUSED_BLOCK
    waterfill.FUSE_FROM, fused.FUSED_BLOCK = from_n, block
    try:
        yield
    finally:
        waterfill.FUSE_FROM, fused.FUSED_BLOCK = old


@given(st.sampled_from(ALL_FAMILIES), st.integers(1, 12), st.integers(1, 200), supports, seeds)
def test_solves_through_fused_points_certify_as_before(family, p, N, support, seed):
    """Every problem through one-pass points (small blocks, many per problem) against the
    classic evaluation: the same status (unless one is inaccurate), a certificate that holds
    from scratch, and the same value."""
    prob = _hard(seed, family, p, N)
    with _fusing(1):
        sol = solve(prob, support=support)
    with _fusing(1 << 62):
        ref = solve(prob, support=support)
    note(f"fused {sol.status} {sol.solver} {sol.value}; classic {ref.status} {ref.value}")
    assert sol.status == ref.status or "inaccurate" in (sol.status, ref.status)
    if sol.optimal:
        assert _really_optimal(prob, sol)
        if ref.optimal:
            assert abs(sol.value - ref.value) <= tolerance(sol.value) + tolerance(ref.value)


def _count_passes(monkeypatch, N: int, family: str = "dirichlet", **kw) -> tuple[int, object]:
    """Reads of P by a Newton solve: the set-up's pass, each one-pass point, each classic
    mixture, KL matvec and Hessian."""
    reads = {"n": 0}

    def counted(owner, name):
        f = getattr(owner, name)

        def run(*a, **k):
            reads["n"] += 1
            return f(*a, **k)

        monkeypatch.setattr(owner, name, run)

    for name in ("mix", "kl_per_domain", "hessian_at"):
        counted(InnerProblem, name)
    counted(waterfill, "fused_point")
    counted(waterfill, "_setup_blocked")
    sol = solve(instances.make(family, 0, p=8, N=N, **kw), method="waterfill", fallback=False)
    return reads["n"], sol


def test_a_newton_solve_reads_p_once_per_point(monkeypatch):
    """dirichlet p = 8, N = 1e5 (3 Newton points): the set-up's pass holds the first point, and
    each later point is one pass; the second-to-last gap is small enough that the last point
    skips its Hessian. The classic evaluation reads P 9 times here (the set-up's pass, 3
    mixtures, 3 KL matvecs, 2 Hessians)."""
    n, sol = _count_passes(monkeypatch, 100_000, noise=0.2)
    assert sol.optimal and sol.iterations == 3
    assert n == 3
    monkeypatch.setattr(waterfill, "FUSE_FROM", 1 << 62)
    n_classic, ref = _count_passes(monkeypatch, 100_000, noise=0.2)
    assert ref.optimal and n_classic == 9
    assert abs(sol.value - ref.value) <= 2 * tolerance(sol.value)


def _one_block_setup(P: np.ndarray, E: np.ndarray):
    """The set-up's quantities without blocks: X0, -H(P[k]) (0 log 0 = 0, the 1e-300 floor), the
    envelope and the uniform mixture."""
    L = np.log(np.maximum(P, 1e-300))
    p = P.shape[0]
    return (
        P.max(axis=0) > 0,
        np.einsum("kn,kn->k", P, L),
        E.min(axis=0),
        E.max(axis=0),
        np.full(p, 1.0 / p) @ P,
    )


def _check_setup(P: np.ndarray, E: np.ndarray, block: int):
    with _fusing(1, block * P.shape[0]):
        seen, neg, lo, hi, first = waterfill._setup_blocked(P, E)
    seen_r, neg_r, lo_r, hi_r, a_r = _one_block_setup(P, E)
    assert np.array_equal(seen, seen_r)
    np.testing.assert_allclose(neg, neg_r, rtol=1e-12, atol=1e-280)
    assert np.array_equal(lo, lo_r) and np.array_equal(hi, hi_r)
    np.testing.assert_allclose(first[0], a_r, rtol=1e-15, atol=0)


@given(st.sampled_from(ALL_FAMILIES), st.integers(1, 10), st.integers(1, 300), seeds)
def test_setup_pass_is_the_one_block_arithmetic(family, p, N, seed):
    """The set-up's blocked pass (a block's zeros found through its entropy, 0 log 0 = NaN, and
    every later block floored) gives X0, -H(P[k]), the envelope and the uniform mixture of the
    unblocked arithmetic, for blocks of 1, 7 and 64 outcomes."""
    prob = _hard(seed, family, p, N)
    for block in (1, 7, 64):
        _check_setup(prob.P, prob.E, block)


def test_setup_pass_with_zeros_after_positive_blocks():
    """Zeros first met in a later block (the set-up switches to the floored logs from there,
    that block included), subnormal masses after them, and a column no domain sees."""
    rng = np.random.default_rng(3)
    P = rng.dirichlet(np.ones(96), size=3)
    P[1, 70] = 0.0  # the first zero: block 2 of blocks of 32 outcomes
    P[:, 75] = 0.0  # unseen by every domain
    P[0, 90] = 1e-320  # subnormal, after the switch
    E = rng.dirichlet(np.ones(96), size=3)
    _check_setup(P, E, 32)
    with _fusing(1, 32 * 3):
        seen = waterfill._setup_blocked(P, E)[0]
    assert not seen[75] and seen[70] and seen[:70].all()
