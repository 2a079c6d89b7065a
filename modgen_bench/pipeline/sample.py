"""Stage 7, sampling from the gated model (PAPER.md section 4, "Sampling from the non-causal gate";
`modgen_bench.sampling`): one pool of ``n_draws`` draws from q = (1/p) sum_k E[k] serves SIR for
every gate (Z with a 95% interval, ESS) and rejection sampling from one gate (the router's
training set: exact draws from pi_g / Z_g; acceptance estimates Z_g / p, 1/p when Z_g = 1).

Inputs: the experts, the gates, ``n_draws``, seeds. Outputs: `SamplingResult` (per gate: SIR
result; the rejection sample of ``reject_from``). Cache key: `draws_key` for the draws from q
(the only expensive part: ancestral sampling); SIR and acceptance are recomputed from them with
their own seeded generators, so a resumed run gets the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..experts import ExpertProposal
from ..sampling import RejectionResult, accept, draw_from_q, log_gate, sir_from_draws
from .context import StageRun
from .experts import Experts
from .store import stage_key

__all__ = ["SamplingResult", "draws_key", "sample_gates", "sampling_seed"]


@dataclass
class SamplingResult:
    sir: dict  # signal -> SIRResult
    rejection: RejectionResult  # exact draws from the ``reject_from`` gate's model


def draws_key(experts: Experts, n_draws: int, seed: int) -> str:
    return stage_key("q-draws", experts.key, n_draws, seed)


def sampling_seed(run: StageRun, step: str) -> int:
    """The generator seed of one sampling step ('q', 'sir-<signal>', 'accept') of ``run``."""
    return run.sub("sampling", step)


def sample_gates(
    experts: Experts, gates: dict, run: StageRun, *, n_draws: int, reject_from: str = "excess"
) -> SamplingResult:
    """SIR for each gate in ``gates`` (signal -> module) and rejection sampling from
    ``reject_from``; each step draws from its own generator (`sampling_seed`)."""
    proposal = ExpertProposal(experts.experts, experts.T)

    def gen(step):
        return torch.Generator().manual_seed(sampling_seed(run, step))

    key = draws_key(experts, n_draws, sampling_seed(run, "q"))
    inputs, log_e_q, _ = run.store.get(
        "q-draws", key, lambda: draw_from_q(proposal, n_draws, gen("q"))
    )
    sirs, rej = {}, None
    for signal, gate in gates.items():
        lg = log_gate(gate, inputs)
        sirs[signal] = sir_from_draws(lg, log_e_q, inputs, n_draws, gen(f"sir-{signal}"))
        if signal == reject_from:
            ok = accept(lg, log_e_q, gen("accept"))
            rej = RejectionResult(inputs[ok], log_e_q[ok], len(ok), int(ok.sum()), 1.0 / proposal.p)
    if rej is None:
        raise ValueError(f"reject_from='{reject_from}' names none of the gates {sorted(gates)}")
    return SamplingResult(sirs, rej)
