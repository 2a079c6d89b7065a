"""Plain tensor files: what a stage or a checkpoint saves, written atomically and read as data.

`plain` turns numpy values into tensors and Python numbers, so a file reads back with
``torch.load(weights_only=True)`` (torch's restricted unpickler) without an allow-list;
`save_atomic`
writes it through a temp file and a rename (`atomic.write_with`). The stage store
(`pipeline.store`) and the trainer's checkpoints (`sequence.train`) share them.
"""

from __future__ import annotations

import numpy as np
import torch

from .atomic import write_with

__all__ = ["plain", "save_atomic"]


def plain(obj):
    """``obj`` with numpy arrays as tensors and numpy scalars as Python numbers (tuples, lists
    and dicts walked), so `torch.load(weights_only=True)` reads it back without an allow-list.
    A float64 scalar becomes a Python float (the same double); arrays keep their dtype."""
    if isinstance(obj, dict):
        return type(obj)((k, plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_atomic(obj, path) -> None:
    """torch.save `plain` ``obj`` to ``path`` through a temp file and a rename (`..atomic`)."""
    obj = plain(obj)
    write_with(path, lambda tmp: torch.save(obj, tmp))
