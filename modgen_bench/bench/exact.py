"""`modgen-bench bench exact`: wall time, peak Python memory, value and duality gap of both exact
methods on random and structured instances (issue: waterfill N=1e6, p=8 under 10 s at gap <= 1e-8;
>= 100x faster than cvxpy at N=2e4, p=4)."""
from __future__ import annotations

import time
import tracemalloc

import pandas as pd

from .. import instances
from ..exact import solve

__all__ = ["bench_exact", "DEFAULT_SIZES"]

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
STRUCTURED = {"disjoint": {}, "near_deterministic": {"delta": 1e-6}, "face": {}}


def _timed(problem, method):
    """Wall time of one solve, then peak Python-heap memory of a second, traced solve
    (tracemalloc slows numpy allocations, so time and memory come from separate runs)."""
    t0 = time.perf_counter()
    try:
        sol = solve(problem, method)
    except Exception as exc:  # a failing backend is a row of the table, not a crash
        return None, time.perf_counter() - t0, float("nan"), f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    wall = time.perf_counter() - t0
    tracemalloc.start()
    solve(problem, method)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return sol, wall, peak / 2**20, ""


def bench_exact(sizes=DEFAULT_SIZES, ps=(2, 8), cvxpy_max_n: int = 20_000, seed: int = 0,
                structured: bool = True, speedup_case=(20_000, 4), log=print) -> pd.DataFrame:
    """Rows: family, p, N, method, seconds, py_peak_mb, value, duality_gap, iterations, solver."""
    cases = [("dirichlet", p, N, {"noise": 0.2}) for N in sizes for p in ps]
    if structured:
        N = max(sizes)
        cases += [(fam, 8, N, kw) for fam, kw in STRUCTURED.items()]
    if speedup_case:
        n, p = speedup_case
        cases.append(("dirichlet(0.5)", p, n, {"alpha": 0.5, "noise": 0.2}))
    rows = []
    for fam, p, N, kw in cases:
        problem = instances.make(fam.split("(")[0], seed, p=p, N=N, **kw)
        for method in ("waterfill", "cvxpy"):
            if method == "cvxpy" and N > cvxpy_max_n:
                rows.append({"family": fam, "p": p, "N": N, "method": method,
                             "note": f"skipped: N > {cvxpy_max_n} (see --cvxpy-max-n)"})
                continue
            sol, wall, mem, err = _timed(problem, method)
            row = {"family": fam, "p": p, "N": N, "method": method, "seconds": wall,
                   "py_peak_mb": mem, "note": err}
            if sol is not None and sol.optimal:
                row.update(value=sol.value, duality_gap=sol.duality_gap, iterations=sol.iterations,
                           solver=sol.solver)
            rows.append(row)
            log(f"  {fam:>20} p={p} N={N:>8} {method:>9}: {wall:8.3f} s  "
                f"gap={row.get('duality_gap', float('nan')):.2e} {err}")
    return pd.DataFrame(rows)


def speedups(df: pd.DataFrame) -> pd.DataFrame:
    """cvxpy seconds / waterfill seconds and |value difference| for every case both solved."""
    wide = df.pivot_table(index=["family", "p", "N"], columns="method",
                          values=["seconds", "value"], aggfunc="first")
    if ("seconds", "cvxpy") not in wide.columns:
        return pd.DataFrame()
    out = pd.DataFrame({
        "speedup": wide[("seconds", "cvxpy")] / wide[("seconds", "waterfill")],
        "abs_value_diff": (wide[("value", "cvxpy")] - wide[("value", "waterfill")]).abs(),
    }).dropna()
    return out.reset_index()
