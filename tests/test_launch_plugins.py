"""A suite is a folder: a plug-in that registers its own corpus runs under every launcher, because
a worker in a fresh process imports the plug-in before it runs the job (`launch.Job`)."""

import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from modgen_bench.launch import Job, LaunchSpec
from modgen_bench.runner import run_suite
from modgen_bench.suites import discover, load_plugin

SUITE = Path(__file__).resolve().parent / "fixtures" / "own_corpus_suite"


def _rows(out, spec) -> pd.DataFrame:
    root = run_suite(str(SUITE), "quick", "cpu", str(out), log=lambda *a, **k: None, launch=spec)
    (run_dir,) = [d for d in root.iterdir() if (d / "done").is_file()]
    return pd.read_csv(run_dir / "results.csv")


@pytest.mark.parametrize(
    "spec",
    [LaunchSpec("joblib", 2), LaunchSpec("submitit", 2)],
    ids=["joblib-2", "submitit-local-2"],
)
def test_own_corpus_suite_gives_the_serial_rows_under_every_launcher(tmp_path, spec):
    serial = _rows(tmp_path / "serial", LaunchSpec("serial"))
    other = _rows(tmp_path / spec.launcher, spec)
    assert set(serial["case"]) >= {"test", "train"} and len(serial) > 100
    pd.testing.assert_frame_equal(serial, other)


def test_a_job_of_a_plugin_function_unpickles_in_a_fresh_process(tmp_path):
    """Pickled in this process, the job's function is a reference to the plug-in's file; a new
    interpreter that never loaded the plug-in imports it (and its corpora) on unpickling."""
    (exp,) = discover(str(SUITE))
    module = exp.load()
    job = Job("x", module.run, {}, plugin=(module.__name__, module.__file__))
    blob = tmp_path / "job.pkl"
    blob.write_bytes(pickle.dumps(job))
    code = (
        "import pickle, sys; job = pickle.load(open(sys.argv[1], 'rb'));"
        "from modgen_bench.data.corpora import CORPORA;"
        "print(job.fn.__module__, 'own-letters' in CORPORA)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(blob)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [module.__name__, "True"]


def test_plugins_import_as_modules_of_their_folder_package():
    a = load_plugin(SUITE / "own.py")
    assert load_plugin(SUITE / "own.py") is a  # once per process
    assert a.__name__.startswith("modgen_suite_own_corpus_suite_")
    assert sys.modules[a.__name__.rsplit(".", 1)[0]].__path__ == [str(SUITE)]


def test_the_scaling_suites_cell_jobs_travel_to_a_fresh_process(tmp_path):
    """The scaling study's cell lives in its suite folder (real_world/scaling/cell.py), not in the
    library: its jobs still reach a worker that never imported the suite."""
    (exp,) = discover(str(SUITE.parents[2] / "real_world" / "scaling"))
    plugin = exp.load()
    (job, *_) = plugin.cell_jobs(exp.config("quick"))
    job.plugin = (plugin.__name__, plugin.__file__)
    blob = tmp_path / "job.pkl"
    blob.write_bytes(pickle.dumps(job))
    code = (
        "import pickle, sys; job = pickle.load(open(sys.argv[1], 'rb'));"
        "print(job.fn.__module__.rsplit('.', 1)[1], job.fn.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(blob)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["cell", "run_cell"]
