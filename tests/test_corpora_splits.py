"""Offline corpora (modgen_bench/data/corpora.py): real text from Debian packages, split by
document."""

import dataclasses

import pytest
import torch

from modgen_bench.data.corpora import (
    BOS,
    CORPORA,
    DOC_SEP,
    SPLITS,
    SUITES,
    CorpusMissingError,
    eval_windows,
    load_slices,
    random_windows,
    split_of,
)

# Small real corpora keep these tests fast; the large ones (code, reference) are read once below.
FAST = ["scripture", "fortunes-es"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.corpora(n)) for n in FAST])
def test_splits_are_deterministic_disjoint_and_cover_every_document(name):
    docs = set(CORPORA[name].documents())
    slices = load_slices(name)
    again = load_slices(name)
    assert [slices[s].sha256 for s in SPLITS] == [again[s].sha256 for s in SPLITS]
    by_split = {s: {d for d in docs if split_of(d, name) == s} for s in SPLITS}
    assert sum(len(v) for v in by_split.values()) == len(docs)
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not by_split[a] & by_split[b]
    for s in SPLITS:
        assert slices[s].n_docs == len(by_split[s])
        # the slice holds exactly its own documents
        text = bytes(slices[s].tokens.numpy())
        assert len(text) == sum(map(len, by_split[s])) + len(DOC_SEP) * (len(by_split[s]) - 1)
    frac = slices["train"].n_docs / len(docs)
    assert 0.7 < frac < 0.9


@pytest.mark.corpora("scripture")
def test_resample_draws_a_different_split_and_is_itself_deterministic():
    a, b, b2 = load_slices("scripture", 0), load_slices("scripture", 1), load_slices("scripture", 1)
    assert a["test"].sha256 != b["test"].sha256
    assert b["test"].sha256 == b2["test"].sha256


@pytest.mark.corpora("scripture")
def test_kjv_is_read_one_chapter_per_document():
    docs = CORPORA["scripture"].documents()
    assert len(docs) == 1189  # chapters of the KJV
    assert docs[0].startswith(b"Genesis 1\n") and docs[-1].startswith(b"Revelation 22\n")


@pytest.mark.corpora("fortunes-de")
def test_fortune_records_are_clean():
    docs = CORPORA["fortunes-de"].documents()
    assert len(docs) > 1000
    assert not any(b"\n%\n" in d or b"\b" in d for d in docs)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.corpora(n)) for n in ["code", "reference"]]
)
def test_large_corpora_load_with_three_nonempty_slices(name):
    slices = load_slices(name)
    assert all(slices[s].n_docs > 10 and len(slices[s].sha256) == 64 for s in SPLITS)


@pytest.mark.parametrize(
    "name,package",
    [("scripture", "bible-kjv"), ("reference", "dict-gcide"), ("fortunes-ru", "fortunes-ru")],
)
def test_missing_corpus_error_names_the_debian_package(name, package, tmp_path):
    missing = dataclasses.replace(CORPORA[name], source=str(tmp_path / "absent"))
    with pytest.raises(CorpusMissingError, match=f"apt-get install {package}"):
        load_slices(name, corpus=missing)


def test_every_suite_names_registered_corpora():
    for names in SUITES.values():
        assert all(n in CORPORA for n in names)
    with pytest.raises(KeyError, match="scripture"):
        CORPORA["wikipedia"]


@pytest.mark.corpora("fortunes-es")
def test_windows_carry_bos_and_the_slice_bytes():
    tokens = load_slices("fortunes-es")["val"].tokens
    g = torch.Generator().manual_seed(0)
    w = random_windows(tokens, T=17, n=5, generator=g)
    assert w.shape == (5, 17) and w.dtype == torch.long and bool((w[:, 0] == BOS).all())
    assert int(w[:, 1:].max()) < 256
    text = bytes(tokens.numpy())
    assert all(bytes(row[1:].tolist()) in text for row in w)
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(w, random_windows(tokens, T=17, n=5, generator=g2))
    e = eval_windows(tokens, T=17, n=50)
    assert torch.equal(e, eval_windows(tokens, T=17, n=50))
    assert len({bytes(r[1:].tolist()) for r in e}) == 50
    with pytest.raises(ValueError, match="n_eval"):
        eval_windows(tokens, T=17, n=10**9)
