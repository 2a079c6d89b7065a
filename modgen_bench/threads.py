"""Thread counts for the duration of a block: torch's intra-op threads and the BLAS pool.

The models and tensors here are small: on CPU, thread hand-offs cost more than they save, so
training loops run with few threads (presets: ``cpu_threads``) and restore the caller's count.
The exact core's work is p-row matrix-vector products over N outcomes (memory-bound, a few flops
per byte), where extra BLAS threads gain little and, when other BLAS users share the cores,
oversubscription costs 2-4x (measured on 2 shared cores, p = 8, N = 1e5 .. 1e6: 82 ms with the
default threads vs 20 ms with one); `blas_threads` limits the BLAS pool with threadpoolctl.
torch is imported only by `cpu_threads`, so the exact core never loads it.
"""

from __future__ import annotations

import contextlib
import functools

__all__ = ["cpu_threads", "blas_threads"]


@contextlib.contextmanager
def cpu_threads(n: int, device="cpu"):
    """Run the block with ``torch.set_num_threads(n)`` when ``device`` is a CPU (an accelerator's
    count is left alone); the previous count is restored on exit, on error too."""
    import torch

    old = torch.get_num_threads()
    if torch.device(device).type == "cpu":
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@functools.lru_cache(maxsize=1)
def _controller():
    """One threadpoolctl controller per process (finding the loaded libraries costs ~ms; a
    limit through it ~8 us)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def blas_threads(n: int | None):
    """Run the block with at most ``n`` BLAS threads (None: leave the pool alone); the previous
    counts are restored on exit, on error too."""
    if n is None:
        yield
        return
    with _controller().limit(limits=n, user_api="blas"):
        yield
