"""The GPU smoke test behind scripts/gpu_smoke.sh: measure the full text3 preset's training
throughput, project the preset's wall time from it, and run a short end-to-end slice of the preset.

1. `bench_train` on the expert, monolith and gate of ``real_world/text3.toml`` ``[preset.full]``
   (full sizes, ``--steps`` steps per timed run, warm-up + 3 repeats);
2. `projected_seconds`: the preset's training tokens per model kind (experts, monolith retrains,
   SPD gates, router) divided by the measured tokens/s, times the replicates. Training only:
   caching, ancestral sampling and evaluation come on top (the slice in step 3 shows their share);
3. ``modgen-bench run real_world --only text3 --preset full`` with the step counts cut to
   ``--slice-steps`` and one replicate, so every stage runs once on the device.

    python -m modgen_bench.bench.smoke --device cuda [--steps 30] [--slice-steps 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import pandas as pd

from ..pipeline.config import PipelineConfig

__all__ = ["training_tokens", "projected_seconds", "main"]


def training_tokens(cfg: PipelineConfig) -> dict:
    """Tokens processed by each model kind's training over the whole preset (all replicates)."""
    p, T, R = len(cfg.corpora), cfg.block_size, len(cfg.replicates())
    per_domain = cfg.spd.get("per_domain", 64)
    return {
        "expert": R * p * cfg.expert.steps * cfg.expert.batch_size * (T - 1),
        "monolith": R * (2 + len(cfg.oracle)) * cfg.mono.steps * cfg.mono.batch_size * p * (T - 1),
        "gate": R * len(cfg.signals) * cfg.spd.get("steps", 2000) * per_domain * p * T,
        # the router is a causal network of the gate's size: timed at the gate's rate
        "router": R * cfg.router.steps * cfg.router.batch_size * T,
    }


def projected_seconds(cfg: PipelineConfig, bench: pd.DataFrame) -> pd.DataFrame:
    """Per model kind: tokens, measured project tokens/s and the projected training seconds."""
    rate = bench[bench["loop"] == "project"].set_index("model")["tokens_per_s"]
    rows = [
        {
            "model": kind,
            "tokens": n,
            "tokens_per_s": rate["gate" if kind == "router" else kind],
            "seconds": n / rate["gate" if kind == "router" else kind],
        }
        for kind, n in training_tokens(cfg).items()
    ]
    return pd.DataFrame(rows)


def _parse_args(argv) -> argparse.Namespace:
    """The command line of the smoke test."""
    ap = argparse.ArgumentParser(
        prog="python -m modgen_bench.bench.smoke", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    ap.add_argument("--steps", type=int, default=30, help="training steps per timed run")
    ap.add_argument(
        "--slice-steps", type=int, default=200, help="steps of every stage in the end-to-end slice"
    )
    ap.add_argument(
        "--slice-draws",
        type=int,
        default=1024,
        help="n_draws in the slice (n_proposal: SPD's total draws)",
    )
    ap.add_argument(
        "--preset",
        choices=["full", "quick"],
        default="full",
        help="text3 preset measured and sliced (quick: to test the script on a CPU in minutes)",
    )
    ap.add_argument("--out", default="reports/gpu_smoke")
    return ap.parse_args(argv)


def _measure_throughput(args, preset: dict, name: str) -> pd.DataFrame:
    """Step 1: time the preset's models (`bench_train`) and print the table."""
    from .train import bench_train, preset_models

    print(f"== 1. training throughput, text3 {args.preset} preset sizes, on {name}")
    t0 = time.perf_counter()
    df = bench_train(
        preset_models(preset, f"text3/{args.preset}"),
        device=args.device,
        steps=args.steps,
        repeats=3,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"   ({time.perf_counter() - t0:.0f} s)")
    return df


def _print_projection(args, cfg: PipelineConfig, df: pd.DataFrame, name: str) -> None:
    """Step 2: print the preset's projected training time per model kind and in total."""
    proj = projected_seconds(cfg, df)
    print(
        f"\n== 2. projected training time of the {args.preset} preset ({len(cfg.replicates())} "
        "replicates)"
    )
    print(proj.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    total = proj["seconds"].sum()
    print(
        f"projected training total of text3 {args.preset}: {total / 3600:.2f} h ({total:.0f} s) "
        f"on {name}; caching, sampling "
        "and evaluation come on top (their share: the slice below)"
    )


def _slice_overrides(args, cfg: PipelineConfig, preset: dict) -> list[str]:
    """The ``--set`` overrides that cut the preset to one replicate and ``--slice-steps`` steps."""
    s = args.slice_steps
    return (
        ["seeds=[0]", "resamples=[]"]
        + (["oracle=[]"] if "oracle" in preset else [])
        + [
            f"expert.steps={s}",
            f"mono.steps={s}",
            f"spd.steps={s}",
            f"router.steps={s}",
            f"n_draws={args.slice_draws}",
            "n_proposal=0",
            f"n_gate_train={max(64, args.slice_draws)}",
            f"conflict_every={max(1, s // 4)}",
            f"expert.warmup={min(cfg.expert.warmup, s // 10)}",
            f"mono.warmup={min(cfg.mono.warmup, s // 10)}",
            f"spd.log_every={max(1, s // 10)}",
        ]
    )


def _slice_command(args, sets: list[str]) -> list[str]:
    """The ``modgen-bench run real_world`` command line of the slice."""
    cmd = [
        sys.executable,
        "-m",
        "modgen_bench",
        "run",
        "real_world",
        "--only",
        "text3",
        "--preset",
        args.preset,
        "--device",
        args.device,
        "--out",
        args.out,
        "--force",
    ]
    for kv in sets:
        cmd += ["--set", kv]
    return cmd


def _run_slice(args, cfg: PipelineConfig, preset: dict, df: pd.DataFrame) -> int:
    """Step 3: run the end-to-end slice, print its wall time; its exit code."""
    print(
        f"\n== 3. end-to-end slice: every stage once, {args.slice_steps} steps each, one replicate"
    )
    s = args.slice_steps
    cmd = _slice_command(args, _slice_overrides(args, cfg, preset))
    t0 = time.perf_counter()
    code = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    slice_train = (
        sum(projected_seconds(cfg, df)["seconds"])
        / max(1, len(cfg.replicates()))
        * (s / cfg.expert.steps)
    )
    print(
        f"slice: exit {code}, {wall:.0f} s wall (training share projected from step 1: about "
        f"{slice_train:.0f} s)"
    )
    return code


def main(argv=None) -> int:
    """Run the three steps; the slice's exit code (2: --device cuda without a GPU)."""
    args = _parse_args(argv)

    import torch

    from ..suites import suite_root
    from .train import load_preset

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_smoke: error: --device cuda but torch sees no GPU (use --device cpu to test "
            "the script)",
            file=sys.stderr,
        )
        return 2
    if args.device == "cpu":
        torch.set_num_threads(1)
    preset = load_preset(suite_root("real_world") / "text3.toml", args.preset)
    cfg = PipelineConfig.from_dict(preset)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    df = _measure_throughput(args, preset, name)
    _print_projection(args, cfg, df, name)
    return _run_slice(args, cfg, preset, df)


if __name__ == "__main__":
    raise SystemExit(main())
