"""Stage outputs on disk, keyed by what they depend on: the pipeline's resume and reuse mechanism.

A stage's output lives at ``<root>/<stage>-<key>.pt``, ``key = stage_key(inputs...)`` (12 hex
digits of a stable hash of the stage's configuration and its upstream stages' keys). A rerun finds
the file and loads it instead of computing; a stage whose inputs changed gets a new key and runs
again; two sweep cells that share a stage (same experts, say) share its file. Files are written
atomically (temp file, then rename), and only by rank 0 under torchrun: other ranks compute the
same thing (or take part in the same DDP training) and wait at a barrier.

A stage file is data, never code: its name is a hash of public configuration, so anyone who
hands over a results folder can put a file of their choosing there. Files are written as plain
values (tensors, numbers, strings, lists, dicts: numpy values become tensors or Python numbers
first, `plain`) and read with ``torch.load(weights_only=True)``, torch's restricted unpickler,
which builds only those types and calls nothing else. A file it refuses (a pickle of anything
else, a damaged file) and a symlink in a stage's place are logged and the stage is computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import torch

from .. import distributed as dist
from ..tensorio import plain, save_atomic

__all__ = ["stage_key", "Store", "save_atomic", "load_stage", "plain"]

_log = logging.getLogger(__name__)


def stage_key(*parts) -> str:
    """12 hex digits of sha256 over the JSON of ``parts`` (dicts sorted; never Python's hash())."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def load_stage(path: Path):
    """The stage output saved at ``path``, or None when it cannot be read as data: a damaged file
    (truncated, garbage, empty), a pickle of anything but plain values (refused by torch's
    restricted unpickler, so nothing in it runs) or a symlink (never followed). Logged and
    recomputed, never half-read, as `sequence.train` treats a damaged checkpoint. Every rank
    reads the same file, so every rank decides alike."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            return torch.load(f, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... by damage
        first = str(exc).splitlines()[0] if str(exc) else ""
        _log.warning(
            "stage file %s is damaged or not plain data (%s: %s); the stage is computed again",
            path,
            type(exc).__name__,
            first[:200],
        )
        return None


class Store:
    """``<root>/<stage>-<key>.pt`` files; `get` loads one or computes and saves it."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / f"{stage}-{key}.pt"

    def get(self, stage: str, key: str, compute: Callable[[], object]):
        """The stored output of (stage, key), or ``compute()`` saved there (rank 0) and returned;
        a damaged or refused stage file is computed again and rewritten whole (`load_stage`)."""
        path = self.path(stage, key)
        dist.barrier()  # every rank sees the same files
        if os.path.lexists(path):
            out = load_stage(path)
            if out is not None:
                return out
        out = compute()
        if dist.is_writer():
            save_atomic(out, path)
        dist.barrier()
        return plain(out)
