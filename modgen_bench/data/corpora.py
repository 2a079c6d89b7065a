"""Offline real-text corpora from Debian packages, as byte tokens with document-level splits.

PAPER.md section 5 ("Real text"): the paper trains one expert per domain on hub corpora; ours come
from OS packages so that nothing downloads at run time (DESIGN.md, data/). Registry `CORPORA`:

- ``code``: the Python standard library source of the running interpreter (every ``*.py`` outside
  ``site-packages``; it differs between Python builds, so the run records a sha256 of each slice);
- ``scripture``: the King James Bible printed by ``bible`` (package ``bible-kjv``), one document per
  chapter;
- ``reference``: GCIDE dictionary articles (package ``dict-gcide``), one document per article;
- ``fortunes-en|de|es|it|ru``: fortune cookies (packages ``fortunes``, ``fortunes-de``, ...), one
  document per record (records split on ``"\\n%\\n"``, symlinks and ``.dat``/``.u8`` files skipped).

Suites `SUITES`: ``text3`` (code, scripture, reference) and ``languages`` (the five fortune sets).

Tokens are bytes 0..255 plus ``BOS = 256`` (vocabulary 257), so NLL per token in nats over ln 2 is
bits per byte. Each document goes to train / val / test by a stable hash of its bytes and the
resample index (`split_of`): the same documents always land in the same split, identical
documents never straddle two, and ``resample = r`` draws an independent split (the paper's "data
resamples", Table 1). A missing corpus raises `CorpusMissingError` naming its Debian package.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

from ..registry import Registry

__all__ = [
    "BOS",
    "VOCAB_SIZE",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "CorpusMissingError",
    "Corpus",
    "Slice",
    "CORPORA",
    "SUITES",
    "missing_packages",
    "split_of",
    "split_documents",
    "load_slices",
    "random_windows",
    "eval_windows",
]

#: The byte tokenizer (`experts.builtin.ByteTokens`): byte ids 0..255, then BOS; every other
#: module asks the tokenizer, its experts or their family for the vocabulary.
BOS = 256
VOCAB_SIZE = BOS + 1
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
#: Documents of one slice are joined by this separator before windows are cut.
DOC_SEP = b"\n\n"


class CorpusMissingError(FileNotFoundError):
    """A corpus is not on disk; the message names the Debian package that provides it."""


# ---- readers: source (a path or a command) -> list of documents (bytes) -------------------------


def _read_python_stdlib(source: str) -> list[bytes]:
    root = Path(source)
    files = sorted(
        p
        for p in root.rglob("*.py")
        if "site-packages" not in p.relative_to(root).parts and p.is_file()
    )
    return [p.read_bytes() for p in files]


_CHAPTER = re.compile(rb"\n\n(?=(?:[1-3] )?[A-Z][A-Za-z ]* \d+\n\n)")


def _read_kjv(source: str) -> list[bytes]:
    """`bible gen1:1-rev22:21` prints each chapter under a "Book N" heading; one doc per chapter."""
    out = subprocess.run([source, "gen1:1-rev22:21"], capture_output=True, check=True, timeout=120)
    return [c.strip(b"\n") for c in _CHAPTER.split(out.stdout) if c.strip()]


_B64 = {
    c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}


def _dictd_number(text: str) -> int:
    """dictd index offsets and lengths are big-endian base-64 numbers."""
    n = 0
    for c in text:
        n = 64 * n + _B64[c]
    return n


def _read_gcide(source: str) -> list[bytes]:
    """Articles of a dictd database, located through its ``.index`` (metadata ``00-*`` skipped)."""
    path = Path(source)
    index = path.with_name(path.name.replace(".dict.dz", ".index"))
    if not index.is_file():
        raise FileNotFoundError(index)
    spans = set()
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        head, off, length = line.rsplit("\t", 2)
        if not head.startswith("00-"):
            spans.add((_dictd_number(off), _dictd_number(length)))
    with gzip.open(path, "rb") as f:
        data = f.read()
    return [data[o : o + n].strip() for o, n in sorted(spans)]


def _read_fortunes(source: str) -> list[bytes]:
    """Records of every fortune file directly in ``source`` (symlinks, .dat, .u8 skipped)."""
    files = sorted(
        p
        for p in Path(source).iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
    )
    docs = []
    for p in files:
        for rec in p.read_bytes().replace(b"\b", b"").split(b"\n%\n"):
            rec = rec.strip(b"%\n ")
            if rec:
                docs.append(rec)
    return docs


@dataclass(frozen=True)
class Corpus:
    """One domain: where it lives, which Debian package provides it, and how to read it."""

    name: str
    package: str
    source: str  # a file, a folder, or a command on PATH
    reader: Callable[[str], list[bytes]]
    description: str

    def present(self) -> bool:
        """Whether the source is on disk (a path that exists, or a command on PATH)."""
        return bool(Path(self.source).exists() if "/" in self.source else shutil.which(self.source))

    def documents(self) -> list[bytes]:
        """All documents, in a fixed order; `CorpusMissingError` names the package if absent."""
        if not self.present():
            raise CorpusMissingError(
                f"corpus '{self.name}' ({self.description}) is missing: '{self.source}' not found; "
                f"install the Debian package '{self.package}' (apt-get install {self.package})"
            )
        try:
            docs = self.reader(self.source)
        except (OSError, subprocess.SubprocessError) as exc:
            raise CorpusMissingError(
                f"corpus '{self.name}' could not be read from '{self.source}' ({exc}); "
                f"(re)install the Debian package '{self.package}'"
            ) from None
        if not docs:
            raise CorpusMissingError(
                f"corpus '{self.name}' at '{self.source}' holds no documents; "
                f"(re)install the Debian package '{self.package}'"
            )
        return docs

    def split_key(self) -> str:
        """The corpus name that `split_of` hashes (a derived corpus keeps its source's splits)."""
        return self.name


_FORTUNES = Path("/usr/share/games/fortunes")
_PY = sysconfig.get_python_version()

CORPORA = Registry("corpus")
for _c in [
    Corpus(
        "code",
        f"libpython{_PY}-stdlib",
        sysconfig.get_paths()["stdlib"],
        _read_python_stdlib,
        f"Python {_PY} standard library source",
    ),
    Corpus(
        "scripture", "bible-kjv", "bible", _read_kjv, "King James Bible, one chapter per document"
    ),
    Corpus(
        "reference",
        "dict-gcide",
        "/usr/share/dictd/gcide.dict.dz",
        _read_gcide,
        "GCIDE dictionary articles",
    ),
    Corpus("fortunes-en", "fortunes", str(_FORTUNES), _read_fortunes, "English fortunes"),
    *[
        Corpus(
            f"fortunes-{lang}",
            f"fortunes-{lang}",
            str(_FORTUNES / lang),
            _read_fortunes,
            f"{name} fortunes",
        )
        for lang, name in [
            ("de", "German"),
            ("es", "Spanish"),
            ("it", "Italian"),
            ("ru", "Russian"),
        ]
    ],
]:
    CORPORA[_c.name] = _c

SUITES = {
    "text3": ("code", "scripture", "reference"),
    "languages": ("fortunes-en", "fortunes-de", "fortunes-es", "fortunes-it", "fortunes-ru"),
}


def missing_packages(names) -> list[str]:
    """The Debian packages of the corpora among ``names`` that are not on disk, sorted."""
    return sorted({CORPORA[n].package for n in names if not CORPORA[n].present()})


def split_of(doc: bytes, corpus: str, resample: int = 0) -> str:
    """The split of one document: u = sha256(corpus, resample, doc) read as a number in [0, 1),
    train if u < 0.8, val if u < 0.9, else test (`SPLIT_FRACTIONS`)."""
    h = hashlib.sha256(f"{corpus}/{int(resample)}/".encode() + doc).digest()
    u = int.from_bytes(h[:8], "big") / 2.0**64
    edge = 0.0
    for split, frac in zip(SPLITS, SPLIT_FRACTIONS, strict=True):
        edge += frac
        if u < edge:
            return split
    return SPLITS[-1]


@dataclass(frozen=True, eq=False)
class Slice:
    """The documents of one split of one corpus, joined by `DOC_SEP`, as a uint8 tensor."""

    corpus: str
    split: str
    resample: int
    n_docs: int
    tokens: torch.Tensor  # (n_bytes,) uint8
    sha256: str  # of the joined bytes: provenance of every number

    def info(self) -> dict:
        return {"sha256": self.sha256, "n_docs": self.n_docs, "n_bytes": int(self.tokens.numel())}


@lru_cache(maxsize=16)
def _documents(corpus: Corpus) -> tuple[bytes, ...]:
    return tuple(corpus.documents())


def split_documents(
    name: str, resample: int = 0, corpus: Corpus | None = None
) -> dict[str, list[bytes]]:
    """{split: documents} of corpus ``name`` for ``resample`` (``corpus`` overrides the registry
    entry, e.g. in tests). Identical documents are kept once, so no text is both trained and
    tested on; a split left empty is an error naming the corpus."""
    corpus = corpus or CORPORA[name]
    parts = {s: [] for s in SPLITS}
    seen = set()
    for doc in _documents(corpus):
        if doc not in seen:
            seen.add(doc)
            parts[split_of(doc, corpus.split_key(), resample)].append(doc)
    for split, docs in parts.items():
        if not docs:
            raise ValueError(
                f"corpus '{corpus.name}' has no {split} documents (it holds {len(seen)})"
            )
    return parts


def load_slices(name: str, resample: int = 0, corpus: Corpus | None = None) -> dict[str, Slice]:
    """{split: Slice} of byte tokens for corpus ``name`` (`split_documents`)."""
    corpus = corpus or CORPORA[name]
    out = {}
    for split, docs in split_documents(name, resample, corpus).items():
        data = DOC_SEP.join(docs)
        out[split] = Slice(
            corpus.name,
            split,
            int(resample),
            len(docs),
            torch.frombuffer(bytearray(data), dtype=torch.uint8),
            hashlib.sha256(data).hexdigest(),
        )
    return out


def _with_bos(rows: torch.Tensor, bos: int = BOS) -> torch.Tensor:
    """(n, T-1) tokens -> (n, T) int64 tokens with ``bos`` in column 0."""
    first = torch.full((rows.shape[0], 1), bos, dtype=torch.long)
    return torch.cat([first, rows.long()], dim=1)


def random_windows(
    tokens: torch.Tensor, T: int, n: int, generator: torch.Generator, bos: int = BOS
) -> torch.Tensor:
    """``n`` windows of ``T - 1`` consecutive tokens at uniform offsets, ``bos`` first: (n, T)."""
    span = T - 1
    if tokens.numel() < span:
        raise ValueError(f"a slice of {tokens.numel()} bytes is shorter than one window ({span})")
    start = torch.randint(0, tokens.numel() - span + 1, (n,), generator=generator)
    rows = tokens[start[:, None] + torch.arange(span)[None, :]]  # (n, T-1)
    return _with_bos(rows, bos)


def eval_windows(tokens: torch.Tensor, T: int, n: int, bos: int = BOS) -> torch.Tensor:
    """``n`` non-overlapping windows spread evenly over the slice, ``bos`` prepended: (n, T).

    Deterministic (no generator): the evaluation set is a function of the slice alone.
    """
    span = T - 1
    avail = tokens.numel() // span
    if n > avail:
        raise ValueError(
            f"asked for {n} evaluation windows of {span} bytes but the slice holds "
            f"only {avail}; lower n_eval or block_size"
        )
    pick = torch.linspace(0, avail - 1, n).long()
    rows = tokens[: avail * span].view(avail, span)[pick]  # (n, T-1)
    return _with_bos(rows, bos)
