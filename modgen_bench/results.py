"""Tidy results: one long row per measurement, written with run.json beside it (DESIGN.md, Data
flow).

Columns: ``suite, case, method, seed, lam, metric, value`` plus any extra keys a plug-in adds
(they become further columns). ``lam`` is a string label of the test mixture ("" when none).

On disk a run folder holds ``results.parquet`` (the typed store: numbers stay numbers, a partly
blank ``step`` column is float with NaN, never text), ``results.csv`` (an export for spreadsheets),
``run.json`` and finally ``done``. Every file is written atomically (`modgen_bench.atomic`), so a
folder without ``done`` is incomplete. `read_runs` reads the Parquet file and falls back to the
CSV through the same explicit schema (`typed`), so both give the same dtypes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import read_bytes_nofollow, write_frame, write_json
from .errors import UserError

__all__ = [
    "COLUMNS",
    "SCHEMA",
    "ResultsError",
    "RunContext",
    "Run",
    "lam_label",
    "typed",
    "write_results",
    "read_run",
    "read_runs",
    "read_results",
    "is_done",
]

COLUMNS = ["suite", "case", "method", "seed", "lam", "metric", "value"]

#: dtypes of the core columns; extra columns are numeric when every non-blank cell is a number,
#: else text (blank -> "").
SCHEMA = {
    "experiment": "string",
    "suite": "string",
    "case": "string",
    "method": "string",
    "seed": "Int64",
    "lam": "string",
    "metric": "string",
    "value": "float64",
}


def lam_label(lam) -> str:
    """A stable text label for a mixture: '0.25,0.75' (empty for None)."""
    if lam is None:
        return ""
    return ",".join(f"{float(v):.4g}" for v in np.atleast_1d(lam))


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | s.astype("string").str.strip().fillna("").eq("")


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the explicit dtypes: `SCHEMA` for the core columns; an extra column becomes
    numeric (blank -> NaN) when every non-blank cell parses as a number, else text (blank -> "")."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if col in SCHEMA:
            kind = SCHEMA[col]
            if kind == "string":
                out[col] = s.astype("string").fillna("").astype(object)
            elif kind == "Int64":
                out[col] = pd.to_numeric(s.where(~_blank(s)), errors="raise").astype("Int64")
            else:
                out[col] = pd.to_numeric(s.where(~_blank(s)), errors="raise").astype("float64")
            continue
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            continue
        blank = _blank(s)
        num = pd.to_numeric(s.where(~blank), errors="coerce")
        if num[~blank].notna().all() and (~blank).any():
            out[col] = num
        else:
            out[col] = s.where(~blank, "").astype(str).astype(object)
    return out


@dataclass
class RunContext:
    """What a suite plug-in gets: its config, an output folder, a device, and a row sink."""

    suite: str
    config: dict
    out_dir: Path
    device: str = "cpu"
    seed: int = 0
    rows: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def add(self, case: str, method: str, metric: str, value, seed=None, lam=None, **extra):
        """Record one measurement (one tidy row)."""
        self.rows.append(
            {
                "suite": self.suite,
                "case": case,
                "method": method,
                "seed": self.seed if seed is None else int(seed),
                "lam": lam if isinstance(lam, str) else lam_label(lam),
                "metric": metric,
                "value": float(value),
                **extra,
            }
        )

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows)
        return df if len(df) else pd.DataFrame(columns=COLUMNS)


@dataclass
class Run:
    """One finished run folder: its path relative to the root searched, run.json and typed rows."""

    path: str
    info: dict
    rows: pd.DataFrame

    @property
    def experiment(self) -> str:
        return str(self.info.get("experiment") or self.path)

    @property
    def key(self) -> str:
        """The run's identity: the hash its folder is keyed by (config + code version + device)."""
        return str(self.info.get("run_key") or Path(self.path).name)


