"""torch's intra-op thread count for the duration of a block.

The models and tensors here are small: on CPU, thread hand-offs cost more than they save, so
training loops run with few threads (presets: ``cpu_threads``) and restore the caller's count.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["cpu_threads"]


@contextlib.contextmanager
def cpu_threads(n: int, device="cpu"):
    """Run the block with ``torch.set_num_threads(n)`` when ``device`` is a CPU (an accelerator's
    count is left alone); the previous count is restored on exit, on error too."""
    old = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
