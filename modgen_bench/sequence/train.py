"""Next-token training of a causal LM (experts and retrained baselines, PAPER.md section 5),
resumable.

Sequences follow the BOS convention of `modgen_bench.models.transformer`: idx[:, 0] is BOS and the
loss is the mean cross-entropy of the data tokens idx[:, 1:] given their prefixes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed as dist
from ..optim import make_adamw
from ..provenance import stable_seed
from .checkpoint import Checkpoint, TrainState

__all__ = ["train_lm", "autocast", "lr_factor", "warmup_steps", "StepHook", "make_adamw"]

_log = logging.getLogger(__name__)


def autocast(device):
    """bf16 autocast on CUDA; nothing on CPU (CPU numbers stay float32 and reproducible)."""
    if torch.device(device).type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_factor(step: int, steps: int, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay from 1 to ``floor`` at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def warmup_steps(steps: int, frac: float) -> int:
    """Warm-up as a fraction of the run: ``round(frac * steps)``, at least 1 when frac > 0, so a
    short run is not spent entirely inside a fixed warm-up (0 when frac is 0)."""
    if steps < 1 or not 0 <= frac < 1:
        raise ValueError(f"warmup_steps: steps >= 1 and frac in [0, 1) (got {steps}, {frac})")
    return max(1, round(frac * steps)) if frac > 0 else 0


def _sequence_loss(model, idx, weights):
    """Mean token cross-entropy; with (B,) weights, the weighted mean of the per-sequence means."""
    logits, _ = model(idx[:, :-1])  # (B, T-1, V)
    B, T1, V = logits.shape
    ce = (
        F.cross_entropy(
            logits.float().reshape(B * T1, V), idx[:, 1:].reshape(B * T1), reduction="none"
        )
        .view(B, T1)
        .mean(dim=1)
    )  # (B,)
    if weights is None:
        return ce.mean()
    return (weights * ce).sum() / weights.sum()


def _shard_loss(net, idx, weights):
    """(loss to backpropagate, global-batch loss as a float) on this rank's slice of ``idx``.

    Single process: the plain `_sequence_loss`. Under DDP (gradients averaged over W ranks) the
    rank's loss is W * sum_i w_i ce_i / sum_all w, so the average is the global weighted mean."""
    if not dist.is_distributed():
        loss = _sequence_loss(net, idx, weights)
        return loss, float(loss.detach())
    sl = dist.shard(idx.shape[0])
    logits, _ = net(idx[sl, :-1])  # (b, T-1, V)
    b, T1, V = logits.shape
    ce = (
        F.cross_entropy(
            logits.float().reshape(b * T1, V), idx[sl, 1:].reshape(b * T1), reduction="none"
        )
        .view(b, T1)
        .mean(dim=1)
    )  # (b,)
    if weights is None:
        local = ce.sum() / idx.shape[0]
    else:
        local = (weights[sl] * ce).sum() / weights.sum()
    value = float(dist.all_reduce_sum(local))
    return local * dist.world_size(), value


