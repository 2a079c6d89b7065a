"""The time and iteration budget of one exact solve, shared by the paths of the fallback chain.

Every path checks the budget once per iteration and says why it stopped (`STOPS`), so a solve
never runs for minutes and its answer names what cut it short. The budget counts the CPU seconds
of this process (`time.process_time`): on an idle machine that is the wall time, and on a busy
one a solve is not cut short by other processes' work (which would make answers depend on the
load). One-off start-up (importing cvxpy) is left out (`Budget.excluded`).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

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


clock = time.process_time


@dataclass
class Budget:
    """A deadline (`clock` seconds: this process's CPU time) and an iteration cap per path."""

    deadline: float = math.inf
    max_iter: int = 200

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

    @contextlib.contextmanager
    def excluded(self):
        """Leave the block's time out of the budget (one-off start-up such as an import)."""
        t0 = clock()
        try:
            yield
        finally:
            self.deadline += clock() - t0
