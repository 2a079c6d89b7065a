"""`modgen-bench run SUITE`: run every experiment of a suite folder, resumable, then report."""
from __future__ import annotations

import time
from pathlib import Path

from .provenance import config_hash, provenance
from .reporting import build_report
from .results import RunContext, is_done, write_results
from .suites import discover

__all__ = ["resolve_device", "run_suite"]


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device '{device}'; choose one of auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    import torch
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device auto or cpu")
    return "cpu"


def run_suite(suite: str, preset: str = "quick", device: str = "auto", out: str = "reports",
              resume: bool = False, only=None, log=print) -> Path:
    """Run each experiment into ``out/<suite>-<preset>/<experiment>-<config hash>/``.

    A folder holding ``done`` is skipped when ``resume`` is set (re-running the same command
    resumes); plug-ins that checkpoint also resume inside an experiment. Returns the suite folder.
    """
    device = resolve_device(device)
    experiments = discover(suite)
    if only:
        experiments = [e for e in experiments if e.name in set(only)]
    root = Path(out) / f"{experiments[0].suite}-{preset}"
    root.mkdir(parents=True, exist_ok=True)
    for exp in experiments:
        config = exp.config(preset)
        seed = int(config.get("seed", 0))
        run_dir = root / f"{exp.name}-{config_hash({'experiment': exp.name, **config})}"
        if resume and is_done(run_dir):
            log(f"[{exp.name}] done already in {run_dir}, skipped (--resume)")
            continue
        module = exp.load()
        ctx = RunContext(suite=exp.suite, config=config, out_dir=run_dir, device=device, seed=seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        log(f"[{exp.name}] running preset '{preset}' on {device} -> {run_dir}")
        t0 = time.perf_counter()
        module.run(ctx)
        rows = ctx.frame()
        rows.insert(0, "experiment", exp.name)
        info = provenance(suite=exp.suite, experiment=exp.name, preset=preset, config=config,
                          seed=seed, device=device, suite_dir=str(exp.path.parent),
                          wall_seconds=time.perf_counter() - t0, **ctx.info)
        write_results(run_dir, rows, info)
        log(f"[{exp.name}] {len(rows)} rows in {info['wall_seconds']:.1f} s")
    md, html = build_report(root)
    log(f"report: {md} and {html}")
    return root
