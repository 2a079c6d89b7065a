"""Summary tables from tidy rows: mean ± standard error and n over seeds (pandas groupby)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["mean_se_table", "format_mean_se"]


def mean_se_table(df: pd.DataFrame, by=("case", "method", "lam", "metric")) -> pd.DataFrame:
    """Rows grouped by ``by``: columns mean, se (std / sqrt(n), 0 when n = 1), std and n."""
    by = [c for c in by if c in df.columns]
    g = df.groupby(by, sort=True, dropna=False)["value"]  # a blank key (step) is a group too
    out = g.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["se"] = out["std"] / np.sqrt(out["n"])
    return out


def format_mean_se(mean: float, se: float, n: int, digits: int = 4) -> str:
    """'1.2345 ± 0.0012 (n=3)'; the ± part is dropped when n = 1."""
    if n <= 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f} (n={n})"
