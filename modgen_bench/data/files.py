"""Corpora from the user's own files (DESIGN.md, "Corpora"): a suite TOML names a corpus either by
its registered name (`corpora.CORPORA`) or by a table describing its files:

    { name = "legal", glob = "data/legal/**/*.txt" }           # one document per file
    { name = "notes", file = "notes.txt", separator = "\\n%\\n" } # records of one file
    { name = "chat", jsonl = "chat.jsonl", column = "text" }    # one JSON object per line
    { name = "wiki", parquet = "wiki.parquet", column = "text" }
    { name = "web", datasets = "web_saved/", column = "text" }  # a save_to_disk folder

Relative paths are read from the current directory. `register` puts the corpus in the registry
under its name, so every stage (and every launcher worker, which re-reads the config) loads it
like a registered one: documents are split by a hash of their bytes (`corpora.split_of`) and
run.json records the sha256 of every source file (`FileCorpus.files`). A missing file, an empty
corpus, a missing column, a line that is not JSON or text that is not UTF-8 is one `UserError`
naming the file.
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .contamination import DERIVED_KEYS, DerivedCorpus, derived_corpus
from .corpora import CORPORA, Corpus

__all__ = ["KINDS", "FileCorpus", "file_corpus", "register", "sha256_file"]

#: a file source's kind -> whether it needs a text column
KINDS = {"glob": False, "file": False, "jsonl": True, "parquet": True, "datasets": True}


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _utf8(data: bytes, where: str) -> bytes:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return data


def _text(value, where: str, column: str) -> bytes:
    if not isinstance(value, str):
        raise UserError(f"{where}: column '{column}' holds {type(value).__name__}, not text")
    return value.encode("utf-8")


def _read_jsonl(path: Path, column: str) -> list[bytes]:
    docs = []
    raw = path.read_bytes()
    for i, line in enumerate(_utf8(raw, str(path)).decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{i}: not a JSON object ({exc.msg})") from None
        if not isinstance(obj, dict) or column not in obj:
            raise UserError(
                f"{path}:{i}: no column '{column}' (the record has "
                f"{', '.join(obj) if isinstance(obj, dict) else type(obj).__name__})"
            )
        docs.append(_text(obj[column], f"{path}:{i}", column))
    return docs


def _column(table, path: Path, column: str) -> list[bytes]:
    if column not in table.column_names:
        raise UserError(f"{path}: no column '{column}' (it has {', '.join(table.column_names)})")
    return [
        _text(v, f"{path} row {i}", column)
        for i, v in enumerate(table.column(column).to_pylist())
        if v is not None
    ]


def _read_parquet(path: Path, column: str) -> list[bytes]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... on a damaged file
        raise UserError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    return _column(table, path, column)


def _datasets_files(folder: Path) -> list[Path]:
    """The Arrow files of a ``save_to_disk`` folder, in the order its state.json lists them."""
    state = folder / "state.json"
    if not state.is_file():
        raise UserError(
            f"{folder}: no state.json (a folder written by datasets' save_to_disk is expected)"
        )
    try:
        names = [f["filename"] for f in json.loads(state.read_text())["_data_files"]]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{state}: not a datasets state file (no _data_files list)") from None
    return [folder / n for n in names]


def _read_arrow(path: Path, column: str) -> list[bytes]:
    import pyarrow as pa

    if not path.is_file():
        raise UserError(f"{path}: listed in state.json but missing")
    try:
        with pa.memory_map(str(path)) as src:
            table = pa.ipc.open_stream(src).read_all()
    except Exception as exc:  # ArrowInvalid on a damaged or foreign file
        raise UserError(f"{path}: not a readable Arrow stream ({type(exc).__name__})") from None
    return _column(table, path, column)


@dataclass(frozen=True)
class FileCorpus(Corpus):
    """A corpus read from the user's files; ``kind`` in `KINDS`, ``source`` the path or glob."""

    kind: str = "glob"
    column: str = ""
    separator: str = ""

    def files(self) -> list[Path]:
        """The source files, sorted (a glob with no match, or a missing path, is a `UserError`)."""
        if self.kind == "glob":
            found = sorted(
                Path(p)
                for p in globlib.glob(str(Path(self.source).expanduser()), recursive=True)
                if Path(p).is_file()
            )
            if not found:
                raise UserError(f"corpus '{self.name}': no file matches {self.source}")
            return found
        path = Path(self.source).expanduser()
        if not path.exists():
            raise UserError(f"corpus '{self.name}': {path} does not exist")
        if self.kind == "datasets":
            return _datasets_files(path)
        if not path.is_file():
            raise UserError(f"corpus '{self.name}': {path} is not a file")
        return [path]

    def documents(self) -> list[bytes]:
        docs = []
        for path in self.files():
            if self.kind == "glob":
                docs.append(_utf8(path.read_bytes(), str(path)).strip())
            elif self.kind == "file":
                sep = self.separator.encode("utf-8")
                docs += [r.strip() for r in _utf8(path.read_bytes(), str(path)).split(sep)]
            elif self.kind == "jsonl":
                docs += _read_jsonl(path, self.column)
            elif self.kind == "parquet":
                docs += _read_parquet(path, self.column)
            else:
                docs += _read_arrow(path, self.column)
        docs = [
            d.strip() for d in docs if d.strip()
        ]  # every kind alike: the split hashes these bytes
        if not docs:
            raise UserError(f"corpus '{self.name}' ({self.source}) holds no documents")
        return docs

    def info(self) -> dict:
        """{path: sha256} of every source file (run.json provenance)."""
        return {str(p): sha256_file(p) for p in self.files()}


def file_corpus(spec: dict) -> FileCorpus:
    """A `FileCorpus` from its TOML table (see the module docstring); bad keys are `UserError`s."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if not isinstance(name, str) or not name:
        raise UserError(f"a file corpus needs a name (got {spec})")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise UserError(
            f"corpus '{name}': give exactly one of {', '.join(KINDS)} "
            f"(got {', '.join(kinds) or 'none'})"
        )
    kind = kinds[0]
    source = str(spec.pop(kind))
    column, separator = str(spec.pop("column", "")), str(spec.pop("separator", ""))
    if spec:
        raise UserError(f"corpus '{name}': unknown keys {', '.join(sorted(spec))}")
    if KINDS[kind] and not column:
        raise UserError(f"corpus '{name}': a {kind} source needs column = '<text column>'")
    if kind == "file" and not separator:
        raise UserError(f"corpus '{name}': a file source needs separator = '<record separator>'")
    return FileCorpus(
        name, "(your files)", source, None, f"{kind} {source}", kind, column, separator
    )


def register(entry) -> str:
    """The corpus name of one ``corpora`` entry: a registered name as is, a file table (or a
    derived corpus's table, `contamination`) registered (again: a changed table replaces the
    entry of the same name) and its name returned."""
    if isinstance(entry, str):
        return entry
    if not isinstance(entry, dict):
        raise UserError(f"a corpus is a registered name or a table of files (got {entry!r})")
    derived = DERIVED_KEYS & set(entry)
    corpus = derived_corpus(entry) if derived else file_corpus(entry)
    if corpus.name in CORPORA and not isinstance(CORPORA[corpus.name], (FileCorpus, DerivedCorpus)):
        raise UserError(
            f"corpus '{corpus.name}' is a registered corpus: give your files another name"
        )
    CORPORA[corpus.name] = corpus
    return corpus.name
