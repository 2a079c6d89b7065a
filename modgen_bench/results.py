"""Tidy results: one long row per measurement, written with run.json beside it (DESIGN.md, Data flow).

Columns: ``suite, case, method, seed, lam, metric, value`` plus any extra keys a plug-in adds
(they become further columns). ``lam`` is a string label of the test mixture ("" when none).
Files are written atomically; ``done`` is written last, so a folder without it is incomplete.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .problem import atomic_write

__all__ = ["COLUMNS", "RunContext", "lam_label", "write_results", "read_results", "is_done"]

COLUMNS = ["suite", "case", "method", "seed", "lam", "metric", "value"]


def lam_label(lam) -> str:
    """A stable text label for a mixture: '0.25,0.75' (empty for None)."""
    if lam is None:
        return ""
    return ",".join(f"{float(v):.4g}" for v in np.atleast_1d(lam))


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
        self.rows.append({"suite": self.suite, "case": case, "method": method,
                          "seed": self.seed if seed is None else int(seed),
                          "lam": lam if isinstance(lam, str) else lam_label(lam),
                          "metric": metric, "value": float(value), **extra})

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows)
        return df if len(df) else pd.DataFrame(columns=COLUMNS)


def write_results(out_dir, rows: pd.DataFrame, run_info: dict) -> None:
    """Write results.csv, run.json and finally ``done`` into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "results.csv", lambda f: rows.to_csv(f, index=False))
    atomic_write(out_dir / "run.json", lambda f: json.dump(run_info, f, indent=2, default=str))
    atomic_write(out_dir / "done", lambda f: f.write(time.strftime("%Y-%m-%dT%H:%M:%S\n")))


def is_done(out_dir) -> bool:
    return (Path(out_dir) / "done").is_file()


def read_results(root) -> tuple[pd.DataFrame, list[dict]]:
    """Every finished run under ``root``: concatenated rows and their run.json records."""
    root = Path(root)
    frames, infos = [], []
    for done in sorted(root.rglob("done")):
        d = done.parent
        frames.append(pd.read_csv(d / "results.csv", keep_default_na=False,
                                  dtype={"lam": str, "case": str, "method": str}))
        info = json.loads((d / "run.json").read_text())
        info["path"] = str(d.relative_to(root))
        infos.append(info)
    if not frames:
        raise FileNotFoundError(f"no finished runs (folders with results.csv, run.json, done) under '{root}'")
    return pd.concat(frames, ignore_index=True), infos
