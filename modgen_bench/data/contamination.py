"""A real pair of domains with controlled contamination: documents of a donor domain B mixed into
a base domain A at rate alpha (where the gate can matter; PAPER.md section 5, "Real text").

Two derived corpora, registered like file corpora (`files.register`) from a TOML table:

    { name = "scripture+reference@0.3", contaminate = "scripture", donor = "reference",
      alpha = 0.3, seed = 0 }                               # A with a share alpha of B's text
    { name = "reference-rest", rest_of = "reference" }      # B without its donor pool

Donor pool. B's distinct documents d with u(d) < `DONOR_SHARE`, u(d) = sha256("donor/B/" + d)
read as a number in [0, 1): a function of the bytes alone, not of alpha or the seed. The pool and
B's rest are disjoint, so no document belongs to both domains (none is trained on in one domain
and tested on in the other), and B's rest, hence B's expert, is the same at every alpha.

Contamination. A seeded permutation of A's n_A distinct documents; the first k = round(alpha n_A)
are replaced, each by pool documents taken in a seeded order (none used twice), joined by
`DOC_SEP` and cut to the replaced document's byte length. The document rate is exactly k / n_A
and every document keeps its byte length, so the share of A's bytes (and of its windows) that is
B's text is the replaced documents' byte share (`Composition.byte_share`), close to alpha.

Splits. Both keep their source's splits (`Corpus.split_key`): a document of A that is not replaced
lands in the same split at every alpha, and B's rest in the same split as in B.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import UserError
from .corpora import CORPORA, DOC_SEP, Corpus, _documents

__all__ = [
    "DONOR_SHARE",
    "DERIVED_KEYS",
    "Composition",
    "DerivedCorpus",
    "donor_split",
    "contaminate",
    "derived_corpus",
]

#: the share of the donor's distinct documents set aside (by hash) for contamination
DONOR_SHARE = 0.2
#: the keys that make a corpus table a derived corpus (`files.register`)
DERIVED_KEYS = frozenset({"contaminate", "rest_of"})


@dataclass(frozen=True)
class Composition:
    """What a contaminated corpus holds: n_docs documents, n_replaced of them B's text
    (rate = n_replaced / n_docs exactly), byte_share of the bytes, and the sha256 of every
    document joined by `DOC_SEP` in order."""

    n_docs: int
    n_replaced: int
    rate: float
    byte_share: float
    sha256: str


@lru_cache(maxsize=4)
def _distinct(name: str) -> tuple[bytes, ...]:
    """Corpus ``name``'s distinct documents in their order (the splits keep each once too)."""
    return tuple(dict.fromkeys(_documents(CORPORA[name])))


def _unit(tag: str, doc: bytes) -> float:
    return int.from_bytes(hashlib.sha256(tag.encode() + doc).digest()[:8], "big") / 2.0**64


def donor_split(donor: str) -> tuple[list[bytes], list[bytes]]:
    """(pool, rest) of ``donor``'s distinct documents: u(d) < `DONOR_SHARE` goes to the pool."""
    pool, rest = [], []
    for doc in _distinct(donor):
        (pool if _unit(f"donor/{donor}/", doc) < DONOR_SHARE else rest).append(doc)
    return pool, rest


