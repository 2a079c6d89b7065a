"""`modgen-bench bench exact --batch B`: throughput of `solve_batch` against `solve` one by one.

For each family, support convention and shape (p, N), B problems of that shape are drawn and
solved twice: by `exact.solve` in a loop and by `exact.stacked.solve_batch` in one call. Times
are CPU seconds of this process (`time.process_time`, all its threads), min over ``repeats``
after one warm-up of each; ``ratio`` = one-by-one time / batch time (the throughput gain).
``agree`` counts the problems whose status is the same both ways and whose values lie within
both certificate tolerances; ``in_batch`` those the batch answered itself (the rest it passed
to `solve`).
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pandas as pd

from .. import instances
from ..errors import UnknownNameError
from ..exact import solve, tolerance
from ..exact.stacked import solve_batch
from ..problem import DiscreteProblem
from ..testing.hard import ALL_FAMILIES, hard_arrays

__all__ = ["bench_batch", "stack_of", "FAMILIES"]

#: the theory checks' families (`instances`) and the fuzz's (`testing.hard`)
FAMILIES = ("dirichlet", "face", "near_deterministic", "logmass", "sparse", "zipf", "tight")


def stack_of(family: str, B: int, p: int, N: int, seed: int = 0) -> list[DiscreteProblem]:
    """B problems of one family and shape, problem b drawn from seed (seed, b); a family of
    `instances` by name first, else of `testing.hard`."""
    out = []
    for b in range(B):
        rng = np.random.default_rng((seed, b))
        if family in instances.FAMILIES:
            out.append(instances.make(family, rng, p=p, N=N))
        else:
            out.append(DiscreteProblem.from_arrays(*hard_arrays(rng, family, p, N)))
    return out


def _cpu_min(fn, repeats: int):
    """(last result, min CPU seconds over ``repeats`` calls) after one warm-up call."""
    out, best = fn(), np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return out, best


def _agree(one, many) -> int:
    """Problems with the same status both ways and values within both tolerances."""
    n = 0
    for a, b in zip(one, many, strict=True):
        same = a.status == b.status
        if same and a.status != "infeasible":
            same = abs(a.value - b.value) <= tolerance(a.value) + tolerance(b.value)
        n += same
    return n


def _case(problems, support: str, repeats: int) -> dict:
    one, t_one = _cpu_min(lambda: [solve(pr, support=support) for pr in problems], repeats)
    many, t_many = _cpu_min(lambda: solve_batch(problems, support=support), repeats)
    return {
        "one_ms": 1e3 * t_one,
        "batch_ms": 1e3 * t_many,
        "ratio": t_one / t_many,
        "in_batch": sum(s.solver == "waterfill-batch" for s in many),
        "agree": _agree(one, many),
        "optimal": sum(s.optimal for s in many),
    }


def _line(row: dict) -> str:
    return (
        f"  {row['family']:>18} {row['support']:>7} p={row['p']:<2} N={row['N']:<4}: "
        f"one {row['one_ms']:8.1f} ms  batch {row['batch_ms']:7.1f} ms  x{row['ratio']:5.1f}  "
        f"in batch {row['in_batch']}/{row['B']}  agree {row['agree']}/{row['B']}"
    )


def bench_batch(
    sizes=(20, 200),
    ps=(2, 4, 8, 16),
    B: int = 200,
    families=FAMILIES,
    supports=("domains", "union"),
    repeats: int = 3,
    seed: int = 0,
    log=print,
) -> pd.DataFrame:
    """Rows: family, support, p, N, B, one_ms, batch_ms, ratio, in_batch, agree, optimal, note.

    A family that cannot draw a shape (``face`` needs p >= 3) gives a row with the reason;
    ``log`` (None: quiet) gets one line per row as it is measured."""
    known = dict.fromkeys(list(instances.FAMILIES) + list(ALL_FAMILIES))
    unknown = [f for f in families if f not in known]
    if unknown:
        raise UnknownNameError(
            f"unknown instance families {', '.join(unknown)}; choose from {', '.join(known)}"
        )
    rows = []
    for fam, p, N in itertools.product(families, ps, sizes):
        base = {"family": fam, "p": p, "N": N, "B": B}
        try:
            problems = stack_of(fam, B, p, N, seed)
        except ValueError as exc:
            rows.append({**base, "note": str(exc)})
            continue
        for support in supports:
            rows.append({**base, "support": support, **_case(problems, support, repeats)})
            if log is not None:
                log(_line(rows[-1]))
    return pd.DataFrame(rows)
