"""Many problems in one process: problem files and NPZ archives with a leading batch axis.

`modgen-bench solve FILE [FILE ...]` grades thousands of problems without paying the start-up per
problem. An NPZ whose ``domains`` and ``experts`` are (B, p, N) holds B problems
over the same p and N; any other file is one problem (`DiscreteProblem.load`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable, Iterator

from ..problem import DiscreteProblem, ProblemError, npz_arrays

__all__ = ["iter_problems"]


def _npz_batch(path: Path) -> Iterator[DiscreteProblem] | None:
    """The problems of a batched NPZ (domains of shape (B, p, N)); None when it is not batched."""
    if not zipfile.is_zipfile(path):
        return None  # e.g. a bare .npy named .npz: `DiscreteProblem.load` names the fault
    arrays = npz_arrays(path)  # only its problem members, each header checked before reading
    D, E, names = arrays.get("domains"), arrays.get("experts"), arrays.get("names")
    if D is None or D.ndim != 3:
        return None
    if E is None:
        raise ProblemError(f"{path}: problem is missing the key(s) 'experts'")
    if E.shape != D.shape:
        raise ProblemError(
            f"{path}: a batched NPZ needs 'domains' and 'experts' of the same "
            f"shape (B, p, N) (got {D.shape} and {E.shape})"
        )
    if D.shape[0] == 0:
        raise ProblemError(f"{path}: a batched NPZ of 0 problems (domains of shape {D.shape})")

    def gen():
        for b in range(D.shape[0]):
            try:
                yield DiscreteProblem.from_arrays(D[b], E[b], names)
            except ProblemError as exc:
                raise ProblemError(f"{path}[{b}]: {exc}") from None

    return gen()


def iter_problems(paths, resolve: Callable = Path) -> Iterator[tuple[str, DiscreteProblem]]:
    """(label, problem) for every problem in ``paths``; a batched NPZ gives labels 'FILE[b]'.

    ``resolve`` maps a command-line name to a path (the CLI finds shipped examples by name).
    Problems are loaded one at a time, so a batch of any size streams."""
    for name in paths:
        path = Path(resolve(name))
        if path.suffix == ".npz" and path.is_file():
            batch = _npz_batch(path)
            if batch is not None:
                for b, problem in enumerate(batch):
                    yield f"{path}[{b}]", problem
                continue
        yield str(path), DiscreteProblem.load(path)
