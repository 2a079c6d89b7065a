"""Stage 1, data and splits: document-level splits of each corpus and the fixed windows every later
stage reads (PAPER.md section 5, "Real text"; `modgen_bench.data.corpora`).

Inputs: corpus names, block size T, window counts, the data resample r.
Outputs: `Splits` (training token streams, SPD's window pool, test and validation windows, and
the sha256 provenance of every slice). Cache key: `splits_key`; nothing is stored (loading is
deterministic and fast), the key names the data for the stages downstream.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.corpora import eval_windows, load_slices, random_windows
from ..provenance import stable_seed
from .store import stage_key

__all__ = ["Splits", "load_splits", "splits_key", "domain_batches", "job_info"]


@dataclass
class Splits:
    """train[k]: domain k's training tokens (1-D); pool (p, n_gate_train, T): SPD's training
    windows; test, val (p * n_eval, T) laid out domain by domain; provenance {corpus: {split: info}}."""

    corpora: list
    train: list
    pool: torch.Tensor
    test: torch.Tensor
    val: torch.Tensor
    provenance: dict
    key: str

    @property
    def p(self) -> int:
        return len(self.corpora)

    @property
    def T(self) -> int:
        return self.pool.shape[-1]


def splits_key(corpora, block_size: int, n_gate_train: int, n_eval: int, resample: int) -> str:
    return stage_key("splits", list(corpora), block_size, n_gate_train, n_eval, resample)


def load_splits(corpora, block_size: int, n_gate_train: int, n_eval: int, resample: int) -> Splits:
    """Load each corpus's train/val/test slices for ``resample`` and cut the windows.

    The pool's windows come from data-only seeds (corpus name, resample), so every training seed
    of a replicate sees the same SPD data.
    """
    T = block_size
    slices = [load_slices(name, resample) for name in corpora]
    prov = {name: {s: v.info() for s, v in sl.items()} for name, sl in zip(corpora, slices)}
    train = [s["train"].tokens for s in slices]
    pool = torch.stack([random_windows(t, T, n_gate_train, torch.Generator().manual_seed(
        stable_seed("pool", name, resample))) for t, name in zip(train, corpora)])   # (p, n, T)
    test = torch.cat([eval_windows(s["test"].tokens, T, n_eval) for s in slices])     # (p*n_eval, T)
    val = torch.cat([eval_windows(s["val"].tokens, T, n_eval) for s in slices])
    return Splits(list(corpora), train, pool, test, val, prov,
                  splits_key(corpora, block_size, n_gate_train, n_eval, resample))


def job_info(splits: Splits, resample: int) -> dict:
    """A launcher job's info: ``{"corpora": {corpus: {"resample<r>": {split: info}}}}``, the form
    `launch.launch_into` merges over jobs into run.json."""
    return {"corpora": {name: {f"resample{resample}": info} for name, info in splits.provenance.items()}}


def domain_batches(train, T: int, per_domain: int):
    """batches(generator) -> (p * per_domain, T): equal blocks from each domain, in domain order."""
    return lambda g: torch.cat([random_windows(t, T, per_domain, g) for t in train])
