"""Your own experts and data, end to end: a JSONL corpus per domain and folders of tiny Hugging
Face experts written with save_pretrained, a user's TOML pointing at them, the study run through
the runner (real_world/own_experts plug-in) and its report; bad folders exit 2 in one line.

Also: SPD and the Z restoration on Hugging Face experts end with Z inside its 95% interval of 1.
"""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import _hf
import numpy as np
import pandas as pd
import pytest

from modgen_bench.runner import run_suite

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "real_world" / "own_experts" / "own_experts.py"
WORDS = {
    "pets": "cat dog mat sat hat the on".split(),
    "python": "def return self import class ( ):".split(),
    "psalm": "lord god earth heaven said unto thee".split(),
}
T = 9

TINY = """
block_size = {T}
seeds = [0]
resamples = []
n_gate_train = 32
n_eval = 8
n_proposal = 16
n_draws = 64
n_restore = 256
mixtures = [[1, 0, 0], [0, 1, 0], [0, 0, 1],
            [0.3333333333333333, 0.3333333333333333, 0.3333333333333334],
            [0.6, 0.2, 0.2], [0.8, 0.1, 0.1], [0, 0.5, 0.5]]
conflict_every = 2
conflict_batch = 4
score_batch = 16
expert = {{ n_layer = 1, n_head = 2, d_model = 32, d_ff = 0, steps = 1, batch_size = 8, lr = 3e-3 }}
mono = {{ n_layer = 1, n_head = 2, d_model = 0, d_ff = 0, steps = 6, batch_size = 4, lr = 3e-3 }}
gate = {{ n_layer = 1, n_head = 2, d_model = 4, d_ff = 8 }}
spd = {{ steps = 4, per_domain = 4, lr = 3e-3, log_every = 2 }}
router = {{ steps = 4, batch_size = 4, lr = 3e-3 }}
"""


def _user_files(tmp_path, tok=None):
    """A JSONL corpus per domain and one save_pretrained folder per domain (one tokenizer)."""
    rng = random.Random(0)
    tok = tok or _hf.tokenizer([" ".join(w) * 3 for w in WORDS.values()], vocab_size=280)
    corpora, dirs = [], []
    for i, (dom, ws) in enumerate(WORDS.items()):
        path = tmp_path / "data" / f"{dom}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            "\n".join(
                json.dumps({"text": " ".join(rng.choice(ws) for _ in range(30))}) for _ in range(60)
            )
        )
        corpora.append(f'{{ name = "{dom}", jsonl = "{path}", column = "text" }}')
        dirs.append(str(_hf.folder(tmp_path / "experts" / dom, tok, T=16, seed=i)))
    return corpora, dirs


def _suite(tmp_path, corpora, dirs) -> Path:
    suite = tmp_path / "my_study"
    suite.mkdir(exist_ok=True)
    shutil.copy(PLUGIN, suite / PLUGIN.name)
    (suite / "mine.toml").write_text(
        '[experiment]\nmodule = "own_experts"\n[preset.quick]\n'
        f'corpora = [{", ".join(corpora)}]\nexperts_from = "load"\n'
        f"expert_dirs = {json.dumps(dirs)}\n" + TINY.format(T=T)
    )
    return suite


def test_a_users_jsonl_corpus_and_hf_folders_run_end_to_end(tmp_path):
    suite = _suite(tmp_path, *_user_files(tmp_path))
    root = run_suite(
        str(suite), preset="quick", device="cpu", out=str(tmp_path / "out"), log=lambda *_: None
    )
    run_dir = next(root.glob("mine-*"))
    df = pd.read_csv(run_dir / "results.csv", keep_default_na=False, dtype={"lam": str})
    info = json.loads((run_dir / "run.json").read_text())
    for dom in WORDS:  # sha256 of each source file and of each expert folder's files
        files = info["corpora"][dom]["resample0"]["files"]
        assert list(files) == [str(tmp_path / "data" / f"{dom}.jsonl")]
        assert len(files[str(tmp_path / "data" / f"{dom}.jsonl")]) == 64
        assert "model.safetensors" in info["experts"][dom]["files"]
    ex = df[df["case"] == "experts"]
    assert set(ex[ex["metric"] == "source_load"]["method"]) == {f"expert_{d}" for d in WORDS}
    assert (ex[ex["metric"] == "saved_safetensors"]["value"].astype(float) == 1).sum() == 3
    test = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    for m in ["gate_excess_logZ", "mono_uniform", "router", "const_gate", "bayes_router"]:
        v = test[test["method"] == m]["value"].astype(float)
        assert len(v) == 7 and np.all(np.isfinite(v)) and np.all(v > 0), m
    assert not (df["metric"] == "bits_per_byte").any()  # BPE tokens are not bytes
    from modgen_bench.reporting import build_report

    build_report(root, trusted_dirs=[suite])
    report = (root / "report.md").read_text()
    assert (
        'loaded through `experts_from = "load"` from a `save_pretrained` folder (safetensors'
        in report
    )
    assert "Table 1" in report
    assert "Matching convention: **params**" in report and "monolith matched by params" in report
    assert "Per-domain bits per token" in report
    assert "nats per token of the experts' tokenizer" in report


