"""Tiny torch sequence models (PAPER.md sections 4-5): the causal LM used for experts and retrained
baselines, the non-causal sequence gate, and the causal router of Structural Distillation.

BOS convention: data tokens 0..V-1, BOS = V, model vocabulary V + 1; every stored sequence starts
with BOS (see `transformer`).
"""

from .gate import GateConfig, SequenceGate
from .router import CausalRouter
from .transformer import LMConfig, TransformerLM, count_params, lm_config

__all__ = [
    "LMConfig",
    "TransformerLM",
    "GateConfig",
    "SequenceGate",
    "CausalRouter",
    "count_params",
    "lm_config",
]