def _rng(base: str, donor: str, seed: int) -> np.random.Generator:
    h = hashlib.sha256(f"contaminate/{base}/{donor}/{int(seed)}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "big"))


@lru_cache(maxsize=8)
def contaminate(
    base: str, donor: str, alpha: float, seed: int = 0
) -> tuple[tuple[bytes, ...], Composition]:
    """(documents, composition) of ``base`` with k = round(alpha n_A) documents replaced by
    ``donor``'s pool text of the same byte length (module docstring); seeded by ``seed``."""
    docs = list(_distinct(base))
    pool, _ = donor_split(donor)
    rng = _rng(base, donor, seed)
    k = int(round(alpha * len(docs)))
    replaced = np.sort(rng.permutation(len(docs))[:k])
    order = rng.permutation(len(pool))
    need = sum(len(docs[i]) for i in replaced)
    have = sum(len(d) for d in pool)
    j = 0
    for i in replaced:
        parts, size = [], 0
        while size < len(docs[i]):
            if j == len(order):
                raise UserError(
                    f"contaminating '{base}' at alpha = {alpha} needs {need} bytes of "
                    f"'{donor}' but its donor pool holds {have}; lower alpha or pick "
                    f"a larger donor"
                )
            size += len(pool[order[j]]) + (len(DOC_SEP) if parts else 0)  # the joined length
            parts.append(pool[order[j]])
            j += 1
        docs[i] = DOC_SEP.join(parts)[: len(docs[i])]
    total = sum(len(d) for d in docs)
    comp = Composition(
        len(docs),
        k,
        k / len(docs),
        need / total if total else 0.0,
        hashlib.sha256(DOC_SEP.join(docs)).hexdigest(),
    )
    return tuple(docs), comp


@dataclass(frozen=True)
class DerivedCorpus(Corpus):
    """``base`` contaminated by ``donor`` at ``alpha`` (``donor`` set), or ``base``'s rest after
    its donor pool (``donor`` empty); reads the registered source corpora."""

    base: str = ""
    donor: str = ""
    alpha: float = 0.0
    seed: int = 0

    def present(self) -> bool:
        return all(CORPORA[n].present() for n in (self.base, self.donor) if n)

    def split_key(self) -> str:
        return self.base

    def documents(self) -> list[bytes]:
        if not self.donor:
            return donor_split(self.base)[1]
        return list(contaminate(self.base, self.donor, self.alpha, self.seed)[0])

    def composition(self) -> Composition | None:
        """The contaminated corpus's `Composition` (None for a donor's rest)."""
        if not self.donor:
            return None
        return contaminate(self.base, self.donor, self.alpha, self.seed)[1]


def _source(name, where: str) -> str:
    if not isinstance(name, str) or name not in CORPORA or isinstance(CORPORA[name], DerivedCorpus):
        raise UserError(
            f"{where}: {name!r} is not a registered corpus (choose from "
            f"{', '.join(n for n, c in CORPORA.items() if type(c) is Corpus)})"
        )
    return name


def derived_corpus(spec: dict) -> DerivedCorpus:
    """A `DerivedCorpus` from its TOML table (module docstring); bad keys are `UserError`s."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if not isinstance(name, str) or not name:
        raise UserError(f"a derived corpus needs a name (got {spec})")
    where = f"corpus '{name}'"
    if len(DERIVED_KEYS & set(spec)) != 1:
        raise UserError(f"{where}: give exactly one of {', '.join(sorted(DERIVED_KEYS))}")
    if "rest_of" in spec:
        base, donor, alpha, seed = _source(spec.pop("rest_of"), where), "", 0.0, 0
    else:
        base = _source(spec.pop("contaminate"), where)
        donor = _source(spec.pop("donor", None), f"{where}, donor")
        alpha, seed = spec.pop("alpha", None), spec.pop("seed", 0)
        if base == donor:
            raise UserError(f"{where}: the donor must differ from '{base}'")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise UserError(f"{where}: alpha must be a number in [0, 1] (got {alpha!r})")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(f"{where}: seed must be an integer (got {seed!r})")
    if spec:
        raise UserError(f"{where}: unknown keys {', '.join(sorted(spec))}")
    srcs = [n for n in (base, donor) if n]
    package = " ".join(sorted({CORPORA[n].package for n in srcs}))
    what = f"{base} with {alpha:g} of {donor}'s documents" if donor else f"{base} without donors"
    return DerivedCorpus(
        name, package, "+".join(srcs), None, what, base, donor, float(alpha), int(seed)
    )
