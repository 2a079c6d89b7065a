"""A tiny causal transformer language model (nanoGPT layout), used as a frozen domain expert and as
the monolithic retrained baseline (PAPER.md section 5).

BOS convention (shared by every sequence model and pipeline in this package): the data use tokens
``0 .. V-1``; the begin-of-sequence token is ``BOS = V`` and the model vocabulary is ``V + 1``.
A stored sequence ``idx`` of shape (B, T) always starts with BOS, so ``idx[:, 1:]`` are the T-1
data tokens, and the likelihood of a sequence is that of its data tokens given BOS:
``log E(x) = sum_{t>=1} log p(idx[:, t] | idx[:, :t])``. The model never predicts BOS (its logit
is -inf), so its probabilities over the data sequences of each length sum to 1.

Dimensions are named once: B batch, T time, C = d_model channels, H heads, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

__all__ = [
    "LMConfig",
    "SelfAttention",
    "MLP",
    "Block",
    "Encoder",
    "TransformerLM",
    "count_params",
    "lm_config",
    "init_weights",
    "KVCache",
]


@dataclass
class LMConfig:
    """Sizes of `TransformerLM`; ``vocab_size`` counts BOS (data vocabulary + 1)."""

    vocab_size: int
    block_size: int  # the longest sequence, BOS included
    n_layer: int = 1
    n_head: int = 2
    d_model: int = 8
    d_ff: int = 32
    dropout: float = 0.0

    def __post_init__(self):
        if self.d_model % self.n_head != 0:
            raise UserError(f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model", "d_ff"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout must be in [0, 1) (got {self.dropout})")


def lm_config(spec, vocab_size: int, block_size: int, d_model: int | None = None) -> LMConfig:
    """The `LMConfig` of a size spec (anything with ``n_layer``, ``n_head``, ``d_model``,
    ``d_ff``: `pipeline.config.LMTrain`, `SmallNet`) over ``vocab_size`` token ids (BOS
    included: ask the experts or their family, never a constant). ``d_model`` overrides the
    spec's width (a matched monolith); ``d_ff`` 0 means 4 * d_model."""
    d = spec.d_model if d_model is None else d_model
    return LMConfig(vocab_size, block_size, spec.n_layer, spec.n_head, d, spec.d_ff or 4 * d)


