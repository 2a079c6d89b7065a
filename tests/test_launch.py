"""The sweep launcher (modgen_bench.launch): serial, joblib with 2 workers and submitit's local
executor give identical rows for the real-world plug-in's replicates; each job writes its own rows
and a `done` marker, and a sweep resumes job by job."""

import copy
import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from modgen_bench.launch import Job, LaunchSpec, SlurmSpec, launch, run_job
from modgen_bench.results import RunContext

ROOT = Path(__file__).resolve().parent.parent

MICRO = {
    "corpora": ["scripture", "fortunes-es"],
    "block_size": 9,
    "seeds": [0, 1],
    "resamples": [],
    "n_gate_train": 16,
    "n_eval": 4,
    "n_proposal": 4,
    "n_draws": 16,
    "n_restore": 16,
    "mixtures": [[1, 0], [0, 1], [0.5, 0.5], [0.6, 0.4], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7]],
    "conflict_every": 2,
    "conflict_batch": 2,
    "checkpoint_every": 2,
    "expert": {
        "n_layer": 1,
        "n_head": 2,
        "d_model": 4,
        "d_ff": 8,
        "steps": 4,
        "batch_size": 4,
        "lr": 3e-3,
    },
    "mono": {
        "n_layer": 1,
        "n_head": 2,
        "d_model": 0,
        "d_ff": 0,
        "steps": 4,
        "batch_size": 2,
        "lr": 3e-3,
    },
    "gate": {"n_layer": 1, "n_head": 2, "d_model": 4, "d_ff": 8},
    "spd": {"steps": 2, "per_domain": 2, "lr": 3e-3, "log_every": 1},
    "router": {"steps": 2, "batch_size": 2, "lr": 3e-3},
}

NEEDS_CORPORA = pytest.mark.corpora(*MICRO["corpora"])


def _plugin():
    spec = importlib.util.spec_from_file_location(
        "modular_text_launch_test", ROOT / "real_world" / "modular_text.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(out, spec):
    ctx = RunContext("real_world", copy.deepcopy(MICRO), Path(out), "cpu", 0)
    ctx.launch = spec
    _plugin().run(ctx)
    return ctx.frame()


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, _run(out, LaunchSpec("serial"))


@NEEDS_CORPORA
def test_each_job_writes_rows_and_done(serial):
    out, df = serial
    for name in ("seed0-resample0", "seed1-resample0"):
        job = out / "ckpt" / name
        assert (job / "done").is_file()
        rows = json.loads((job / "rows.json").read_text())
        assert rows and {r["seed"] for r in rows} == {int(name[4])}
    assert set(df["seed"]) == {0, 1} and len(df) > 100


@NEEDS_CORPORA
def test_joblib_two_workers_gives_the_serial_rows(serial, tmp_path):
    df = _run(tmp_path, LaunchSpec("joblib", 2))
    pd.testing.assert_frame_equal(df, serial[1], check_exact=True)  # every row, every bit
    assert df["metric"].str.startswith("Z_restore_se").any()


@pytest.mark.slow  # ~20 s: submitit polls its job files once a second; opt in with -m slow
@NEEDS_CORPORA
def test_submitit_local_executor_gives_the_serial_rows(serial, tmp_path):
    df = _run(tmp_path, LaunchSpec("submitit", 2, SlurmSpec(cluster="local", time_min=10)))
    pd.testing.assert_frame_equal(df, serial[1], check_exact=True)
    assert any((tmp_path / "ckpt" / "submitit").iterdir())  # submitit's own logs


@NEEDS_CORPORA
def test_submitit_debug_executor_gives_the_serial_rows(serial, tmp_path):
    """submitit's in-process executor: the same submit/result path as SLURM, no job processes."""
    df = _run(tmp_path, LaunchSpec("submitit", 2, SlurmSpec(cluster="debug", time_min=10)))
    pd.testing.assert_frame_equal(df, serial[1], check_exact=True)


@NEEDS_CORPORA
def test_a_killed_sweep_resumes_job_by_job(serial, tmp_path):
    """A job without `done` reruns (from its stage files); a finished one is only read back."""
    import shutil

    shutil.copytree(serial[0] / "ckpt", tmp_path / "ckpt")
    (tmp_path / "ckpt" / "seed1-resample0" / "done").unlink()
    (tmp_path / "ckpt" / "seed1-resample0" / "rows.json").unlink()
    done0 = (tmp_path / "ckpt" / "seed0-resample0" / "done").stat().st_mtime_ns
    df = _run(tmp_path, LaunchSpec("joblib", 2))
    pd.testing.assert_frame_equal(df, serial[1], check_exact=True)  # every row, every bit
    assert df["metric"].str.startswith("Z_restore_se").any()
    assert (tmp_path / "ckpt" / "seed0-resample0" / "done").stat().st_mtime_ns == done0
    assert (tmp_path / "ckpt" / "seed1-resample0" / "done").is_file()


def test_bad_launcher_settings_are_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown launcher 'dask'"):
        LaunchSpec("dask")
    with pytest.raises(ValueError, match="-j must be >= 1"):
        LaunchSpec("joblib", 0)
    with pytest.raises(ValueError, match="job names must be unique"):
        launch([Job("a", run_job), Job("a", run_job)], tmp_path)