def test_spd_and_the_z_restoration_on_hf_experts_end_with_z_covering_1(tmp_path):
    from modgen_bench.replicate import run_replicate

    corpora, dirs = _user_files(tmp_path)
    import tomllib

    cfg = tomllib.loads(f"corpora = [{', '.join(corpora)}]\n" + TINY.format(T=T))
    cfg.update(experts_from="load", expert_dirs=dirs)
    rows, _ = run_replicate(cfg, 0, 0, tmp_path / "store")
    z = pd.DataFrame([r for r in rows if r["case"] == "Z"]).pivot_table(
        index="method", columns="metric", values="value"
    )
    assert set(z.index) == {"gate_excess", "gate_nll"}
    assert ((z["Z_lo"] <= 1) & (z["Z_hi"] >= 1)).all(), z
    assert ((z["Z_hi"] - z["Z_lo"]) < 0.1).all(), z  # an interval that could miss 1
    restored = [r for r in rows if r["metric"].startswith("Z_restore_")]
    assert restored


def _cli(args, cwd):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "modgen_bench", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _break(tmp_path, fault, dirs):
    if fault == "tokenizer":
        other = _hf.tokenizer(["zzz yyy xxx " * 9, "qqq www"], vocab_size=270)
        dirs[2] = str(_hf.folder(tmp_path / "other", other, T=16))
    elif fault == "missing":
        dirs[1] = str(tmp_path / "gone")
    elif fault == "hub_id":
        dirs[1] = "openai-community/gpt2"
    else:
        weights = Path(dirs[0]) / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:64])
    return dirs


FAULTS = {
    "tokenizer": "'pets' and 'psalm' use different tokenizers",
    "missing": "does not exist",
    "hub_id": "looks like a hub id",
    "damaged": "cannot load the model in",
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_bad_expert_folders_are_one_user_error(tmp_path, fault):
    from modgen_bench.errors import UserError

    corpora, dirs = _user_files(tmp_path)
    suite = _suite(tmp_path, corpora, _break(tmp_path, fault, dirs))
    with pytest.raises(UserError, match=FAULTS[fault]):
        run_suite(
            str(suite), preset="quick", device="cpu", out=str(tmp_path / "out"), log=lambda *_: None
        )


def test_the_cli_exits_2_with_one_line_on_a_bad_folder(tmp_path):
    corpora, dirs = _user_files(tmp_path)
    suite = _suite(tmp_path, corpora, _break(tmp_path, "damaged", dirs))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "modgen_bench",
            "run",
            str(suite),
            "--preset",
            "quick",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and lines[0].startswith("modgen-bench: error: ")
        and ("expert 'pets': cannot load" in lines[0])
    ), r.stderr


def test_every_combiner_on_hf_experts_branched_from_a_saved_base(tmp_path):
    """Experts fine-tuned from one saved base (`base_dir`): every combiner of the leaderboard
    runs on them, the merges start from that base (none is skipped), and the monoliths are built
    in the experts' family over their tokenizer (their parameter counts are the family's)."""
    import copy
    import tomllib

    import torch

    from modgen_bench.combiners import COMBINERS
    from modgen_bench.experts.hf import save_hf_expert
    from modgen_bench.replicate import run_replicate

    corpora, _ = _user_files(tmp_path)
    tok = _hf.tokenizer([" ".join(w) * 3 for w in WORDS.values()], vocab_size=280)
    base = _hf.gpt2(tok, T=16, seed=0)
    save_hf_expert(base, tok, tmp_path / "base")
    dirs = []
    for i, dom in enumerate(WORDS):
        e = copy.deepcopy(base)
        with torch.no_grad():
            for prm in e.parameters():
                prm.add_(0.02 * (i + 1) * torch.randn_like(prm))
        save_hf_expert(e, tok, tmp_path / "branched" / dom)
        dirs.append(str(tmp_path / "branched" / dom))
    cfg = tomllib.loads(f"corpora = [{', '.join(corpora)}]\n" + TINY.format(T=T))
    cfg.update(
        experts_from="load",
        expert_dirs=dirs,
        base_dir=str(tmp_path / "base"),
        combiners={name: {"m": 3} if name == "router_prefix_top1" else {} for name in COMBINERS},
    )
    rows, _ = run_replicate(cfg, 0, 0, tmp_path / "store")
    df = pd.DataFrame(rows)
    assert not (df["case"] == "skip").any(), df[df["case"] == "skip"]
    test = df[(df["case"] == "test") & (df["metric"] == "nll_per_token")]
    for m in COMBINERS:
        v = test[test["method"] == m]["value"].astype(float)
        assert len(v) == 7 and np.all(np.isfinite(v)) and np.all(v > 0), m
    # the monolith is a GPT-2 over the experts' tokenizer, matched in that family's own counts
    params = df[df["case"] == "params"].set_index(["method", "metric"])["value"]
    true = params[("mono", "n_params")] / params[("experts_plus_gate", "n_params")]
    assert params[("mono", "params_ratio")] == pytest.approx(true) and abs(true - 1) < 0.1
