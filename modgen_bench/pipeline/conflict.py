"""Stage 9, gradient conflict along training (PAPER.md section 5; metric in
`modgen_bench.conflict`).

Two probes on fixed windows (the first ``conflict_batch`` pool windows of each domain):
- `ConflictProbe`: a `sequence.train.StepHook` for LM training (the monolith): every ``every``
  steps, the mean pairwise cosine of its per-domain NLL gradients. Its log is part of the
  training checkpoint, so a killed-and-resumed run keeps the rows measured before the kill.
- `gate_conflict`: SPD's ``evaluate`` hook: the same metric for the gated model's NLL per domain,
  gradient over the gate only (the log becomes a column of SPD's history, stored with the gate).
Both run in eval mode and draw no random numbers: the training run is the one without a probe.
Inputs: the model, probe windows (and their cached expert log-likelihoods for the gate).
Outputs: [(step, cosine)]; cached with the stage that trains the model.
"""

from __future__ import annotations

import torch

from ..algorithms.spd import log_pi
from ..conflict import domain_gradients, mean_pairwise_cosine

__all__ = ["ConflictProbe", "lm_domain_losses", "gate_conflict", "probe_windows"]


def probe_windows(pool: torch.Tensor, pool_log_e: torch.Tensor, n: int):
    """([p] windows (n, T), [p] expert log-liks (n, p)): the first ``n`` pool windows per domain."""
    return [pool[k, :n] for k in range(pool.shape[0])], [
        pool_log_e[k, :n] for k in range(pool.shape[0])
    ]


def lm_domain_losses(model, probe, device):
    """[p] closures: the LM's mean next-token NLL on domain k's probe windows."""
    return [lambda w=w: model(w.to(device)[:, :-1], w.to(device)[:, 1:])[1] for w in probe]


class ConflictProbe:
    """Every ``every`` steps (step 0 included), record the per-domain gradient conflict of the model
    being trained; ``losses(model) -> [p] closures``. ``log``: [(step, mean pairwise cosine)]."""

    def __init__(self, losses, every: int):
        self.losses, self.every, self.log = losses, every, []

    def __call__(self, step: int, model) -> None:
        if step % self.every:
            return
        was = model.training
        model.eval()
        self.log.append((step, mean_pairwise_cosine(domain_gradients(model, self.losses(model)))))
        model.train(was)

    def state_dict(self) -> dict:
        return {"log": [[int(s), float(v)] for s, v in self.log]}

    def load_state_dict(self, state: dict) -> None:
        self.log = [(int(s), float(v)) for s, v in state["log"]]


def gate_conflict(probe, probe_e, T: int, device):
    """SPD ``evaluate`` hook: {"conflict": mean pairwise cosine of the gated model's per-domain
    per-token NLL gradients over the gate's parameters}."""

    def evaluate(gate):
        losses = [
            lambda w=w, e=e: -log_pi(gate(w.to(device)), e.to(device)).mean() / (T - 1)
            for w, e in zip(probe, probe_e, strict=True)
        ]
        return {"conflict": mean_pairwise_cosine(domain_gradients(gate, losses))}

    return evaluate
