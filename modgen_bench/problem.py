"""The discrete problem: p domains and p frozen experts over N outcomes (PAPER.md section 1).

A `DiscreteProblem` holds the domain distributions ``P`` (p x N) and the expert distributions
``E`` (p x N), both row-stochastic, plus optional domain names. It is the public exchange format
of the suite: JSON ``{"domains": [[...]], "experts": [[...]], "names": [...]}`` or NPZ with the
same keys (DESIGN.md, "Problem file").
"""

from __future__ import annotations

import json
import math
import numbers
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import UserError

__all__ = ["DiscreteProblem", "ProblemError", "ROW_SUM_TOL", "atomic_write"]

#: Rows of P and E must sum to 1 within this absolute tolerance (rounded real data: float32 rows,
#: counts divided by totals). Accepted rows are taken as given, never renormalised: the exact core
#: decides G1 on these numbers with the one slack `gates.FEAS_TOL` (1e-9, the rounding of a sum),
#: so expert rows summing to 1 + 6e-7 can make G1 empty from below, and `solve` says so.
ROW_SUM_TOL = 1e-6


class ProblemError(UserError):
    """Malformed problem input; the message names the field and the rule it breaks."""


def _kind(x) -> str:
    """How to name a value that is not a number, in an error message."""
    if isinstance(x, (bool, np.bool_)):
        return "a boolean"
    if isinstance(x, (str, bytes)):
        return "a string"
    if x is None:
        return "null"
    if isinstance(x, (list, tuple, np.ndarray)):
        return "a nested list"
    if isinstance(x, dict):
        return "an object"
    if isinstance(x, (complex, np.complexfloating)):
        return "a complex number"
    if _is_real(x):
        return f"the number {x!r}"
    return f"a value of type {type(x).__name__}"


def _is_real(x) -> bool:
    return type(x) in (float, int) or (
        isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))
    )


def _check_real_dtype(name: str, arr: np.ndarray) -> None:
    if arr.dtype.kind not in "fiu":
        what = {
            "b": "booleans",
            "c": "complex numbers",
            "U": "strings",
            "S": "strings",
            "O": "Python objects",
        }.get(arr.dtype.kind, f"dtype {arr.dtype}")
        raise ProblemError(f"'{name}' must be a p x N array of real numbers (got {what})")


def _check_structure(name: str, value) -> None:
    """Reject what numpy would silently coerce: only a p x N array of real numbers passes.

    Python lists must nest exactly 2 deep (rows of numbers): deeper nesting, booleans, strings,
    null and complex numbers are errors naming the first offending row and outcome. A numpy
    array must have a real (float/int) dtype; its shape is checked by `_as_matrix`.
    """
    if isinstance(value, np.ndarray):
        _check_real_dtype(name, value)
        return
    if not isinstance(value, (list, tuple)):
        raise ProblemError(
            f"'{name}' must be a p x N array: a list of rows of numbers (got {_kind(value)})"
        )
    lengths = {}
    for i, row in enumerate(value):
        if isinstance(row, (list, tuple, np.ndarray)):
            lengths.setdefault(len(row), i)
        if len(lengths) > 1:
            (a, i0), (b, i1) = list(lengths.items())[:2]
            raise ProblemError(
                f"'{name}' rows have different lengths (row {i0} has {a} outcomes, "
                f"row {i1} has {b}); it must be a p x N array"
            )
        if isinstance(row, np.ndarray):
            _check_real_dtype(name, row)
            if row.ndim != 1:
                raise ProblemError(
                    f"'{name}' must be a p x N array (row {i} has {row.ndim + 1} dimensions)"
                )
            continue
        if _is_real(row):
            raise ProblemError(f"'{name}' must be a p x N array (got 1 dimension(s))")
        if not isinstance(row, (list, tuple)):
            raise ProblemError(
                f"'{name}' must be a p x N array of numbers; row {i} is {_kind(row)}"
            )
        for j, x in enumerate(row):
            if type(x) is float or type(x) is int or _is_real(x):
                continue
            if isinstance(x, (list, tuple, np.ndarray)):
                raise ProblemError(
                    f"'{name}' must be a p x N array, nested exactly 2 deep; "
                    f"row {i}, outcome {j} is a further nested list"
                )
            raise ProblemError(
                f"'{name}' must be a p x N array of numbers; row {i}, outcome {j} is {_kind(x)}"
            )


def _as_matrix(name: str, value) -> np.ndarray:
    _check_structure(name, value)
    try:
        # no copy when ``value`` already is a float64 array (an NPZ member)
        arr = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise ProblemError(
            f"'{name}' has a number outside the float range (|x| > 1.8e308)"
        ) from None
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
        raise ProblemError(
            f"'{name}' has a NaN or infinite entry at row {bad[0]}, outcome {bad[1]}"
        )
    if np.any(arr < 0):
        bad = np.argwhere(arr < 0)[0]
        raise ProblemError(
            f"'{name}' has a negative mass {arr[tuple(bad)]:.3g} at row {bad[0]}, outcome {bad[1]}"
        )
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0)
    if np.any(off > ROW_SUM_TOL):
        k = int(np.argmax(off))
        raise ProblemError(
            f"'{name}' row {k} sums to {sums[k]:.9g}; every row must sum to 1 "
            f"within {ROW_SUM_TOL:g}"
        )
    return arr


