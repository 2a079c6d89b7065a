"""The expert interface: what every stage after expert training may ask of a frozen expert E[k]
(PAPER.md section 1: p frozen, pre-trained experts; DESIGN.md, "Experts").

A window is a LongTensor (n, T) whose column 0 is the study's BOS token; the expert scores the
T-1 tokens after it: ``log E(x) = sum_{t>=1} log E(x_t | x_<t)``. Two implementations:
`builtin.BuiltinExpert` (the suite's byte-level `TransformerLM`) and `hf.HFExpert` (a Hugging
Face causal LM loaded from a local folder). One study has one tokenizer: `same_tokenizer` checks
the experts' `tokenizer_hash` before anything is scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence

import torch

from ..errors import UserError

__all__ = [
    "batched",
    "drawn_in_chunks",
    "ExpertLM",
    "Draw",
    "ExpertProposal",
    "same_tokenizer",
    "token_logprob_table",
    "loglik_table",
]


class Draw(NamedTuple):
    """Windows drawn from an expert and the log-probs it gave each drawn token."""

    windows: torch.Tensor  # (n, T) int64, column 0 = BOS
    token_logprobs: torch.Tensor  # (n, T-1) float32: log E(x_t | x_<t) recorded when drawn


class ExpertLM(Protocol):
    """A frozen causal LM seen through log-probs and draws only."""

    name: str
    vocab_size: int  # ids the expert can score or emit (BOS included): the gate's embedding size
    bos: int  # column 0 of every window
    tokenizer_hash: str  # sha256 of the tokenizer's vocabulary and merges
    n_params: int

    def token_logprobs(
        self, windows: torch.Tensor
    ) -> torch.Tensor: ...  # (n, T) -> (n, T-1) float32, CPU

    def window_loglik(
        self, windows: torch.Tensor
    ) -> torch.Tensor: ...  # (n, T) -> (n,) float32, CPU

    def draw(self, n: int, T: int, generator: torch.Generator) -> Draw: ...

    def sample(self, n: int, T: int, generator: torch.Generator) -> torch.Tensor: ...  # (n, T)


def batched(fn, windows: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """``fn`` over ``windows`` in chunks of ``batch_size`` on ``device``: float32 on the CPU (the
    adapters' scoring, so memory is bounded whatever the number of windows)."""
    return torch.cat([fn(c.to(device)).float().cpu() for c in windows.split(batch_size)])


def drawn_in_chunks(ancestral, n: int, T: int, generator, batch_size: int) -> Draw:
    """n draws of T tokens as chunks of at most ``batch_size`` sequences from ``ancestral(m, T,
    generator) -> (windows, token log-probs)``, in order (the same generator stream)."""
    parts = [ancestral(min(batch_size, n - i), T, generator) for i in range(0, n, batch_size)]
    return Draw(torch.cat([w for w, _ in parts]), torch.cat([lp for _, lp in parts]))


def same_tokenizer(experts: Sequence[ExpertLM]) -> str:
    """The study's tokenizer hash; `UserError` naming the first two experts that disagree."""
    if not experts:
        raise UserError("no experts: a study needs at least one")
    first = experts[0]
    for e in experts[1:]:
        if e.tokenizer_hash != first.tokenizer_hash or e.bos != first.bos:
            raise UserError(
                f"experts '{first.name}' and '{e.name}' use different tokenizers "
                f"(hash {first.tokenizer_hash[:12]} vs {e.tokenizer_hash[:12]}): "
                "one study needs one tokenizer"
            )
    return first.tokenizer_hash


def token_logprob_table(experts: Sequence[ExpertLM], windows: torch.Tensor) -> torch.Tensor:
    """(n, T-1, p) float32: log E[k](x_t | x_<t) of every window under every expert."""
    if windows.dim() != 2 or windows.dtype != torch.long:
        raise ValueError(
            f"windows must be a LongTensor (n, T) (got {tuple(windows.shape)}, {windows.dtype})"
        )
    return torch.stack([e.token_logprobs(windows) for e in experts], dim=-1)


def loglik_table(experts: Sequence[ExpertLM], windows: torch.Tensor) -> torch.Tensor:
    """(n, p) float32: log E[k](x), the per-token table summed over time."""
    return token_logprob_table(experts, windows).sum(dim=1)


@dataclass
class ExpertProposal:
    """The experts as `sampling.Proposal`: q = (1/p) sum_k E[k] over windows of T tokens."""

    experts: Sequence[ExpertLM]
    T: int

    @property
    def p(self) -> int:
        return len(self.experts)

    def sample_expert(self, k: int, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.experts[k].sample(n, self.T, generator)

    def log_experts(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([e.window_loglik(inputs) for e in self.experts], dim=-1)  # (n, p)