class StepHook(Protocol):
    """Called as ``hook(step, model)`` before training step ``step`` (0-based) draws its batch;
    its ``state_dict()`` is saved in the checkpoint and restored on resume, so what it records
    (e.g. `pipeline.conflict.ConflictProbe`) survives a kill."""

    def __call__(self, step: int, model: nn.Module) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def train_lm(
    model: nn.Module,
    batches: Callable[[torch.Generator], torch.Tensor],
    steps: int,
    lr: float,
    device="cpu",
    seed: int = 0,
    checkpoint=None,
    progress: bool = False,
    weights=None,
    weight_decay: float = 0.0,
    warmup: int = 0,
    checkpoint_every: int = 200,
    grad_clip: float = 1.0,
    hook: StepHook | None = None,
    label: str = "train_lm",
) -> dict:
    """Train ``model`` for ``steps`` AdamW steps on ``batches(generator) -> LongTensor (B, T)``.

    Args:
        batches: draws one batch of BOS-prefixed sequences from a CPU ``torch.Generator`` seeded
            from ``seed``, so the same seed gives the same batches.
        weights: optional (B,) per-sequence loss weights (e.g. lam[domain] on a batch with equal
            items per domain: the loss is then sum_k lam[k] NLL_k without sampling noise in lam).
        checkpoint: a file path, saved every ``checkpoint_every`` steps and at the end and
            resumed from when it exists on entry (`checkpoint.Checkpoint`: a killed-then-resumed
            run ends with the same numbers on CPU as an uninterrupted one).
        warmup: linear warm-up steps before the cosine decay (see `lr_factor`).
        hook: optional `StepHook` run before each step; its state is checkpointed with the run.
        label: what is trained (``modgen_bench.logs.label``: model, seed, replicate); names the
            progress bar (drawn only on a terminal, see `modgen_bench.logs.progress`) and the one
            log line written when training ends.

    Under torchrun (`modgen_bench.distributed`), every rank draws the same global batch and
    trains on its slice of it (`_shard_loss`), so the trajectory does not depend on the number
    of processes (up to float summation order). Only rank 0 writes the checkpoint.

    Returns {"losses": per-step training losses, "final_loss": mean of the last 10% of them,
    "steps", "resumed_from" (0 when fresh), "seconds", "tokens_per_s" (of this call)}.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    model = model.to(device)
    gen = torch.Generator().manual_seed(stable_seed(seed, "batches"))
    opt = make_adamw(model.parameters(), lr, weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup))
    state, ckpt = (
        TrainState(model, opt, sched, gen, hook),
        Checkpoint(checkpoint, device, checkpoint_every, seed),
    )
    net = dist.wrap_ddp(model, device)
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=device)
    with _own_rng(device, seed):
        ckpt.restore(state)
        model.train()
        meter = _Meter(label, progress and dist.is_writer(), state.step, steps)
        for _ in meter.bar:
            meter.update(_train_step(state, net, batches, w, device, grad_clip), state.losses[-1])
            ckpt.after_step(state, steps)
        state.step = steps  # the run ends at ``steps``, whatever a resumed file held
        ckpt.save(state)
    model.eval()
    return meter.summary(state.losses)


@contextlib.contextmanager
def _own_rng(device, seed: int):
    """Fork torch's RNG (and the GPU's) and seed it from (seed, 'dropout'): training neither
    reads nor moves the caller's stream."""
    cuda = torch.device(device).type == "cuda"
    with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
        torch.manual_seed(stable_seed(seed, "dropout"))
        yield


def _train_step(s: TrainState, net, batches, weights, device, grad_clip: float) -> int:
    """One AdamW step at ``s.step``: the hook, a batch from ``s.gen``, the (sharded) loss under
    autocast, clipping, the update; appends the loss, advances the step and returns the number
    of data tokens trained on."""
    if s.hook is not None:
        s.hook(s.step, s.model)
    idx = batches(s.gen).to(device)
    with autocast(device):
        loss, value = _shard_loss(net, idx, weights)
    s.opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(s.model.parameters(), grad_clip)
    s.opt.step()
    s.sched.step()
    s.losses.append(value)
    s.step += 1
    return idx[:, 1:].numel()


class _Meter:
    """Progress bar, throughput and the one end-of-training log line of a `train_lm` call that
    starts at step ``start`` of ``steps``."""

    def __init__(self, label: str, enabled: bool, start: int, steps: int):
        from ..logs import progress as progress_bar

        self.label, self.enabled, self.start, self.steps = label, enabled, start, steps
        self.t0, self.tokens = time.perf_counter(), 0
        self.bar = progress_bar(
            range(start, steps), desc=label, enabled=enabled, initial=start, total=steps
        )

    def update(self, tokens: int, loss: float) -> None:
        self.tokens += tokens
        if not self.bar.disable:
            tok_s = self.tokens / max(1e-9, time.perf_counter() - self.t0)
            self.bar.set_postfix(
                loss=f"{loss:.3f}", tok_s=f"{tok_s:.0f}", refresh=False
            )  # redraws stay throttled

    def summary(self, losses: list) -> dict:
        seconds = time.perf_counter() - self.t0
        tail = losses[-max(1, len(losses) // 10) :]
        final = sum(tail) / len(tail)
        if self.enabled and self.start < self.steps:
            _log.info(
                f"{self.label}: steps {self.start}-{self.steps}, final loss {final:.4f} "
                f"nats/token, {seconds:.1f} s"
            )
        return {
            "losses": losses,
            "final_loss": final,
            "steps": self.steps,
            "resumed_from": self.start,
            "seconds": seconds,
            "tokens_per_s": self.tokens / seconds if seconds > 0 else float("nan"),
        }
