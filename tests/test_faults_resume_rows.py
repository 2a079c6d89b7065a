"""Resume completes or says why: a launcher job's rows are checked against what its ``done``
records (count and sha256) and against the count its plan expects; an empty, short or altered
rows.json is recomputed, never accepted as done. A run folder's ``done`` records its results'
sha256 the same way, so ``--resume`` reruns a run whose results were emptied."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from modgen_bench.launch import Job, launch
from modgen_bench.results import is_done, write_results

CALLS: list = []


def _job(out_dir, k: int, n: int = 3):
    CALLS.append(k)
    return [
        {"case": f"c{k}", "method": "m", "metric": "x", "value": float(k * 10 + i)}
        for i in range(n)
    ], {"k": k}


def _jobs(expected=None):
    return [Job(f"job{k}", _job, {"k": k}, expected_rows=expected) for k in range(2)]


@pytest.mark.parametrize("damage", ["empty", "short", "altered", "not a list", "legacy done"])
def test_damaged_rows_are_recomputed_not_accepted(tmp_path, damage, caplog):
    CALLS.clear()
    whole = launch(_jobs(), tmp_path, log=lambda *a: None)
    assert CALLS == [0, 1] and sum(len(r) for r, _ in whole) == 6
    rows = tmp_path / "job1" / "rows.json"
    good = json.loads(rows.read_text())
    if damage == "empty":
        rows.write_text("[]")
    elif damage == "short":
        rows.write_text(json.dumps(good[:1]))
    elif damage == "altered":
        good[0]["value"] = 99.0
        rows.write_text(json.dumps(good))
    elif damage == "not a list":
        rows.write_text('{"rows": 3}')
    else:
        rows.write_text("[]")
        (tmp_path / "job1" / "done").write_text("2026-01-01T00:00:00\n")
    CALLS.clear()
    with caplog.at_level(logging.WARNING, logger="modgen_bench.launch"):
        again = launch(_jobs(), tmp_path, log=lambda *a: None)
    assert CALLS == [1] and again == whole  # job1 only, the same rows
    assert any("job1" in r.getMessage() and "runs again" in r.getMessage() for r in caplog.records)


def test_a_job_short_of_its_plan_never_writes_done(tmp_path):
    CALLS.clear()
    with pytest.raises(RuntimeError, match="job job0 made 3 rows; its plan makes 4"):
        launch(_jobs(expected=4), tmp_path, log=lambda *a: None)
    assert not (tmp_path / "job0" / "done").exists()
    launch(_jobs(expected=3), tmp_path, log=lambda *a: None)
    CALLS.clear()  # a plan that now wants more
    with pytest.raises(RuntimeError, match="plan makes 5"):
        launch(_jobs(expected=5), tmp_path, log=lambda *a: None)
    assert CALLS == [0]  # rerun, not loaded as done


def test_run_done_records_its_results(tmp_path):
    rows = pd.DataFrame(
        [
            {
                "suite": "s",
                "case": "c",
                "method": "m",
                "seed": 0,
                "lam": "",
                "metric": "x",
                "value": 1.0,
            }
        ]
    )
    write_results(tmp_path, rows, {"experiment": "e"})
    assert is_done(tmp_path)
    write_results(tmp_path / "other", rows.iloc[:0], {"experiment": "e"})
    (tmp_path / "results.parquet").write_bytes(
        (tmp_path / "other" / "results.parquet").read_bytes()
    )
    assert not is_done(tmp_path)  # emptied after done: not done
    (tmp_path / "done").write_text("2026-01-01T00:00:00\n")  # an older done: results present
    assert is_done(tmp_path)
    assert not is_done(Path(tmp_path / "missing"))
