"""`modgen-bench bench exact`: time, passes, memory and certificate of both exact methods.

Each case is solved once to warm up (imports, caches, cvxpy's first canonicalisation), then
``repeats`` times; the table reports the min and median wall time, and the same divided by the
time of one numpy pass over the p x N float64 data (``(P * log_q).sum(1)``, min of 5, measured in
the same process just before): "passes", the cost in units of the physical limit.
Memory is traced in a separate run (tracemalloc slows numpy allocations): ``mem_peak/input`` is
(input bytes + peak bytes allocated during the solve) / input bytes, input = P and E.
Times are taken with the default thread settings (what a user gets: the exact core limits its
BLAS pool itself, `exact.ONE_BLAS_THREAD_FROM`) and again with one BLAS thread forced from
outside (``seconds_1thread``); ``default/1thread`` is their ratio (min over repeats).
Targets: N = 1e7, p = 8 certified in <= 6 passes with mem_peak/input <= 2 (measured 5.3-5.6
passes, 1.32x); default threads within 10% of one thread at every size.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc

import numpy as np
import pandas as pd

from .. import instances
from ..exact import methods, solve
from ..exact.paths import reference_methods
from ..threads import blas_threads

__all__ = ["bench_exact", "speedups", "pass_seconds", "DEFAULT_SIZES"]

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
STRUCTURED = {"disjoint": {}, "near_deterministic": {"delta": 1e-6}, "face": {}}


def pass_seconds(problem, repeats: int = 5) -> float:
    """Seconds of one numpy pass over the p x N data: ``(P * log_q).sum(1)`` (min of repeats)."""
    log_q = np.log(np.maximum(problem.E[0], 1e-300))
    best = np.inf
    for _ in range(repeats + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        (problem.P * log_q).sum(1)
        best = min(best, time.perf_counter() - t0)
    return best


def _repeat(problem, method: str, repeats: int, threads: int | None):
    """(last solution, [seconds of each repeat]) with at most ``threads`` BLAS threads."""
    times, sol = [], None
    with blas_threads(threads):
        for _ in range(repeats):
            t0 = time.perf_counter()
            sol = solve(problem, method, fallback=False)
            times.append(time.perf_counter() - t0)
    return sol, times


def _timed(problem, method: str, repeats: int):
    """(solution, [seconds of each timed repeat], [the same with one BLAS thread], peak traced
    bytes, error) after one warm-up."""
    try:
        sol = solve(problem, method, fallback=False)
    except Exception as exc:  # a failing backend is a row of the table, not a crash
        return (
            None,
            [],
            [],
            float("nan"),
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}",
        )
    sol, times = _repeat(problem, method, repeats, None)
    one = _repeat(problem, method, repeats, 1)[1]
    tracemalloc.start()
    solve(problem, method, fallback=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return sol, times, one, peak, ""


def bench_exact(
    sizes=DEFAULT_SIZES,
    ps=(2, 8),
    cvxpy_max_n: int = 20_000,
    seed: int = 0,
    structured: bool = True,
    speedup_case=(20_000, 4),
    repeats: int = 3,
    log=print,
) -> pd.DataFrame:
    """Rows: family, p, N, method, seconds_min, seconds_median, passes_min, passes_median,
    seconds_1thread, default/1thread, mem_peak/input, status, value, duality_gap, iterations,
    solver, note.

    Each method runs alone (no fallback), so a row measures that method; ``status`` says
    whether its own certificate met the tolerance.
    """
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
        one_pass = pass_seconds(problem)
        in_bytes = problem.P.nbytes + problem.E.nbytes
        for method in methods():  # every registered method (`exact.paths`)
            base = {"family": fam, "p": p, "N": N, "method": method}
            if method in reference_methods() and N > cvxpy_max_n:
                rows.append({**base, "note": f"skipped: N > {cvxpy_max_n} (see --cvxpy-max-n)"})
                continue
            sol, times, one, peak, err = _timed(problem, method, repeats)
            row = {**base, "note": err, "pass_ms": 1e3 * one_pass}
            if times:
                t_min, t_med = min(times), statistics.median(times)
                row.update(
                    seconds_min=t_min,
                    seconds_median=t_med,
                    passes_min=t_min / one_pass,
                    passes_median=t_med / one_pass,
                    seconds_1thread=min(one),
                    **{"default/1thread": t_min / min(one), "mem_peak/input": 1 + peak / in_bytes},
                )
            if sol is not None and sol.status != "infeasible":
                row.update(
                    status=sol.status,
                    value=sol.value,
                    duality_gap=sol.duality_gap,
                    iterations=sol.iterations,
                    solver=sol.solver,
                )
            rows.append(row)
            log(
                f"  {fam:>20} p={p} N={N:>8} {method:>9}: min "
                f"{row.get('seconds_min', float('nan')):8.4f} s"
                f"  {row.get('passes_min', float('nan')):7.1f} passes  "
                f"mem {row.get('mem_peak/input', float('nan')):.2f}x  "
                f"gap={row.get('duality_gap', float('nan')):.2e} {row.get('status', '')} {err}"
            )
    return pd.DataFrame(rows)


def speedups(df: pd.DataFrame) -> pd.DataFrame:
    """Warm cvxpy time / warm waterfill time (min over repeats) and |value difference|.

    A method without a value on a case (cvxpy came back inaccurate) keeps its speedup row with
    the difference left empty: all-NaN columns are kept, not dropped by the pivot.
    """
    if "seconds_min" not in df.columns:
        return pd.DataFrame()
    wide = df.pivot_table(
        index=["family", "p", "N"],
        columns="method",
        values=["seconds_min", "value"],
        aggfunc="first",
        dropna=False,
    )
    if ("seconds_min", "cvxpy") not in wide.columns:
        return pd.DataFrame()
    out = pd.DataFrame(
        {
            "speedup": wide[("seconds_min", "cvxpy")] / wide[("seconds_min", "waterfill")],
            "abs_value_diff": (wide[("value", "cvxpy")] - wide[("value", "waterfill")]).abs(),
        }
    ).dropna(subset=["speedup"])
    return out.reset_index()