def write_results(out_dir, rows: pd.DataFrame, run_info: dict) -> None:
    """Write results.parquet, results.csv, run.json and finally ``done`` (the row count and the
    sha256 of results.parquet) into ``out_dir``."""
    out_dir = Path(out_dir)
    rows = typed(rows)
    write_frame(out_dir / "results.parquet", rows)
    write_frame(out_dir / "results.csv", rows)
    write_json(out_dir / "run.json", run_info)
    digest = hashlib.sha256(read_bytes_nofollow(out_dir / "results.parquet")).hexdigest()
    write_json(
        out_dir / "done",
        {
            "rows": len(rows),
            "results_sha256": digest,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


def is_done(out_dir) -> bool:
    """True when ``out_dir`` holds ``done`` and the results it records: the sha256 of
    results.parquet (an older ``done``, a timestamp, needs a results file to be there)."""
    d = Path(out_dir)
    try:
        mark = read_bytes_nofollow(d / "done")
    except OSError:
        return False
    try:
        record = json.loads(mark)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return (d / "results.parquet").is_file() or (d / "results.csv").is_file()
    try:
        data = read_bytes_nofollow(d / "results.parquet")
    except OSError:
        return False
    return hashlib.sha256(data).hexdigest() == record.get("results_sha256")


class ResultsError(UserError):
    """A damaged results file: the message names the file and, where known, the line."""


def _read_csv(path: Path) -> pd.DataFrame:
    """results.csv as text cells; a cut last line, a damaged header or a short row is an error."""
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        line = raw.count(b"\n") + 1
        raise ResultsError(f"{path}: line {line} is cut short (the file is truncated)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: {exc}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ResultsError(f"{path}: line 1 (the header) lacks the column(s) {', '.join(missing)}")
    reader = csv.reader(io.StringIO(raw.decode("utf-8", errors="replace")))
    width = len(next(reader, []))
    for record in reader:
        if record and len(record) != width:
            raise ResultsError(
                f"{path}: line {reader.line_num} has {len(record)} fields; the header has {width}"
            )
    return df


def _typed_or_named(df: pd.DataFrame, path: Path, line0: int) -> pd.DataFrame:
    """`typed`, with a failure naming the file and the first row that broke it."""
    try:
        return typed(df)
    except (ValueError, TypeError) as exc:
        where = ""
        for col, kind in SCHEMA.items():
            if col in df.columns and kind != "string":
                cells = df[col].astype("string").str.strip().fillna("")
                bad = (
                    (pd.to_numeric(cells.where(cells != ""), errors="coerce").isna() & cells.ne(""))
                    .to_numpy()
                    .nonzero()[0]
                )
                if len(bad):
                    where = f" line {bad[0] + line0}, column '{col}':"
                    break
        raise ResultsError(f"{path}:{where} {exc}") from None


def read_run(run_dir, root=None) -> Run:
    """The typed rows and run.json of one finished run folder (Parquet, else the CSV export).

    A damaged file raises `ResultsError` naming the file (and the line, for the CSV)."""
    d = Path(run_dir)
    for name in ("done", "results.parquet", "results.csv", "run.json"):
        if (d / name).is_symlink():
            raise ResultsError(
                f"{d / name}: is a symbolic link; results are read only from "
                "regular files inside the folder"
            )
    if (d / "results.parquet").is_file():
        try:
            frame = pd.read_parquet(d / "results.parquet")
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ResultsError(
                f"{d / 'results.parquet'}: not a readable Parquet file ({exc})"
            ) from None
        rows = _typed_or_named(frame, d / "results.parquet", 0)
    else:  # a folder written before Parquet, or the CSV alone: same schema
        rows = _typed_or_named(_read_csv(d / "results.csv"), d / "results.csv", 2)
    try:
        info = json.loads((d / "run.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ResultsError(f"{d / 'run.json'}: not valid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise ResultsError(f"{d / 'run.json'}: expected a JSON object")
    info["path"] = str(d.relative_to(root)) if root is not None else str(d)
    return Run(path=info["path"], info=info, rows=rows)


def read_runs(root) -> list[Run]:
    """Every finished run under ``root`` (folders holding ``done``), in path order."""
    root = Path(root)
    runs = [
        read_run(done.parent, root)
        for done in sorted(root.rglob("done"))
        if (done.parent / "run.json").is_file()
    ]
    if not runs:
        raise FileNotFoundError(
            f"no finished runs (folders with results.csv, run.json, done) under '{root}'"
        )
    return runs


def read_results(root) -> tuple[pd.DataFrame, list[dict]]:
    """Every finished run under ``root``: concatenated rows (a ``run`` column names each row's
    folder, so runs of one experiment never pool) and their run.json records."""
    runs = read_runs(root)
    df = pd.concat([r.rows.assign(run=r.path) for r in runs], ignore_index=True)
    return typed(df), [r.info for r in runs]
