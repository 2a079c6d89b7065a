"""The time and iteration budget of one exact solve, shared by the paths of the fallback chain.

Every path checks the budget once per iteration and says why it stopped (`STOPS`), so a solve
never runs for minutes and its answer names what cut it short. The budget counts the CPU seconds
of the solving thread (`time.thread_time`): on an idle machine with one BLAS thread that is the
wall time, and on a busy one a solve is not cut short by other processes' work, nor by BLAS
worker threads spinning on oversubscribed cores (both would make answers depend on the load).
One-off start-up (importing cvxpy) is left out (`Budget.excluded`). Each path of the chain may
spend at most half of what is left (`Budget.share`), so a stalled path leaves time for the next.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

__all__ = ["Budget", "STOPS", "default_time_limit"]

#: Why a path stopped: its gap met the tolerance ("converged"), no progress ("stalled"), its
#: iteration cap ("iterations"), the solve's time limit ("time"), or an error ("failed").
STOPS = ("converged", "stalled", "iterations", "time", "failed")

#: Default time limit (seconds) per 1e6 entries of P, at least MIN_LIMIT: a p x N <= 1e6 solve
#: is given 0.9 s in all, a margin under one second (the water-filling paths certify in
#: milliseconds; the budget only cuts a fallback that would not), and larger problems time in
#: proportion to their size.
SECONDS_PER_MEGA = 0.9
MIN_LIMIT = 0.9


def default_time_limit(p: int, N: int) -> float:
    """Seconds a solve of a p x N problem may take by default (SECONDS_PER_MEGA per 1e6 entries)."""
    return max(MIN_LIMIT, SECONDS_PER_MEGA * p * N / 1e6)


clock = time.thread_time


@dataclass
class Budget:
    """A deadline (`clock` seconds: this process's CPU time) and an iteration cap per path."""

    deadline: float = math.inf
    max_iter: int = 200
    #: the solve's budget this path's share was cut from (`share`); None for a solve's own
    parent: "Budget | None" = field(default=None, repr=False)

    @classmethod
    def start(cls, seconds: float | None, max_iter: int = 200) -> "Budget":
        """A budget of ``seconds`` from now (None: no time limit)."""
        limit = math.inf if seconds is None else float(seconds)
        return cls(clock() + limit, max_iter)

    def left(self) -> float:
        """Seconds left (may be negative)."""
        return self.deadline - clock()

    def expired(self) -> bool:
        return clock() > self.deadline

    def share(self, fraction: float) -> "Budget":
        """A budget for one path: ``fraction`` of the time left, the same iteration cap."""
        return Budget(clock() + fraction * max(self.left(), 0.0), self.max_iter, self)

    @contextlib.contextmanager
    def excluded(self):
        """Leave the block's time out of the budget, and out of the budget it was cut from
        (one-off start-up such as an import)."""
        t0 = clock()
        try:
            yield
        finally:
            spent, budget = clock() - t0, self
            while budget is not None:
                budget.deadline += spent
                budget = budget.parent
