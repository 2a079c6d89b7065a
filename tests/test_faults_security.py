"""A results folder from someone else is data, never code (the security section of the probe).

Pickles: a payload that would create a marker file is planted at every stage path of a run
folder (a torch zip file and a bare pickle) and in an earlier sibling run of the same config;
``run`` with and without ``--resume`` never executes it. Links, beacons and symlinks: see the
sections below. Each case asserts the exit code, one named line, nothing written outside the
output folder and nothing executed.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from modgen_bench.cli import main
from modgen_bench.pipeline.store import Store, stage_key

# ------------------------------------------------------------------------------ pickles

STAGES = ("loglik", "gate-excess", "router", "q-draws")

PLUGIN = '''
from modgen_bench.pipeline.store import Store, stage_key
import numpy as np
import torch

STAGES = {stages!r}


def run(ctx):
    store = Store(ctx.out_dir)
    for i, stage in enumerate(STAGES):
        out = store.get(stage, stage_key(stage, ctx.config["offset"]),
                        lambda: {{"state": {{"w": torch.full((2, 3), float(i))}},
                                 "lam": np.array([0.25, 0.75]), "mu": np.float64(0.5 + i),
                                 "history": {{"loss": [np.float64(1.5), 2.5]}}}})
        ctx.add("c", stage, "w", float(out["state"]["w"].sum()) + ctx.config["offset"])
        ctx.add("c", stage, "lam0", float(np.asarray(out["lam"])[0]))
        ctx.add("c", stage, "mu", float(out["mu"]))
'''


class _Payload:
    """Unpickling this creates ``marker`` (as `open(marker, 'w')` would): code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path, kind: str) -> None:
    if kind == "torch":
        torch.save({"state": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Payload(marker)))


@pytest.fixture
def stage_suite(tmp_path):
    d = tmp_path / "stagesuite"
    d.mkdir()
    (d / "stagey.py").write_text(PLUGIN.format(stages=STAGES))
    (d / "stagey.toml").write_text(textwrap.dedent('''
        [experiment]
        module = "stagey"
        [preset.quick]
        offset = 0.0
        '''))
    return d


def _rows(root: Path) -> dict:
    return {d.name.split("-")[0]: (d / "results.csv").read_text()
            for d in sorted(root.glob("stagey-*")) if (d / "done").is_file()}


