"""Corpora from the user's files (`modgen_bench.data.files`): every source kind reads the same
documents, splits are deterministic by content, run.json's provenance holds each file's sha256,
and every bad input is one `UserError` naming the file."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modgen_bench.data.corpora import CORPORA, load_slices, split_documents
from modgen_bench.data.files import register
from modgen_bench.errors import UserError
from modgen_bench.pipeline.data import load_splits

DOCS = [f"document number {i}: " + "lorem ipsum dolor " * (3 + i % 5) for i in range(40)]


@pytest.fixture(autouse=True)
def forget_file_corpora():
    before = dict(CORPORA)
    yield
    CORPORA.clear()
    CORPORA.update(before)


def _sources(tmp_path) -> dict:
    """The same 40 documents in every kind of source."""
    (tmp_path / "g").mkdir()
    for i, d in enumerate(DOCS):
        (tmp_path / "g" / f"{i:02d}.txt").write_text(d)
    (tmp_path / "one.txt").write_text("\n%\n".join(DOCS))
    (tmp_path / "c.jsonl").write_text(
        "\n".join(json.dumps({"text": d, "id": i}) for i, d in enumerate(DOCS))
    )
    table = pa.table({"text": DOCS, "id": list(range(len(DOCS)))})
    pq.write_table(table, tmp_path / "c.parquet")
    ds = tmp_path / "saved"
    ds.mkdir()
    with (
        pa.OSFile(str(ds / "data-00000-of-00001.arrow"), "wb") as f,
        pa.ipc.new_stream(f, table.schema) as w,
    ):
        w.write_table(table)
    (ds / "state.json").write_text(
        json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]})
    )
    return {
        "glob": {"glob": str(tmp_path / "g" / "*.txt")},
        "file": {"file": str(tmp_path / "one.txt"), "separator": "\n%\n"},
        "jsonl": {"jsonl": str(tmp_path / "c.jsonl"), "column": "text"},
        "parquet": {"parquet": str(tmp_path / "c.parquet"), "column": "text"},
        "datasets": {"datasets": str(ds), "column": "text"},
    }


def test_every_source_kind_reads_the_same_documents_and_splits(tmp_path):
    splits = {}
    for kind, spec in _sources(tmp_path).items():
        # one name for every kind: the split hashes the corpus name with each document
        assert register({"name": "mine", **spec}) == "mine"
        assert sorted(CORPORA["mine"].documents()) == sorted(d.strip().encode() for d in DOCS)
        splits[kind] = {s: sorted(v) for s, v in split_documents("mine").items()}
    first = next(iter(splits.values()))
    assert all(s == first for s in splits.values())
    assert sum(len(v) for v in first.values()) == len(DOCS)
    assert all(len(v) > 0 for v in first.values())


def test_provenance_records_the_sha256_of_every_source_file(tmp_path):
    spec = _sources(tmp_path)["glob"]
    register({"name": "mine", **spec})
    splits = load_splits(["mine"], 9, 4, 2, 0)
    files = splits.provenance["mine"]["files"]
    assert len(files) == len(DOCS)
    some = tmp_path / "g" / "07.txt"
    assert files[str(some)] == hashlib.sha256(some.read_bytes()).hexdigest()
    key = splits.key
    some.write_text(some.read_text() + " changed")  # a changed file changes the data's key
    from modgen_bench.data.corpora import _documents

    _documents.cache_clear()
    assert load_splits(["mine"], 9, 4, 2, 0).key != key
    assert load_slices("mine")["train"].n_docs > 0


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"glob": "{tmp}/nothing/*.txt"}, "no file matches"),
        ({"jsonl": "{tmp}/absent.jsonl", "column": "text"}, "absent.jsonl does not exist"),
        (
            {"jsonl": "{tmp}/c.jsonl", "column": "body"},
            r"c.jsonl:1: no column 'body' \(the record has text, id\)",
        ),
        (
            {"parquet": "{tmp}/c.parquet", "column": "body"},
            r"c.parquet: no column 'body' \(it has text, id\)",
        ),
        ({"datasets": "{tmp}/g", "column": "text"}, "no state.json"),
        ({"jsonl": "{tmp}/c.jsonl"}, "needs column"),
        ({"file": "{tmp}/one.txt"}, "needs separator"),
        ({"glob": "{tmp}/g/*.txt", "jsonl": "{tmp}/c.jsonl"}, "exactly one of"),
        ({"glob": "{tmp}/g/*.txt", "colour": "red"}, "unknown keys colour"),
    ],
)
def test_bad_sources_are_one_user_error_naming_the_file(tmp_path, spec, message):
    _sources(tmp_path)
    spec = {k: v.format(tmp=tmp_path) for k, v in spec.items()}
    with pytest.raises(UserError, match=message):
        register({"name": "bad", **spec})
        CORPORA["bad"].documents()


def test_empty_corpus_bad_json_and_undecodable_text_name_the_file(tmp_path):
    (tmp_path / "blank.txt").write_text("  \n")
    register({"name": "blank", "glob": str(tmp_path / "blank.txt")})
    with pytest.raises(UserError, match="corpus 'blank' .* holds no documents"):
        CORPORA["blank"].documents()
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    register({"name": "latin", "glob": str(tmp_path / "latin1.txt")})
    with pytest.raises(UserError, match=r"latin1.txt: not UTF-8 text"):
        CORPORA["latin"].documents()
    (tmp_path / "broken.jsonl").write_text('{"text": "fine"}\n{"text": \n')
    register({"name": "broken", "jsonl": str(tmp_path / "broken.jsonl"), "column": "text"})
    with pytest.raises(UserError, match=r"broken.jsonl:2: not a JSON object"):
        CORPORA["broken"].documents()
    (tmp_path / "num.jsonl").write_text('{"text": 3}\n')
    register({"name": "num", "jsonl": str(tmp_path / "num.jsonl"), "column": "text"})
    with pytest.raises(UserError, match=r"num.jsonl:1: column 'text' holds int, not text"):
        CORPORA["num"].documents()
    with pytest.raises(UserError, match="is a registered corpus"):
        register({"name": "code", "glob": str(tmp_path / "blank.txt")})
