"""The suite's byte-level `TransformerLM` as an `ExpertLM` (tokenizer: bytes 0..255 + BOS 256).

Scores in chunks of ``batch_size`` windows through `TransformerLM.token_logprobs`; draws by
KV-cached ancestral sampling from BOS with the softmax on the CPU and the CPU generator (as
`sampling.LMProposal`), so the same seed gives the same windows whatever the device.
"""

from __future__ import annotations

import hashlib

import torch

from ..data.corpora import BOS, VOCAB_SIZE
from ..models import TransformerLM, count_params
from ..models.transformer import KVCache
from .protocol import Draw, batched, drawn_in_chunks

__all__ = ["BYTES_HASH", "BuiltinExpert", "ByteTokens", "BuiltinFamily"]

#: identity of the byte tokenizer (no merges: 256 byte ids and BOS)
BYTES_HASH = hashlib.sha256(f"bytes-0-255+bos-{BOS}".encode()).hexdigest()


class BuiltinExpert:
    """``model`` frozen (eval mode, no gradients) on ``device``."""

    tokenizer_hash = BYTES_HASH

    def __init__(
        self, model: TransformerLM, name: str = "expert", device="cpu", batch_size: int = 256
    ):
        self.model = model.to(device).eval().requires_grad_(False)
        self.name, self.device, self.batch_size = name, device, batch_size
        self.vocab_size = model.config.vocab_size
        self.bos = self.vocab_size - 1
        if self.vocab_size != ByteTokens.vocab_size:  # another vocabulary: another tokenizer
            self.tokenizer_hash = hashlib.sha256(f"vocab-{self.vocab_size}".encode()).hexdigest()
        self.n_params = count_params(model)

    @torch.no_grad()
    def token_logprobs(self, windows: torch.Tensor) -> torch.Tensor:
        """(n, T-1) float32 on the CPU, in chunks of ``batch_size`` windows."""
        return batched(self.model.token_logprobs, windows, self.batch_size, self.device)

    @torch.no_grad()
    def window_loglik(self, windows: torch.Tensor) -> torch.Tensor:
        return batched(self.model.sequence_logprob, windows, self.batch_size, self.device)

    @torch.no_grad()
    def draw(self, n: int, T: int, generator: torch.Generator) -> Draw:
        return drawn_in_chunks(self._ancestral, n, T, generator, self.batch_size)

    def sample(self, n: int, T: int, generator: torch.Generator) -> torch.Tensor:
        return self.draw(n, T, generator).windows

    def _ancestral(self, n: int, T: int, generator):
        """KV-cached: each drawn token runs through the model once (`KVCache`), the same draws
        as re-running the prefix (`next_logits`) for the same generator."""
        idx = torch.full((n, 1), self.bos, dtype=torch.long, device=self.device)
        cache = KVCache.empty(len(self.model.encoder.blocks))
        logps = []
        for _ in range(T - 1):
            logits = self.model.next_logits_cached(idx[:, -1:], cache)  # (n, V), BOS at -inf
            probs = torch.softmax(logits.float(), dim=-1).cpu()  # (n, V)
            nxt = torch.multinomial(probs, 1, generator=generator)  # (n, 1)
            logps.append(torch.log_softmax(logits.float(), dim=-1).cpu().gather(-1, nxt))
            idx = torch.cat([idx, nxt.to(self.device)], dim=1)
        return idx.cpu(), torch.cat(logps, dim=1)  # (n, T), (n, T-1)


class ByteTokens:
    """The byte tokenizer of a study's data: documents joined by `corpora.DOC_SEP`, BOS = 256."""

    hash = BYTES_HASH
    bos = BOS
    vocab_size = VOCAB_SIZE

    def encode(self, docs: list[bytes]) -> torch.Tensor:
        """(n_bytes,) uint8 tokens of the documents joined by `DOC_SEP` (as `corpora.Slice`)."""
        from ..data.corpora import DOC_SEP

        return torch.frombuffer(bytearray(DOC_SEP.join(docs)), dtype=torch.uint8)


class BuiltinFamily:
    """`TransformerLM`s over bytes: what `train` and `branch` build, and the monolith's family."""

    name = "builtin"
    tokens = ByteTokens()
    vocab_size = ByteTokens.vocab_size

    def make(
        self, n_layer: int, n_head: int, d_model: int, d_ff: int, T: int, seed: int
    ) -> TransformerLM:
        """A fresh LM of these sizes, initialised from ``seed`` (``d_ff`` 0: 4 * d_model)."""
        from ..models import LMConfig

        torch.manual_seed(seed)
        cfg = LMConfig(self.vocab_size, T, n_layer, n_head, d_model, d_ff or 4 * d_model)
        return TransformerLM(cfg)

    @staticmethod
    def param_counts(cfg) -> tuple[int, int]:
        """(total, non-embedding) parameters of a `TransformerLM` of ``cfg`` (closed forms)."""
        from ..matching import closed_form_counts

        return closed_form_counts(cfg)

    def expert(self, module: TransformerLM, name: str, device="cpu") -> BuiltinExpert:
        return BuiltinExpert(module, name, device)
