"""Next-token training of a causal LM (experts and retrained baselines, PAPER.md section 5), resumable.

Sequences follow the BOS convention of `modgen_bench.models.transformer`: idx[:, 0] is BOS and the
loss is the mean cross-entropy of the data tokens idx[:, 1:] given their prefixes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .. import distributed as dist
from ..optim import make_adamw
from ..provenance import stable_seed
from ..tensorio import save_atomic

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
    logits, _ = model(idx[:, :-1])                                   # (B, T-1, V)
    B, T1, V = logits.shape
    ce = F.cross_entropy(logits.float().reshape(B * T1, V), idx[:, 1:].reshape(B * T1),
                         reduction="none").view(B, T1).mean(dim=1)  # (B,)
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
    logits, _ = net(idx[sl, :-1])                                    # (b, T-1, V)
    b, T1, V = logits.shape
    ce = F.cross_entropy(logits.float().reshape(b * T1, V), idx[sl, 1:].reshape(b * T1),
                         reduction="none").view(b, T1).mean(dim=1)  # (b,)
    if weights is None:
        local = ce.sum() / idx.shape[0]
    else:
        local = (weights[sl] * ce).sum() / weights.sum()
    value = float(dist.all_reduce_sum(local))
    return local * dist.world_size(), value


def _save(path: Path, state: dict) -> None:
    """Atomic torch.save (temp file, then rename): no half-written checkpoint; rank 0 only."""
    if dist.is_writer():
        save_atomic(state, path)


_CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "step", "losses", "batch_rng", "torch_rng")


def _load_checkpoint(path: Path | None, device) -> dict | None:
    """The checkpoint at ``path``; None when there is none, or when it is damaged (truncated, not
    a torch file, keys missing): a damaged checkpoint is logged and training starts from step 0,
    never from a half-read state (issue 10)."""
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        missing = [k for k in _CHECKPOINT_KEYS if k not in state]
        if missing:
            raise KeyError(f"missing {missing}")
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... by damage
        _log.warning("checkpoint %s is damaged (%s: %s); training starts again from step 0",
                     path, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return None
    return state


class StepHook(Protocol):
    """Called as ``hook(step, model)`` before training step ``step`` (0-based) draws its batch;
    its ``state_dict()`` is saved in the checkpoint and restored on resume, so what it records
    (e.g. `pipeline.conflict.ConflictProbe`) survives a kill."""

    def __call__(self, step: int, model: nn.Module) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def _config_dict(model) -> dict | None:
    config = getattr(model, "config", None)
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else None


def train_lm(model: nn.Module, batches: Callable[[torch.Generator], torch.Tensor], steps: int, lr: float,
             device="cpu", seed: int = 0, checkpoint=None, progress: bool = False, weights=None,
             weight_decay: float = 0.0, warmup: int = 0, checkpoint_every: int = 200,
             grad_clip: float = 1.0, hook: StepHook | None = None, label: str = "train_lm") -> dict:
    """Train ``model`` for ``steps`` AdamW steps on ``batches(generator) -> LongTensor (B, T)``.

    Args:
        batches: draws one batch of BOS-prefixed sequences from a CPU ``torch.Generator`` seeded
            from ``seed``, so the same seed gives the same batches.
        weights: optional (B,) per-sequence loss weights (e.g. lam[domain] on a batch with equal
            items per domain: the loss is then sum_k lam[k] NLL_k without sampling noise in lam).
        checkpoint: a file path. Every ``checkpoint_every`` steps and at the end, the model,
            optimiser, schedule, step, the batch generator's and torch's RNG states and the loss
            log are saved there; if the file exists on entry, training resumes from it, so a
            killed-then-resumed run ends with the same numbers on CPU as an uninterrupted one.
        warmup: linear warm-up steps before the cosine decay (see `lr_factor`).
        hook: optional `StepHook` run before each step; its state is checkpointed with the run.
        label: what is trained (``modgen_bench.logs.label``: model, seed, replicate); names the
            progress bar (drawn only on a terminal, see `modgen_bench.logs.progress`) and the one
            log line written when training ends.

    Under torchrun (`modgen_bench.distributed`), every rank draws the same global batch and
    trains on its slice of it with DistributedDataParallel; each rank's loss is scaled so that
    the mean over ranks is the global-batch loss, so the trajectory does not depend on the
    number of processes (up to float summation order). Only rank 0 writes the checkpoint.

    Returns {"losses": per-step training losses, "final_loss": mean of the last 10% of them,
    "steps", "resumed_from" (0 when fresh), "seconds", "tokens_per_s" (of this call)}.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    from ..logs import progress as progress_bar

    model = model.to(device)
    gen = torch.Generator().manual_seed(stable_seed(seed, "batches"))
    opt = make_adamw(model.parameters(), lr, weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, warmup))
    net = dist.wrap_ddp(model, device)
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=device)
    losses, start = [], 0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    with torch.random.fork_rng(devices=[torch.device(device)] if torch.device(device).type == "cuda" else []):
        torch.manual_seed(stable_seed(seed, "dropout"))
        state = _load_checkpoint(checkpoint, device)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["batch_rng"])
            torch.set_rng_state(state["torch_rng"])
            if state.get("cuda_rng") is not None and torch.device(device).type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            losses, start = list(state["losses"]), int(state["step"])
            if hook is not None and state.get("hook") is not None:
                hook.load_state_dict(state["hook"])

        def save(step):
            _save(checkpoint, {
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "step": step, "losses": losses,
                "batch_rng": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if torch.device(device).type == "cuda" else None,
                "config": _config_dict(model), "seed": seed,
                "hook": hook.state_dict() if hook is not None else None})

        model.train()
        t0, tokens = time.perf_counter(), 0
        bar = progress_bar(range(start, steps), desc=label, enabled=progress and dist.is_writer(),
                           initial=start, total=steps)
        for step in bar:
            if hook is not None:
                hook(step, model)
            idx = batches(gen).to(device)
            with autocast(device):
                loss, value = _shard_loss(net, idx, w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            sched.step()
            losses.append(value)
            tokens += idx[:, 1:].numel()
            if not bar.disable:
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False,   # redraws stay throttled
                                tok_s=f"{tokens / max(1e-9, time.perf_counter() - t0):.0f}")
            if checkpoint is not None and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                save(step + 1)
        if checkpoint is not None:
            save(steps)
    model.eval()
    seconds = time.perf_counter() - t0
    tail = losses[-max(1, len(losses) // 10):]
    if progress and start < steps and dist.is_writer():
        _log.info(f"{label}: steps {start}-{steps}, final loss {sum(tail) / len(tail):.4f} nats/token, "
                  f"{seconds:.1f} s")
    return {"losses": losses, "final_loss": sum(tail) / len(tail), "steps": steps, "resumed_from": start,
            "seconds": seconds, "tokens_per_s": tokens / seconds if seconds > 0 else float("nan")}
