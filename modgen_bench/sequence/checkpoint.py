"""A training run's checkpoint: one file holding everything resuming needs (STYLE.md: a
checkpoint stores the config, the step and the RNG state), so a killed-then-resumed run ends with
the numbers of an uninterrupted one on CPU.

`TrainState` is what is saved and restored: the model, optimiser and schedule, the batch
generator, the step hook, the step and the loss log; `Checkpoint` is where it goes and how often.
Files are written atomically by rank 0 only (`tensorio.save_atomic`); a damaged file is logged
and training starts again from step 0, never from a half-read state.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import distributed as dist
from ..tensorio import save_atomic

__all__ = ["TrainState", "Checkpoint", "load_checkpoint"]

_log = logging.getLogger(__name__)

#: what a usable checkpoint holds at least (older files may lack cuda_rng, config, seed, hook)
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "step", "losses", "batch_rng", "torch_rng")


@dataclass
class TrainState:
    """One training run's mutable state: what a checkpoint saves and restores."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator  # the batch generator (CPU)
    hook: object | None = None  # a `sequence.train.StepHook`; its state travels too
    step: int = 0  # steps done
    losses: list = field(default_factory=list)


def load_checkpoint(path: Path | None, device) -> dict | None:
    """The checkpoint at ``path``; None when there is none, or when it is damaged (truncated, not
    a torch file, keys missing): a damaged checkpoint is logged and training starts from step 0."""
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        missing = [k for k in CHECKPOINT_KEYS if k not in state]
        if missing:
            raise KeyError(f"missing {missing}")
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... by damage
        _log.warning(
            "checkpoint %s is damaged (%s: %s); training starts again from step 0",
            path,
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )
        return None
    return state


def _config_dict(model) -> dict | None:
    config = getattr(model, "config", None)
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None


@dataclass
class Checkpoint:
    """``path`` (None: no checkpoint) written every ``every`` steps and at the end of a run of
    ``seed`` on ``device``."""

    path: Path | None
    device: object = "cpu"
    every: int = 200
    seed: int = 0

    def __post_init__(self):
        self.path = Path(self.path) if self.path is not None else None

    @property
    def _cuda(self) -> bool:
        return torch.device(self.device).type == "cuda"

    def restore(self, s: TrainState) -> None:
        """Load the file into ``s`` (weights, optimiser, schedule, RNG states, step, losses, the
        hook's state) when it exists and is whole; otherwise leave ``s`` at step 0."""
        state = load_checkpoint(self.path, self.device)
        if state is None:
            return
        s.model.load_state_dict(state["model"])
        s.opt.load_state_dict(state["optimizer"])
        s.sched.load_state_dict(state["scheduler"])
        s.gen.set_state(state["batch_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self._cuda:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        s.losses, s.step = list(state["losses"]), int(state["step"])
        if s.hook is not None and state.get("hook") is not None:
            s.hook.load_state_dict(state["hook"])

    def save(self, s: TrainState) -> None:
        """Write ``s`` at its current step (rank 0 only; atomic: no half-written file)."""
        if self.path is None or not dist.is_writer():
            return
        save_atomic(
            {
                "model": s.model.state_dict(),
                "optimizer": s.opt.state_dict(),
                "scheduler": s.sched.state_dict(),
                "step": s.step,
                "losses": s.losses,
                "batch_rng": s.gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self._cuda else None,
                "config": _config_dict(s.model),
                "seed": self.seed,
                "hook": s.hook.state_dict() if s.hook is not None else None,
            },
            self.path,
        )

    def after_step(self, s: TrainState, steps: int) -> None:
        """Save every ``every`` steps before the last (the end of the run is saved by `save`)."""
        if s.step % self.every == 0 and s.step < steps:
            self.save(s)
