"""Exact box-and-simplex projection (modgen_bench/algorithms/projection.py) vs cvxpy and KKT."""

import cvxpy as cp
import numpy as np
import pytest
import torch
from hypothesis import given, note
from hypothesis import strategies as st

from modgen_bench.algorithms.projection import BoxLambda, project_box_simplex


@st.composite
def box_problems(draw, max_n: int = 8):
    """(y, lo, hi) with lo <= hi and sum lo <= 1 <= sum hi, ties and degenerate boxes included."""
    n = draw(st.integers(1, max_n))
    fl = st.floats(0, 1, allow_nan=False)
    a = np.array(draw(st.lists(fl, min_size=n, max_size=n)))
    b = np.array(draw(st.lists(fl, min_size=n, max_size=n)))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    lo = lo / max(lo.sum(), 1.0) * draw(st.floats(0, 1))  # sum lo <= 1
    hi = np.maximum(hi, lo)
    if hi.sum() < 1:
        hi = hi + (1 - hi.sum()) / n  # sum hi >= 1
    y = np.array(draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=n, max_size=n)))
    return y, lo, hi


def _cvxpy_projection(y, lo, hi):
    q = cp.Variable(len(y))
    cp.Problem(cp.Minimize(cp.sum_squares(q - y)), [q >= lo, q <= hi, cp.sum(q) == 1]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
    )
    return q.value


@given(box_problems())
def test_projection_matches_cvxpy(data):
    y, lo, hi = data
    note(f"y={y.tolist()} lo={lo.tolist()} hi={hi.tolist()}")
    q = project_box_simplex(*(torch.tensor(v) for v in data)).numpy()
    assert abs(q.sum() - 1) < 1e-12
    assert np.all(q >= lo - 1e-15) and np.all(q <= hi + 1e-15)
    ref = _cvxpy_projection(y, lo, hi)
    # the projection is unique: objective values and points agree to the reference's accuracy
    assert np.sum((q - y) ** 2) <= np.sum((ref - y) ** 2) + 1e-8
    np.testing.assert_allclose(q, ref, atol=1e-5)


@given(box_problems())
def test_projection_kkt(data):
    """Optimality: q = clip(y - tau, lo, hi) for one tau, i.e. y - q is constant on free coordinates
    and sign-consistent on the bounds."""
    y, lo, hi = data
    q = project_box_simplex(*(torch.tensor(v) for v in data)).numpy()
    r = y - q
    free = (q > lo + 1e-12) & (q < hi - 1e-12)
    if free.any():
        tau = r[free].mean()
        assert np.allclose(r[free], tau, atol=1e-9)
        wide = hi > lo + 1e-9  # a pinned coordinate (hi ~ lo) may carry any multiplier
        at_lo = (q <= lo + 1e-12) & wide
        at_hi = (q >= hi - 1e-12) & wide
        assert np.all(r[at_lo & ~free] <= tau + 1e-9)  # y - tau <= lo: wanted to go lower
        assert np.all(r[at_hi & ~free] >= tau - 1e-9)  # y - tau >= hi: wanted to go higher


def test_projection_is_identity_on_the_set():
    lo, hi = torch.tensor([0.1, 0.0, 0.2]), torch.tensor([0.5, 0.6, 0.4])
    q = torch.tensor([0.3, 0.4, 0.3])
    assert torch.allclose(project_box_simplex(q, lo, hi), q, atol=1e-15)


def test_projection_empty_set_is_one_clear_error():
    with pytest.raises(ValueError, match="sum hi"):
        project_box_simplex(torch.zeros(2), torch.zeros(2), torch.tensor([0.3, 0.3]))


def test_box_lambda_projects_into_the_box():
    Lam = BoxLambda(lo=(0.2, 0.0, 0.0), hi=(1.0, 0.3, 1.0))
    lam = Lam.project(torch.tensor([0.0, 0.9, 0.1], dtype=torch.float64))
    assert abs(float(lam.sum()) - 1) < 1e-12
    assert lam[0] >= 0.2 - 1e-15 and lam[1] <= 0.3 + 1e-15
