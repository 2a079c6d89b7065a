"""`bench train`: the project's training loops next to a plain reference loop of the same model."""

import subprocess
import sys

import pytest
import torch

from modgen_bench.bench.train import bench_train, flops_per_token, load_preset, preset_models
from modgen_bench.models import GateConfig, LMConfig, TransformerLM, count_params

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_preset_models_are_the_pipelines_expert_monolith_and_gate():
    cfgs = preset_models(load_preset("real_world/text3.toml", "quick"), "text3/quick")
    assert [c["model"] for c in cfgs] == ["expert", "monolith", "gate"]
    expert, mono, gate = cfgs
    assert expert["lm"].d_model == 32 and expert["batch"] == 16 and expert["lm"].block_size == 33
    assert mono["batch"] == 16 * 3 and mono["lm"].n_layer == 2
    # the monolith's width is the pipeline's matched one: experts + gate parameters within 10%
    with torch.device("meta"):
        n = [count_params(TransformerLM(c["lm"])) for c in (expert, mono)]
    from modgen_bench.models import SequenceGate

    with torch.device("meta"):
        n_gate = count_params(SequenceGate(gate["gate"]))
    assert abs(n[1] - (3 * n[0] + n_gate)) / (3 * n[0] + n_gate) < 0.1
    assert gate["batch"] == 32 * 3


def test_flops_per_token_is_6n_plus_attention():
    assert flops_per_token(1000, 2, 10, 8) == 6 * 1000 + 6 * 2 * 10 * 8


def test_bench_rows_and_ratio():
    cfgs = [
        {"preset": "tiny", "model": "expert", "lm": LMConfig(257, 9, 1, 2, 8, 16), "batch": 4},
        {"preset": "tiny", "model": "gate", "gate": GateConfig(257, 9, 2, 1, 2, 4, 8), "batch": 4},
    ]
    df = bench_train(cfgs, steps=2, repeats=2)
    assert list(df["loop"]) == ["project", "reference"] * 2
    assert (df["tokens_per_s"] > 0).all() and df["mfu"].isna().all()  # no known CPU peak
    for _, g in df.groupby("model"):
        ratio = g.set_index("loop")["tokens_per_s"]
        assert g["project_over_reference"].iloc[0] == pytest.approx(
            ratio["project"] / ratio["reference"]
        )
    with pytest.raises(ValueError, match="steps and repeats"):
        bench_train(cfgs, steps=0)


def test_cli_prints_the_ratio_per_model():
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "modgen_bench",
            "bench",
            "train",
            "--device",
            "cpu",
            "--steps-per-run",
            "1",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "project / reference tokens per second" in r.stdout
    for model in ("expert", "monolith", "gate"):
        assert model in r.stdout
    assert "text3/quick" in r.stdout and "languages/quick" in r.stdout


def test_projection_counts_each_stages_tokens():
    import pandas as pd

    from modgen_bench.bench.smoke import projected_seconds, training_tokens
    from modgen_bench.pipeline import PipelineConfig

    cfg = PipelineConfig.from_dict(load_preset("real_world/text3.toml", "full"))
    tok = training_tokens(cfg)
    R, T = 5, 257  # seeds 0,1,2 + resamples 1,2
    assert tok["expert"] == R * 3 * 6000 * 64 * (T - 1)
    assert tok["monolith"] == R * (2 + 3) * 6000 * 64 * 3 * (T - 1)  # uniform, lam*, 3 oracles
    assert tok["gate"] == R * 2 * 3000 * 64 * 3 * T
    bench = pd.DataFrame(
        {
            "loop": ["project"] * 3,
            "model": ["expert", "monolith", "gate"],
            "tokens_per_s": [1e6, 2e6, 4e6],
        }
    )
    proj = projected_seconds(cfg, bench).set_index("model")["seconds"]
    assert proj["expert"] == tok["expert"] / 1e6 and proj["router"] == tok["router"] / 4e6


@pytest.mark.slow  # ~1 min on 2 CPU cores
def test_gpu_smoke_script_on_cpu(tmp_path):
    r = subprocess.run(
        [
            "bash",
            "scripts/gpu_smoke.sh",
            "--device",
            "cpu",
            "--preset",
            "quick",
            "--steps",
            "1",
            "--slice-steps",
            "2",
            "--slice-draws",
            "16",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "projected training total of text3 quick" in r.stdout and "slice: exit 0" in r.stdout
