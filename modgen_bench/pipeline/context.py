"""What every stage of one replicate shares: where its outputs are kept, the device, the seeds.

A stage takes its data inputs, one `StageRun` and its own settings (by keyword); the seeds it
draws from follow DESIGN.md's "seeds by job": initialisations from (seed, 'init', what), batches
and draws from (seed, resample, what) (`StageRun.sub`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..provenance import stable_seed
from .store import Store

__all__ = ["StageRun"]


@dataclass(frozen=True)
class StageRun:
    store: Store  # stage outputs and checkpoints (a rerun resumes from them)
    seed: int = 0  # the training seed: initialisations
    resample: int = 0  # the data resample: batches and draws
    device: str = "cpu"
    progress: bool = False  # progress bars and one log line per training
    checkpoint_every: int = 200  # `train_lm` checkpoint interval, steps

    def sub(self, *parts) -> int:
        """The sub-seed ``stable_seed(seed, resample, *parts)`` of this replicate."""
        return stable_seed(self.seed, self.resample, *parts)