def count_params(module: nn.Module) -> int:
    """Number of scalar parameters of ``module`` (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


class SelfAttention(nn.Module):
    """Multi-head self-attention; ``causal`` masks the future (LM, router) or not (gate)."""

    def __init__(self, d_model: int, n_head: int, dropout: float, causal: bool):
        super().__init__()
        self.n_head, self.causal, self.dropout = n_head, causal, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, H, T, C/H)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, H, T, C/H) -> (B, T, C)
        return self.proj(y)


@dataclass
class KVCache:
    """Keys and values of the positions decoded so far, one (B, H, t, C/H) pair per block, for
    ancestral sampling: each new token then runs through the model once instead of re-running
    the whole prefix (`TransformerLM.next_logits_cached`)."""

    k: list
    v: list
    length: int = 0

    @classmethod
    def empty(cls, n_layer: int) -> "KVCache":
        return cls([None] * n_layer, [None] * n_layer, 0)


def _attend_cached(attn: SelfAttention, x, cache: KVCache, i: int):
    """Causal attention of the new positions x (B, T_new, C) to the cached ones and themselves;
    appends their keys and values to block i's cache. Only T_new = 1 is used (ancestral
    sampling), where the new position may see every cached one, so no mask is needed; several
    positions only into an empty cache, with the causal mask."""
    B, T, C = x.shape
    q, k, v = attn.qkv(x).split(C, dim=2)
    # (B, T, C) -> (B, H, T, C/H)
    q, k, v = (t.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2) for t in (q, k, v))
    if cache.k[i] is not None:
        k, v = torch.cat([cache.k[i], k], dim=2), torch.cat([cache.v[i], v], dim=2)
    cache.k[i], cache.v[i] = k, v
    y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
    return attn.proj(y.transpose(1, 2).contiguous().view(B, T, C))  # (B, H, T, C/H) -> (B, T, C)


class MLP(nn.Module):
    def __init__(self, d_model: int, d_ff: int, dropout: float):
        super().__init__()
        self.fc, self.proj, self.drop = (
            nn.Linear(d_model, d_ff),
            nn.Linear(d_ff, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_head: int, d_ff: int, dropout: float, causal: bool):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_head, dropout, causal)
        self.mlp = MLP(d_model, d_ff, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Encoder(nn.Module):
    """Token + learned position embeddings, ``n_layer`` blocks, final LayerNorm: (B, T) -> (B, T,
    C).

    Shared by the LM and the router (``causal=True``) and by the sequence gate (``causal=False``).
    """

    def __init__(self, vocab_size, block_size, n_layer, n_head, d_model, d_ff, dropout, causal):
        super().__init__()
        self.block_size = block_size
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(block_size, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(d_model, n_head, d_ff, dropout, causal) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(d_model)

    def forward(self, idx):
        B, T = idx.shape
        if T > self.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)


def init_weights(module: nn.Module) -> None:
    """GPT-2 initialisation: normal(0, 0.02) weights, zero biases (apply with ``model.apply``)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class TransformerLM(nn.Module):
    """Causal LM: logits[:, t] is the distribution of token t+1 given idx[:, :t+1]."""

    def __init__(self, config: LMConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(
            c.vocab_size,
            c.block_size,
            c.n_layer,
            c.n_head,
            c.d_model,
            c.d_ff,
            c.dropout,
            causal=True,
        )
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.register_buffer("_bos", torch.tensor([c.vocab_size - 1]), persistent=False)
        self.apply(init_weights)

    def forward(self, idx, targets=None):
        """idx (B, T) -> logits (B, T, V); with targets (B, T), also the mean cross-entropy.

        The BOS logit is -inf: the model is a distribution over data tokens only, so
        `sequence_logprob` sums to 1 over the data sequences and `generate` samples from exactly
        the distribution it scores."""
        logits = self._logits(self.encoder(idx))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return logits, loss

    def token_logprobs(self, idx):
        """(B, T-1): log p(idx[:, t] | idx[:, :t]) for t = 1 .. T-1 (idx[:, 0] is BOS)."""
        logits, _ = self(idx[:, :-1])  # (B, T-1, V)
        logp = F.log_softmax(logits.float(), dim=-1)
        return logp.gather(-1, idx[:, 1:, None]).squeeze(-1)

    def sequence_logprob(self, idx):
        """(B,): log E(x) = sum_{t>=1} log p(idx[:, t] | idx[:, :t]), in nats."""
        return self.token_logprobs(idx).sum(dim=-1)

    def _logits(self, h):
        """The head on hidden states (..., C) -> (..., V), with the BOS logit at -inf."""
        return self.head(h).index_fill(-1, self._bos, -math.inf)

    def next_logits(self, idx):
        """(B, V) logits of the token after idx (BOS at -inf); the head runs at the last position
        only."""
        return self._logits(self.encoder(idx[:, -self.config.block_size :])[:, -1])

    @torch.no_grad()
    def next_logits_cached(self, tok, cache: KVCache):
        """(B, V) logits of the token after the cached prefix and ``tok`` (B, 1), the BOS logit at
        -inf; ``tok``'s keys and values join ``cache``. The same numbers as `next_logits` on the
        whole prefix, up to float summation order, at one position's cost (eval mode: no
        dropout)."""
        enc = self.encoder
        t = cache.length
        if t > 0 and tok.shape[1] != 1:
            raise ValueError("next_logits_cached: after the first call, one token at a time")
        if t + tok.shape[1] > enc.block_size:
            raise ValueError(
                f"sequence length {t + tok.shape[1]} exceeds block_size {enc.block_size}"
            )
        pos = torch.arange(t, t + tok.shape[1], device=tok.device)
        x = enc.tok(tok) + enc.pos(pos)  # (B, 1, C)
        for i, block in enumerate(enc.blocks):
            x = x + _attend_cached(block.attn, block.ln1(x), cache, i)
            x = x + block.mlp(block.ln2(x))
        cache.length = t + tok.shape[1]
        return self._logits(enc.ln_f(x)[:, -1])

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, generator: torch.Generator | None = None):
        """Append ``max_new_tokens`` tokens sampled from the model to idx (B, T0); BOS is never
        drawn.

        ``generator`` makes the draw reproducible (same seed -> same sequences on CPU).
        """
        for _ in range(max_new_tokens):
            logits = self.next_logits(idx).float()  # (B, V); BOS is at -inf
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
        return idx
