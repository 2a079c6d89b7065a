"""Data parallel training (modgen_bench.distributed): 2 gloo processes under torchrun reproduce the
single-process trajectories at the same global batch within 1e-4, for the LM loop (weighted
mixture loss), SPD (loss, Z estimate, mu, lam, per-domain NLL: all-reduced statistics) and the
router; the helpers are no-ops without torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from modgen_bench import distributed as dist

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _torchrun(args, tmp_path, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        *args,
    ]
    return subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_two_gloo_processes_match_one_process_within_1e_4(tmp_path):
    sys.path.insert(0, str(HERE))
    from _ddp_worker import trajectories

    single = trajectories()
    out = tmp_path / "ddp.json"
    r = _torchrun([str(HERE / "_ddp_worker.py"), str(out)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = json.loads(out.read_text())
    np.testing.assert_allclose(ddp["train_lm"], single["train_lm"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ddp["router"], single["router"], atol=1e-4, rtol=0)
    for col, values in single["spd"].items():
        np.testing.assert_allclose(ddp["spd"][col], values, atol=1e-4, rtol=0, err_msg=col)
    # the runs moved: a trajectory that matched only because nothing trained would prove little
    assert np.ptp(single["train_lm"]) > 1e-2 and np.ptp(single["router"]) > 1e-2
    assert np.ptp(single["spd"]["lam_0"]) > 1e-3 and np.ptp(single["spd"]["mu"]) > 0


def test_helpers_are_single_process_no_ops():
    assert (
        not dist.is_distributed()
        and dist.rank() == 0
        and dist.world_size() == 1
        and dist.is_writer()
    )
    t = torch.tensor([1.0, 2.0], requires_grad=True)
    s = dist.all_reduce_sum(t)
    assert torch.equal(s, t.detach()) and not s.requires_grad
    assert dist.shard(8) == slice(0, 8)
    model = torch.nn.Linear(2, 2)
    assert dist.wrap_ddp(model, "cpu") is model
    assert dist.backend_for("cpu") == "gloo" and dist.backend_for("cuda") == "nccl"


def test_torchrun_command_drops_nproc():
    cmd = dist.torchrun_command(
        2, ["run", "real_world", "--nproc", "2", "--preset", "quick", "--nproc=3"]
    )
    assert cmd[-5:] == ["modgen_bench", "run", "real_world", "--preset", "quick"]
    assert "--nproc-per-node=2" in cmd


@pytest.mark.slow  # ~1 min on 2 CPU cores: two torch processes plus the tiny pipeline
def test_run_nproc_2_runs_a_suite_end_to_end(tmp_path):
    """`modgen-bench run SUITE --nproc 2` re-runs itself under torchrun: DDP in every training
    stage, rank 0 alone writes the run folder; the rows cover what one process writes."""
    import pandas as pd
    from test_launch import MICRO

    suite = tmp_path / "tiny_suite"
    suite.mkdir()
    (suite / "modular_text.py").write_text(
        (HERE.parent / "real_world" / "modular_text.py").read_text()
    )
    lines = ["[experiment]", 'module = "modular_text"', "[preset.quick]"]
    for k, v in MICRO.items():
        if isinstance(v, dict):
            lines.append(
                f"{k} = {{ " + ", ".join(f"{a} = {json.dumps(b)}" for a, b in v.items()) + " }"
            )
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    (suite / "micro.toml").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    out = {}
    for n in (1, 2):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "modgen_bench",
                "run",
                str(suite),
                "--device",
                "cpu",
                "--out",
                str(tmp_path / f"out{n}"),
                "--nproc",
                str(n),
                "--quiet",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        runs = list((tmp_path / f"out{n}").glob("*/micro-*/results.parquet"))
        assert len(runs) == 1
        out[n] = pd.read_parquet(runs[0])
    assert len(out[2]) == len(out[1])
    key = [c for c in out[1].columns if c != "value"]
    m = out[1].merge(out[2], on=key, suffixes=("_1", "_2"))
    assert len(m) == len(out[1])
    experts = m[(m["case"] == "train") & m["method"].str.startswith("expert_")]
    np.testing.assert_allclose(experts["value_2"], experts["value_1"], atol=1e-4)
