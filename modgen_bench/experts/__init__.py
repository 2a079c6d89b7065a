"""Frozen experts behind one interface (`protocol.ExpertLM`): the suite's byte-level LMs
(`builtin`) and Hugging Face causal LMs on disk (`hf`, imported only by the studies that use it,
since it needs ``transformers``)."""

from .builtin import BYTES_HASH, BuiltinExpert
from .protocol import (
    Draw,
    ExpertLM,
    ExpertProposal,
    loglik_table,
    same_tokenizer,
    token_logprob_table,
)

__all__ = [
    "ExpertLM",
    "Draw",
    "ExpertProposal",
    "same_tokenizer",
    "token_logprob_table",
    "loglik_table",
    "BuiltinExpert",
    "BYTES_HASH",
]
