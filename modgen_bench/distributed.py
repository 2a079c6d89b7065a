"""torch.distributed helpers: data-parallel training under ``torchrun`` (gloo on CPU, NCCL on CUDA).

Under ``torchrun --nproc-per-node N -m modgen_bench run SUITE ...`` every rank runs the same
pipeline; the training loops (`sequence.train.train_lm`, `distill.train_router`,
`algorithms.spd.train_spd`) draw the SAME global batch on every rank from the same seeded
generator and each rank keeps its slice (`shard`), so the batches do not depend on N. Gradients
are averaged by DistributedDataParallel; losses are scaled so that the average over ranks is the
global-batch loss. Only rank 0 writes files (`is_writer`).

Without torchrun (no WORLD_SIZE in the environment, or WORLD_SIZE=1) every helper is a no-op
and the code path is the single-process one.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = [
    "init_from_env",
    "is_distributed",
    "rank",
    "world_size",
    "is_writer",
    "barrier",
    "all_reduce_sum",
    "shard",
    "wrap_ddp",
    "backend_for",
    "destroy",
    "torchrun_command",
    "run_under_torchrun",
]


def backend_for(device) -> str:
    """NCCL on CUDA, gloo on CPU."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device="cpu") -> bool:
    """Join the process group that torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT).

    Returns True when running distributed (WORLD_SIZE > 1). On CUDA each rank takes the GPU
    LOCAL_RANK. Calling it again is harmless.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend_for(device))
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_writer() -> bool:
    """True on rank 0 (and in a single process): the only rank that writes results and caches."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over ranks (a new tensor; ``t`` itself is untouched; differentiable inputs
    are detached: use it for statistics, never for the loss)."""
    out = t.detach().clone()
    if is_distributed():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def shard(n: int) -> slice:
    """This rank's contiguous slice of a global batch of ``n`` items (n must divide evenly)."""
    w = world_size()
    if n % w:
        raise ValueError(
            f"a global batch of {n} items does not split over {w} ranks; "
            f"choose a batch size divisible by the number of processes"
        )
    m = n // w
    return slice(rank() * m, (rank() + 1) * m)


def wrap_ddp(model: torch.nn.Module, device) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` when distributed, else ``model`` itself."""
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else None
    return DDP(model, device_ids=ids)


def destroy() -> None:
    """Leave the process group: a barrier first, so no rank closes its gloo connections while
    another is still working (a peer that exits early makes gloo's transport thread in the
    other rank throw 'Connection closed by peer' and abort: SIGABRT, exit status -6)."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def torchrun_command(nproc: int, argv: list) -> list:
    """``python -m torch.distributed.run --nproc-per-node N -m modgen_bench ARGV`` with any
    ``--nproc`` option removed from ARGV (the children must not relaunch)."""
    import sys

    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        rest.append(a)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "modgen_bench",
        *rest,
    ]


def run_under_torchrun(nproc: int, argv: list, device: str = "cpu") -> int:
    """`modgen-bench run --nproc N ...`: run the same command under torchrun; its exit status."""
    import subprocess

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            "--nproc was given inside a torchrun process; drop --nproc (torchrun sets the ranks)"
        )
    env = dict(os.environ)
    if torch.device(device if device != "auto" else "cpu").type == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.call(torchrun_command(nproc, argv), env=env)