def _as_names(value, p: int) -> tuple[str, ...]:
    """``names``: a list of p strings (an NPZ member: a 1-D string array)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "US" or value.ndim != 1:
            shape = "a scalar" if value.ndim == 0 else f"a {value.ndim}-D array"
            raise ProblemError(
                f"'names' must be a list of {p} strings (got {shape} of dtype {value.dtype})"
            )
        value = [n.decode() if isinstance(n, bytes) else n for n in value.tolist()]
    if not isinstance(value, (list, tuple)):
        raise ProblemError(f"'names' must be a list of {p} strings (got {_kind(value)})")
    for k, n in enumerate(value):
        if not isinstance(n, str):
            raise ProblemError(f"'names' entry {k} must be a string (got {_kind(n)})")
    if len(value) != p:
        raise ProblemError(f"'names' has {len(value)} entries but there are p = {p} domains")
    return tuple(value)


def _reject_duplicate_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ProblemError(f"duplicate key '{k}'")
        out[k] = v
    return out


def _read_json(path: Path):
    """Parse a JSON problem file: UTF-8 (a leading BOM is allowed), no duplicate keys."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProblemError(
            f"problem file '{path}' is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except ProblemError as exc:
        raise ProblemError(f"problem file '{path}' has a {exc}") from None
    except RecursionError:
        raise ProblemError(
            f"problem file '{path}' nests too deeply; problem arrays nest exactly 2 deep"
        ) from None
    except json.JSONDecodeError as exc:
        raise ProblemError(f"problem file '{path}' is not valid JSON ({exc})") from None
    except ValueError:  # an integer literal with more digits than Python converts
        raise ProblemError(
            f"problem file '{path}' has a number outside the float range "
            f"(an integer with over {sys.get_int_max_str_digits()} digits)"
        ) from None


_NPZ_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


#: the members a problem file's NPZ may hold; any other member is never read
NPZ_KEYS = ("domains", "experts", "names")


def _member_header(f, path: Path, key: str) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, header bytes) of an .npy member read from the open stream ``f``."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ProblemError(
            f"problem file '{path}': member '{key}' has .npy format {version}; "
            "save it with numpy.savez"
        )
    return shape, dtype, f.tell()


def npz_arrays(path, keys=NPZ_KEYS) -> dict:
    """The members ``keys`` of an NPZ archive that are present, read lazily: a member is read
    only when asked for, and only after its header's shape is checked against the bytes the
    archive holds for it (a header claiming a huge array is an error before any allocation).
    No pickles. Damage raises `ProblemError` naming the file."""
    path = Path(path)
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = set(zf.namelist())
            for key in keys:
                if f"{key}.npy" not in members:
                    continue
                info = zf.getinfo(f"{key}.npy")
                with zf.open(info) as f:
                    shape, dtype, head = _member_header(f, path, key)
                need = math.prod(shape) * dtype.itemsize
                if need > info.file_size - head:
                    raise ProblemError(
                        f"problem file '{path}': member '{key}' claims shape {shape} of {dtype} "
                        f"({need} bytes) but holds {max(info.file_size - head, 0)} bytes"
                    )
                with zf.open(info) as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
    except (
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        KeyError,
    ) as exc:
        if isinstance(exc, ProblemError):
            raise
        raise ProblemError(
            f"problem file '{path}' is not a readable NPZ archive ({type(exc).__name__}: {exc})"
        ) from None
    return out


def _read_npz(path: Path) -> dict:
    """The problem members of an NPZ archive (`npz_arrays`); a bare .npy is named as such."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(_NPY_MAGIC):
        raise ProblemError(
            f"problem file '{path}' is a single .npy array, not an NPZ archive; "
            "save the keys 'domains', 'experts' with numpy.savez"
        )
    if not head.startswith(_NPZ_MAGIC[:2]):
        raise ProblemError(f"problem file '{path}' is not an NPZ archive (no zip header)")
    return npz_arrays(path)


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
                f"'domains' is {P.shape[0]} x {P.shape[1]} but "
                f"'experts' is {E.shape[0]} x {E.shape[1]};"
                " both must be p x N over the same outcomes"
            )
        p = P.shape[0]
        if names is None:
            names = tuple(f"domain{k}" for k in range(p))
        else:
            names = _as_names(names, p)
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
            raise ProblemError(
                f"problem is missing the key(s) {', '.join(repr(m) for m in missing)}"
            )
        return cls.from_arrays(data["domains"], data["experts"], data.get("names"))

    @classmethod
    def load(cls, path) -> "DiscreteProblem":
        """Read a JSON or NPZ problem file (chosen by suffix; anything but .npz is read as JSON).

        Every malformed file raises `ProblemError` naming the file: missing, unreadable, empty,
        not UTF-8, invalid or too deeply nested JSON, duplicate keys, a damaged NPZ or a bare
        .npy, and every rule of `from_arrays`.
        """
        path = Path(path)
        try:
            if not path.exists():
                raise ProblemError(f"problem file '{path}' does not exist")
            if not path.is_file():
                raise ProblemError(f"problem file '{path}' is not a regular file")
            if path.stat().st_size == 0:
                raise ProblemError(f"problem file '{path}' is empty")
            data = _read_npz(path) if path.suffix == ".npz" else _read_json(path)
        except OSError as exc:
            raise ProblemError(
                f"cannot read problem file '{path}': {exc.strerror or exc}"
            ) from None
        try:
            return cls.from_dict(data)
        except ProblemError as exc:
            raise ProblemError(f"{path}: {exc}") from None

    def save(self, path) -> None:
        """Write JSON (or NPZ for a .npz suffix) atomically: a temp file, then a rename."""
        path = Path(path)
        if path.suffix == ".npz":

            def write(f):
                np.savez(f, domains=self.P, experts=self.E, names=np.array(self.names))

            atomic_write(path, write, binary=True)
        else:
            atomic_write(path, lambda f: json.dump(self.to_dict(), f))
