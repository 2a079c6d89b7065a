"""The discrete problem: p domains and p frozen experts over N outcomes (PAPER.md section 1).

A `DiscreteProblem` holds the domain distributions ``P`` (p x N) and the expert distributions
``E`` (p x N), both row-stochastic, plus optional domain names. It is the public exchange format
of the suite: JSON ``{"domains": [[...]], "experts": [[...]], "names": [...]}`` or NPZ with the
same keys (DESIGN.md, "Problem file").
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write

__all__ = ["DiscreteProblem", "ProblemError", "ROW_SUM_TOL", "atomic_write"]

#: Rows of P and E must sum to 1 within this absolute tolerance.
ROW_SUM_TOL = 1e-6


class ProblemError(ValueError):
    """Malformed problem input; the message names the field and the rule it breaks."""


def _as_matrix(name: str, value) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ProblemError(f"'{name}' must be a p x N array of numbers ({exc})") from None
    if arr.size == 0 and arr.ndim <= 2 and (arr.ndim < 2 or arr.shape[0] == 0):
        raise ProblemError(f"'{name}' must have p >= 1 rows (got none)")
    if arr.ndim != 2:
        raise ProblemError(f"'{name}' must be a p x N array (got {arr.ndim} dimension(s))")
    if arr.shape[1] < 1:
        raise ProblemError(f"'{name}' must have N >= 1 outcomes (got 0)")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ProblemError(f"'{name}' has a NaN or infinite entry at row {bad[0]}, outcome {bad[1]}")
    if np.any(arr < 0):
        bad = np.argwhere(arr < 0)[0]
        raise ProblemError(
            f"'{name}' has a negative mass {arr[tuple(bad)]:.3g} at row {bad[0]}, outcome {bad[1]}")
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0)
    if np.any(off > ROW_SUM_TOL):
        k = int(np.argmax(off))
        raise ProblemError(
            f"'{name}' row {k} sums to {sums[k]:.9g}; every row must sum to 1 within {ROW_SUM_TOL:g}")
    return arr


@dataclass(frozen=True, eq=False)
class DiscreteProblem:
    """Domains ``P[k]`` and experts ``E[k]`` (k = 0..p-1) over the same N outcomes.

    Attributes:
        P: (p, N) domain distributions, rows sum to 1.
        E: (p, N) expert distributions, rows sum to 1.
        names: p domain names.
    """

    P: np.ndarray
    E: np.ndarray
    names: tuple[str, ...]

    @classmethod
    def from_arrays(cls, domains, experts, names=None) -> "DiscreteProblem":
        """Validate and build a problem; raise `ProblemError` naming the first broken rule."""
        P = _as_matrix("domains", domains)
        E = _as_matrix("experts", experts)
        if P.shape != E.shape:
            raise ProblemError(
                f"'domains' is {P.shape[0]} x {P.shape[1]} but 'experts' is {E.shape[0]} x {E.shape[1]};"
                " both must be p x N over the same outcomes")
        p = P.shape[0]
        if names is None:
            names = tuple(f"domain{k}" for k in range(p))
        else:
            names = tuple(str(n) for n in names)
            if len(names) != p:
                raise ProblemError(f"'names' has {len(names)} entries but there are p = {p} domains")
        P.setflags(write=False)
        E.setflags(write=False)
        return cls(P=P, E=E, names=names)

    @property
    def p(self) -> int:
        return self.P.shape[0]

    @property
    def N(self) -> int:
        return self.P.shape[1]

    def to_dict(self) -> dict:
        return {"domains": self.P.tolist(), "experts": self.E.tolist(), "names": list(self.names)}

    @classmethod
    def from_dict(cls, data) -> "DiscreteProblem":
        if not isinstance(data, dict):
            raise ProblemError("a problem must be an object with keys 'domains' and 'experts'")
        missing = [k for k in ("domains", "experts") if k not in data]
        if missing:
            raise ProblemError(f"problem is missing the key(s) {', '.join(repr(m) for m in missing)}")
        return cls.from_arrays(data["domains"], data["experts"], data.get("names"))

    @classmethod
    def load(cls, path) -> "DiscreteProblem":
        """Read a JSON or NPZ problem file (chosen by suffix; anything but .npz is read as JSON)."""
        path = Path(path)
        if not path.is_file():
            raise ProblemError(f"problem file '{path}' does not exist")
        if path.stat().st_size == 0:
            raise ProblemError(f"problem file '{path}' is empty")
        if path.suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    data = {k: z[k] for k in z.files}
            except (ValueError, OSError) as exc:
                raise ProblemError(f"problem file '{path}' is not a readable NPZ archive ({exc})") from None
            if "names" in data:
                data["names"] = [str(n) for n in data["names"]]
            return cls.from_dict(data)
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProblemError(f"problem file '{path}' is not valid JSON ({exc})") from None
        return cls.from_dict(data)

    def save(self, path) -> None:
        """Write JSON (or NPZ for a .npz suffix) atomically: a temp file, then a rename."""
        path = Path(path)
        if path.suffix == ".npz":
            def write(f):
                np.savez(f, domains=self.P, experts=self.E, names=np.array(self.names))
            atomic_write(path, write, binary=True)
        else:
            atomic_write(path, lambda f: json.dump(self.to_dict(), f))

