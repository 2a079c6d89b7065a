"""Tiny Hugging Face experts for tests, built here and saved with save_pretrained (no download)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from modgen_bench.experts.hf import HFFamily, save_hf_expert, train_bpe  # noqa: E402

TEXTS = [
    "the cat sat on the mat. " * 4,
    "def add(a, b):\n    return a + b\n" * 3,
    "In the beginning was the word, and the word was with God. " * 2,
]


def tokenizer(texts=TEXTS, vocab_size=300):
    return train_bpe(texts, vocab_size)


def gpt2(tok, T=16, d_model=32, n_layer=1, seed=0):
    """A randomly initialised GPT-2 of width ``d_model`` over ``tok`` (an `HFCausalLM`)."""
    return HFFamily.gpt2(tok, T).make(n_layer, 2, d_model, 0, T, seed)


def folder(path, tok, T=16, d_model=32, seed=0):
    """save_pretrained (safetensors) of a tiny GPT-2 and ``tok`` into ``path``; returns the path."""
    save_hf_expert(gpt2(tok, T, d_model, seed=seed), tok, path)
    return path
