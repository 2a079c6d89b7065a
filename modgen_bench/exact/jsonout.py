"""`solve --json` without Python lists of the big arrays: JSON written chunk by chunk.

``json.dumps(sol.to_json())`` turned the (N,) model and the (N, p) gate into Python lists (32
bytes a float) and the whole text into one string: 12.6x the input's array size at N = 6.25e6,
p = 2. `write_json` writes the same JSON object, formatting ``CHUNK`` floats at a time
with ``float.__repr__`` -- what `json.dumps` itself uses, so every float round-trips and the text
parses to exactly the object `json.dumps` would give. Extra memory: O(CHUNK), not O(N p).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["write_json", "dumps", "RowBlocks", "CHUNK"]

#: Floats formatted per write (~1.5 MB of text).
CHUNK = 1 << 16


@dataclass(frozen=True)
class RowBlocks:
    """An (n_rows, n_cols) array given by its row blocks: ``rows(slice)`` -> that block.

    `write_json` asks for ``CHUNK // n_cols`` rows at a time, so the whole array never exists
    (the N x p gate: `Solution.gate_rows`)."""

    n_rows: int
    n_cols: int
    rows: Callable[[slice], np.ndarray]


def _repr(x: float) -> str:
    """A float as `json.dumps` writes it, except that non-finite values are null (valid JSON)."""
    return repr(x) if math.isfinite(x) else "null"


def _write_array(a, write: Callable[[str], object], chunk: int) -> None:
    """A 1-D or 2-D float array (or `RowBlocks`) as nested JSON lists, ``chunk`` floats at a
    time."""
    if isinstance(a, RowBlocks):
        n_rows, cols, ndim, get = a.n_rows, a.n_cols, 2, a.rows
    else:
        if a.ndim == 0:
            write(_repr(float(a)))
            return
        if a.ndim > 2:
            raise ValueError(f"write_json: arrays of 1 or 2 dimensions only (got shape {a.shape})")
        n_rows, ndim, get = a.shape[0], a.ndim, a.__getitem__
        cols = a.shape[1] if a.ndim == 2 else 1
    rows = max(1, chunk // max(cols, 1))
    write("[")
    for start in range(0, n_rows, rows):
        block = np.asarray(get(slice(start, start + rows)), dtype=float)
        fmt = repr if np.isfinite(block).all() else _repr
        if start:
            write(", ")
        if ndim == 1:
            write(", ".join(map(fmt, block.tolist())))
        elif cols == 0:
            write(", ".join(["[]"] * block.shape[0]))
        else:
            flat = list(map(fmt, block.ravel().tolist()))
            lines = (flat[i : i + cols] for i in range(0, len(flat), cols))
            write(", ".join("[" + ", ".join(r) + "]" for r in lines))
    write("]")


def write_json(obj: dict, write: Callable[[str], object], chunk: int = CHUNK) -> None:
    """Write the dict ``obj`` as one JSON object through ``write`` (e.g. ``sys.stdout.write``).

    Values that are numpy arrays (1-D or 2-D, float) or `RowBlocks` are streamed; everything else
    goes through
    `json.dumps`. Separators are json's defaults (", " and ": ")."""
    write("{")
    for i, (key, value) in enumerate(obj.items()):
        write((", " if i else "") + json.dumps(str(key)) + ": ")
        if isinstance(value, (np.ndarray, RowBlocks)):
            _write_array(value, write, chunk)
        else:
            write(json.dumps(value))
    write("}")


def dumps(obj: dict, chunk: int = CHUNK) -> str:
    """`write_json` into a string (for tests and small answers)."""
    parts: list[str] = []
    write_json(obj, parts.append, chunk)
    return "".join(parts)