def _snapshot(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_store_never_runs_a_planted_stage_file(tmp_path, kind, caplog):
    marker = tmp_path / "PWNED"
    store, key = Store(tmp_path / "run"), stage_key("gate", 1)
    (tmp_path / "run").mkdir()
    _plant(store.path("gate-excess", key), marker, kind)
    calls = []
    out = store.get("gate-excess", key, lambda: calls.append(1) or {"w": torch.ones(2)})
    assert not marker.exists() and calls == [1] and torch.equal(out["w"], torch.ones(2))
    assert any("not plain data" in r.getMessage() for r in caplog.records)
    assert torch.equal(store.get("gate-excess", key, lambda: 1 / 0)["w"], torch.ones(2))


def test_store_reads_numpy_values_back_as_plain_data(tmp_path):
    import numpy as np
    store, key = Store(tmp_path), stage_key("x")
    fresh = store.get("gate-kl", key, lambda: {"lam": np.array([0.2, 0.8]), "mu": np.float64(0.1),
                                               "ok": np.bool_(True), "n": np.int64(3)})
    again = store.get("gate-kl", key, lambda: 1 / 0)
    for got in (fresh, again):
        assert torch.equal(got["lam"], torch.tensor([0.2, 0.8], dtype=torch.float64))
        assert got["mu"] == 0.1 and type(got["mu"]) is float and got["ok"] is True and got["n"] == 3


def test_store_does_not_follow_a_symlinked_stage_file(tmp_path):
    outside = tmp_path / "outside.pt"
    torch.save({"w": torch.zeros(1)}, outside)
    store, key = Store(tmp_path / "run"), stage_key("s")
    (tmp_path / "run").mkdir()
    store.path("router", key).symlink_to(outside)
    out = store.get("router", key, lambda: {"w": torch.ones(1)})
    assert torch.equal(out["w"], torch.ones(1))
    assert not store.path("router", key).is_symlink()            # replaced by a real file
    assert torch.equal(torch.load(outside, weights_only=True)["w"], torch.zeros(1))   # untouched


def test_training_checkpoint_payload_never_runs(tmp_path):
    from modgen_bench.sequence.train import _load_checkpoint
    marker, path = tmp_path / "PWNED", tmp_path / "expert-a-0123456789ab.pt"
    _plant(path, marker, "torch")
    assert _load_checkpoint(path, "cpu") is None and not marker.exists()


def _run(suite, out, *extra):
    return main(["run", str(suite), "--out", str(out), "--device", "cpu", "--quiet", *extra])


@pytest.mark.parametrize("kind", ["torch", "pickle"])
@pytest.mark.parametrize("resume", [False, True])
def test_planted_payload_in_every_stage_file_of_a_run_folder_never_runs(
        stage_suite, tmp_path, kind, resume, capsys):
    out, marker = tmp_path / "out", tmp_path / "PWNED"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    clean = _rows(root)
    (run_dir,) = root.glob("stagey-*")
    planted = sorted(run_dir.glob("*.pt"))
    assert len(planted) == len(STAGES)
    for f in planted:                        # the sender's folder: done removed, stages replaced
        _plant(f, marker, kind)
    (run_dir / "done").unlink()
    assert _run(stage_suite, out, *(["--resume"] if resume else [])) == 0
    assert not marker.exists()
    assert _rows(root) == clean
    for f in planted:                        # recomputed and rewritten as plain data
        torch.load(f, weights_only=True)


def test_resume_never_adopts_a_foreign_sibling_with_the_same_config(stage_suite, tmp_path, capsys):
    """A sibling folder whose key.json holds this config but no seal of this machine's runs (it
    came from elsewhere) lends nothing under --resume, and the log says which and why."""
    out, marker = tmp_path / "out", tmp_path / "PWNED"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    (mine,) = root.glob("stagey-*")
    clean = (mine / "results.csv").read_text()
    foreign = root / "stagey-f0f0f0f0f0f0"
    shutil.copytree(mine, foreign)
    key = json.loads((foreign / "key.json").read_text())
    key["run_key"], key["seal"] = "f0f0f0f0f0f0", "0" * 64
    (foreign / "key.json").write_text(json.dumps(key))
    for f in foreign.glob("*.pt"):
        _plant(f, marker, "torch")
    shutil.rmtree(mine)                      # only the foreign folder has this config now
    (stage_suite / "stagey.py").write_text((stage_suite / "stagey.py").read_text() + "\n# edit\n")
    capsys.readouterr()
    assert main(["run", str(stage_suite), "--out", str(out), "--device", "cpu", "--resume"]) == 0
    said = capsys.readouterr().out
    assert not marker.exists()
    assert "stagey-f0f0f0f0f0f0 hold(s) this config but no record of this machine's runs" in said
    (new,) = [d for d in root.glob("stagey-*") if d != foreign]
    assert json.loads((new / "run.json").read_text())["resumed_from"] is None
    assert (new / "results.csv").read_text() == clean


def test_resume_adopts_this_machines_sibling_and_a_named_one_and_says_so(stage_suite, tmp_path,
                                                                         capsys):
    out = tmp_path / "out"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    (first,) = root.glob("stagey-*")
    (stage_suite / "stagey.py").write_text((stage_suite / "stagey.py").read_text() + "\n# edit\n")
    capsys.readouterr()
    assert main(["run", str(stage_suite), "--out", str(out), "--device", "cpu", "--resume"]) == 0
    said = capsys.readouterr().out
    assert f"reusing the stage files of {first} (written by a run on this machine)" in said
    # a folder from elsewhere (no seal) is adopted when the user names it
    elsewhere = tmp_path / "from-a-colleague" / first.name
    shutil.copytree(first, elsewhere)
    key = json.loads((elsewhere / "key.json").read_text())
    key.pop("seal")
    (elsewhere / "key.json").write_text(json.dumps(key))
    for d in root.glob("stagey-*"):
        shutil.rmtree(d)
    (stage_suite / "stagey.py").write_text((stage_suite / "stagey.py").read_text() + "\n# again\n")
    assert main(["run", str(stage_suite), "--out", str(out), "--device", "cpu", "--resume",
                 "--resume-from", str(elsewhere)]) == 0
    assert "(named by --resume-from)" in capsys.readouterr().out


def test_adoption_copies_no_symlink_and_nothing_through_one(stage_suite, tmp_path):
    out = tmp_path / "out"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    (first,) = root.glob("stagey-*")
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (first / "loot.pt").symlink_to(secret)
    (first / "lootdir").symlink_to(tmp_path, target_is_directory=True)
    (stage_suite / "stagey.py").write_text((stage_suite / "stagey.py").read_text() + "\n# edit\n")
    assert _run(stage_suite, out, "--resume") == 0
    (new,) = [d for d in root.glob("stagey-*") if d != first]
    assert not (new / "loot.pt").exists() and not (new / "lootdir").exists()
