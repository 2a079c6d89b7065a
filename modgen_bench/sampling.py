"""Sampling from a gated model pi_g(x) = sum_k g(x, k) E[k](x) whose gate reads all of x.

PAPER.md section 4 ("Sampling from the non-causal gate"): a non-causal gate cannot be sampled
token by token, but the experts can. Both samplers draw from the proposal
``q = (1/p) sum_k E[k]`` (pick an expert uniformly, then sample it) and correct with the gate:

- SIR (`sir`): weights ``w(x) = pi_g(x) / q(x)``, resample in proportion to w. ``mean(w)`` is an
  unbiased estimate of ``Z_g = sum_x pi_g(x)``; the effective sample size ``(sum w)^2 / sum w^2``
  says how many independent draws the weighted sample is worth.
- Rejection (`rejection_sample`): ``pi_g(x) <= sum_k E[k](x) = p q(x)`` because g(x, .) lies on the
  simplex, so the envelope p*q accepts x ~ q with probability
  ``pi_g(x) / (p q(x)) = <g(x, .), softmax_k(log E[k](x))>``. Accepted draws follow pi_g / Z_g
  exactly; the acceptance rate is Z_g / p, i.e. the 1/p bound when Z_g = 1.

Both work over any `Proposal` (something that samples from and scores the experts): the discrete
`TableProposal` (exactly testable against `exact.solve`'s model) and `LMProposal` (causal LMs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch

from .algorithms.normaliser import z_control_variate
from .algorithms.spd import log_pi

__all__ = [
    "Proposal",
    "TableProposal",
    "LMProposal",
    "draw_from_q",
    "log_gate",
    "log_accept",
    "log_weight",
    "z_estimate",
    "SIRResult",
    "sir_from_draws",
    "sir",
    "RejectionResult",
    "accept",
    "rejection_sample",
]

LogGate = Callable[[torch.Tensor], torch.Tensor]  # inputs -> (n, p) log g(x, .)


class Proposal(Protocol):
    """The experts as a proposal: draw from E[k] and score any item under every expert."""

    p: int

    def sample_expert(self, k: int, n: int, generator: torch.Generator) -> torch.Tensor: ...

    def log_experts(self, inputs: torch.Tensor) -> torch.Tensor: ...  # (n, p) log E[k](x)


@dataclass
class TableProposal:
    """Experts as a (p, N) table of probabilities over outcomes 0..N-1 (a discrete problem)."""

    E: torch.Tensor

    @property
    def p(self) -> int:
        return self.E.shape[0]

    def sample_expert(self, k, n, generator):
        return torch.multinomial(self.E[k], n, replacement=True, generator=generator)  # (n,)

    def log_experts(self, inputs):
        return torch.log(self.E[:, inputs]).T  # (n, p)


@dataclass
class LMProposal:
    """Causal expert LMs (``TransformerLM``): ancestral sampling of ``block_size`` tokens from BOS.

    Sampling runs under no_grad on the experts' device; the generator lives on the CPU, so the
    same seed gives the same sequences whatever the device. With ``kv_cache`` (the default, for
    models with ``next_logits_cached``) each drawn token runs through the model once: a draw
    costs one scoring pass (`matching.causal_pass_flops`) instead of T - 1 of them, with the
    same draws for the same generator (tested).
    """

    experts: Sequence[torch.nn.Module]
    block_size: int
    bos: int
    device: str = "cpu"
    batch_size: int = 256
    kv_cache: bool = True  # each new token runs once (KVCache); False re-runs the prefix

    @property
    def p(self) -> int:
        return len(self.experts)

    @torch.no_grad()
    def sample_expert(self, k, n, generator):
        """n sequences (n, block_size) from expert k, in chunks of ``batch_size`` (bounded
        memory)."""
        sizes = [min(self.batch_size, n - i) for i in range(0, n, self.batch_size)]
        return torch.cat([self._ancestral(self.experts[k], m, generator) for m in sizes])

    def _ancestral(self, model, n, generator):
        idx = torch.full((n, 1), self.bos, dtype=torch.long, device=self.device)
        cache = None
        if self.kv_cache and hasattr(model, "next_logits_cached"):
            from .models.transformer import KVCache

            cache = KVCache.empty(len(model.encoder.blocks))
        for _ in range(self.block_size - 1):
            logits = (
                model.next_logits_cached(idx[:, -1:], cache)
                if cache is not None
                else model.next_logits(idx)
            )  # (n, V), BOS at -inf
            probs = torch.softmax(logits.float(), dim=-1).cpu()  # (n, V)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (n, 1)
            idx = torch.cat([idx, nxt.to(self.device)], dim=1)
        return idx.cpu()  # (n, block_size)

    @torch.no_grad()
    def log_experts(self, inputs):
        out = []
        for chunk in inputs.split(self.batch_size):
            chunk = chunk.to(self.device)
            out.append(
                torch.stack([e.sequence_logprob(chunk).float() for e in self.experts], -1).cpu()
            )
        return torch.cat(out)  # (n, p)


def draw_from_q(proposal: Proposal, n: int, generator: torch.Generator):
    """n draws from q = (1/p) sum_k E[k]: (inputs, log_experts (n, p), component (n,))."""
    comp = torch.randint(0, proposal.p, (n,), generator=generator)
    parts, comps = [], []
    for k in range(proposal.p):
        m = int((comp == k).sum())
        if m:
            parts.append(proposal.sample_expert(k, m, generator))
            comps.append(torch.full((m,), k, dtype=torch.long))
    inputs = torch.cat(parts)
    return inputs, proposal.log_experts(inputs), torch.cat(comps)


def log_accept(log_g: torch.Tensor, log_experts: torch.Tensor) -> torch.Tensor:
    """log of pi_g(x) / (p q(x)) = log <g(x, .), softmax_k(log E[k](x))> (<= 0): (n, p) -> (n,)."""
    return log_pi(log_g, log_experts) - torch.logsumexp(log_experts, dim=-1)


def log_weight(log_g: torch.Tensor, log_experts: torch.Tensor) -> torch.Tensor:
    """Importance log-weight log pi_g(x) / q(x) = `log_accept` + log p of draws from q (PAPER.md
    section 4, SPD: Z_g = E_q[pi_g / q]): (n, p) -> (n,)."""
    return log_accept(log_g, log_experts) + math.log(log_experts.shape[-1])


@torch.no_grad()
def log_gate(gate: LogGate, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """log g(x, .) in chunks on the gate's device (a module's parameters; CPU for a function)."""
    params = list(gate.parameters()) if isinstance(gate, torch.nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    return torch.cat([gate(c.to(device)).float().cpu() for c in inputs.split(batch_size)])


@dataclass
class SIRResult:
    """Sampling-importance-resampling from pi_g / Z_g.

    samples: (m, ...) resampled items; log_w: (n,) log pi_g(x)/q(x) of the n proposals;
    ess: (sum w)^2 / sum w^2 in [1, n]; Z_hat: the control-variate estimate of Z
    (`algorithms.normaliser.z_control_variate`; exact for a constant gate, never worse than the
    plain mean asymptotically) with its 95% normal interval Z_ci; Z_plain = mean w.
    """

    samples: torch.Tensor
    log_w: torch.Tensor
    ess: float
    Z_hat: float
    Z_ci: tuple[float, float]
    Z_plain: float = float("nan")

    @property
    def ess_fraction(self) -> float:
        return self.ess / self.log_w.numel()


def z_estimate(log_w: torch.Tensor) -> tuple[float, tuple[float, float]]:
    """Z_hat = mean_x pi_g(x)/q(x) over x ~ q, and its 95% normal interval (PAPER.md section 4,
    SPD)."""
    w = torch.exp(log_w.double())
    z, se = float(w.mean()), float(w.std(unbiased=True) / math.sqrt(w.numel()))
    return z, (z - 1.96 * se, z + 1.96 * se)


def sir_from_draws(
    log_g: torch.Tensor,
    log_experts: torch.Tensor,
    inputs: torch.Tensor,
    m: int,
    generator: torch.Generator,
) -> SIRResult:
    """SIR on given draws from q: log_g, log_experts (n, p) of the n draws ``inputs``."""
    log_w = log_weight(log_g, log_experts)  # (n,)
    ess = float(torch.exp(2 * torch.logsumexp(log_w, 0) - torch.logsumexp(2 * log_w, 0)))
    pick = torch.multinomial(
        torch.softmax(log_w.double(), 0), m, replacement=True, generator=generator
    )
    z, ci, _ = z_control_variate(log_w, log_experts)
    return SIRResult(
        samples=inputs[pick], log_w=log_w, ess=ess, Z_hat=z, Z_ci=ci, Z_plain=z_estimate(log_w)[0]
    )


def sir(gate: LogGate, proposal: Proposal, n: int, m: int, generator: torch.Generator) -> SIRResult:
    """Draw n items from q, weight by pi_g/q, resample m with replacement (PAPER.md section 4)."""
    inputs, log_e, _ = draw_from_q(proposal, n, generator)
    return sir_from_draws(log_gate(gate, inputs), log_e, inputs, m, generator)


@dataclass
class RejectionResult:
    """Exact draws from pi_g / Z_g with envelope p*q.

    acceptance = n_accepted / n_proposed estimates Z_g / p; bound = 1/p (the rate when Z_g = 1);
    log_experts: (n_accepted, p) the accepted items' expert log-likelihoods (reused by
    distillation).
    """

    samples: torch.Tensor
    log_experts: torch.Tensor
    n_proposed: int
    n_accepted: int
    bound: float

    @property
    def acceptance(self) -> float:
        return self.n_accepted / self.n_proposed

    @property
    def acceptance_ci(self) -> tuple[float, float]:
        a, se = (
            self.acceptance,
            math.sqrt(self.acceptance * (1 - self.acceptance) / self.n_proposed),
        )
        return a - 1.96 * se, a + 1.96 * se


def accept(
    log_g: torch.Tensor, log_experts: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """(n,) bool: accept each draw x ~ q with probability pi_g(x) / (p q(x))."""
    u = torch.rand(log_g.shape[0], generator=generator, dtype=torch.float64)
    return torch.log(u) < log_accept(log_g, log_experts).double()


def rejection_sample(
    gate: LogGate,
    proposal: Proposal,
    n: int,
    generator: torch.Generator,
    batch: int = 256,
    max_proposals: int | None = None,
) -> RejectionResult:
    """Propose from q in batches, accept x with probability pi_g(x) / (p q(x)), until n accepted.

    Stops early (returning fewer than n samples) after ``max_proposals`` proposals when given.
    """
    kept, kept_e, proposed, accepted = [], [], 0, 0
    while accepted < n and (max_proposals is None or proposed < max_proposals):
        inputs, log_e, _ = draw_from_q(proposal, batch, generator)
        ok = accept(log_gate(gate, inputs), log_e, generator)
        kept.append(inputs[ok])
        kept_e.append(log_e[ok])
        proposed += batch
        accepted += int(ok.sum())
    samples, log_e = torch.cat(kept)[:n], torch.cat(kept_e)[:n]
    return RejectionResult(
        samples=samples,
        log_experts=log_e,
        n_proposed=proposed,
        n_accepted=accepted,
        bound=1.0 / proposal.p,
    )
