"""Stage 1, data and splits: document-level splits of each corpus and the fixed windows every later
stage reads (PAPER.md section 5, "Real text"; `modgen_bench.data.corpora`).

Inputs: corpus names, block size T, window counts, the data resample r, the study's tokenizer
(bytes by default; a Hugging Face tokenizer, `experts.hf.HFTokens`, for its experts).
Outputs: `Splits` (training token streams, SPD's window pool, test and validation windows, and
the sha256 provenance of every slice). Documents are split by a hash of their bytes whatever the
tokenizer, so every tokenizer sees the same documents in the same split. Cache key:
`splits_key`; nothing is stored (loading is deterministic and fast), the key names the data for
the stages downstream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.corpora import BOS, CORPORA, eval_windows, load_slices, random_windows, split_documents
from ..data.files import FileCorpus
from ..experts.builtin import BYTES_HASH
from ..provenance import stable_seed
from .store import stage_key

__all__ = ["Splits", "load_splits", "splits_key", "domain_batches", "job_info"]


@dataclass
class Splits:
    """train[k]: domain k's training tokens (1-D); pool (p, n_gate_train, T): SPD's training
    windows; test, val (p * n_eval, T) laid out domain by domain; provenance {corpus: {split:
    info}}."""

    corpora: list
    train: list
    pool: torch.Tensor
    test: torch.Tensor
    val: torch.Tensor
    provenance: dict
    key: str
    bos: int = BOS
    tokenizer_hash: str = BYTES_HASH

    @property
    def p(self) -> int:
        return len(self.corpora)

    @property
    def T(self) -> int:
        return self.pool.shape[-1]


def splits_key(
    corpora,
    block_size: int,
    n_gate_train: int,
    n_eval: int,
    resample: int,
    tokenizer_hash: str = BYTES_HASH,
    files: dict | None = None,
) -> str:
    """The data's key; a non-byte tokenizer and the source files' hashes (``files``: corpus ->
    {path: sha256}, for corpora read from files) enter it, so changed files get new stages."""
    extra = ([] if tokenizer_hash == BYTES_HASH else [tokenizer_hash]) + ([files] if files else [])
    return stage_key("splits", list(corpora), block_size, n_gate_train, n_eval, resample, *extra)


def _tokenized(corpora, resample: int, tokens):
    """{corpus: {split: token tensor}} and provenance, in ``tokens``' ids (bytes: the slices);
    a corpus from files also records the sha256 of each source file."""
    slices = [load_slices(name, resample) for name in corpora]
    prov = {
        name: {s: v.info() for s, v in sl.items()} for name, sl in zip(corpora, slices, strict=True)
    }
    for name in corpora:
        if isinstance(CORPORA[name], FileCorpus):
            prov[name]["files"] = CORPORA[name].info()
    if tokens is None or tokens.hash == BYTES_HASH:
        return [{s: v.tokens for s, v in sl.items()} for sl in slices], prov
    out = []
    for name in corpora:
        parts = {s: tokens.encode(docs) for s, docs in split_documents(name, resample).items()}
        for s, t in parts.items():
            prov[name][s]["n_tokens"] = int(t.numel())
        out.append(parts)
    return out, prov


def load_splits(
    corpora, block_size: int, n_gate_train: int, n_eval: int, resample: int, tokens=None
) -> Splits:
    """Load each corpus's train/val/test slices for ``resample``, tokenize them with ``tokens``
    (None: bytes) and cut the windows.

    The pool's windows come from data-only seeds (corpus name, resample), so every training seed
    of a replicate sees the same SPD data.
    """
    T = block_size
    bos = BOS if tokens is None else tokens.bos
    parts, prov = _tokenized(corpora, resample, tokens)
    train = [s["train"] for s in parts]
    pool = torch.stack(
        [
            random_windows(
                t,
                T,
                n_gate_train,
                torch.Generator().manual_seed(stable_seed("pool", name, resample)),
                bos,
            )
            for t, name in zip(train, corpora, strict=True)
        ]
    )  # (p, n, T)
    test = torch.cat([eval_windows(s["test"], T, n_eval, bos) for s in parts])  # (p*n_eval, T)
    val = torch.cat([eval_windows(s["val"], T, n_eval, bos) for s in parts])
    thash = BYTES_HASH if tokens is None else tokens.hash
    files = {n: prov[n]["files"] for n in corpora if "files" in prov[n]}
    key = splits_key(corpora, block_size, n_gate_train, n_eval, resample, thash, files)
    return Splits(list(corpora), train, pool, test, val, prov, key, bos, thash)


def job_info(splits: Splits, resample: int) -> dict:
    """A launcher job's info: ``{"corpora": {corpus: {"resample<r>": {split: info}}}}``, the form
    `launch.launch_into` merges over jobs into run.json."""
    return {
        "corpora": {name: {f"resample{resample}": info} for name, info in splits.provenance.items()}
    }


def domain_batches(train, T: int, per_domain: int, bos: int = BOS):
    """batches(generator) -> (p * per_domain, T): equal blocks from each domain, in domain order."""
    return lambda g: torch.cat([random_windows(t, T, per_domain, g, bos) for t in train])
