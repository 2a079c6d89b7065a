"""`modgen-bench bench spd`: time per step and throughput of the stochastic algorithms (DESIGN.md,
CLI).

Discrete harness: for each size (N outcomes, p domains) and method, one untimed warm-up run
(imports, allocations, first-call dispatch) and then ``repeats`` timed runs; the wall time per
step is reported as the minimum (the least-disturbed run) and the median over the repeats, the
items per second (domain samples drawn per step / time per step; Algorithm 1 uses exact
gradients and draws none), and the certificate of the run: the exact suboptimality of the gate
it returns. The sequence benchmark's cached-vs-uncached SPD throughput is appended when
`modgen_bench.sequence.bench.throughput_table` is available.
"""

from __future__ import annotations

import importlib
import statistics
import time

import pandas as pd

from .. import instances
from ..provenance import stable_seed
from ..runner import resolve_device
from .harness import run_method
from .spd import SPDConfig

__all__ = ["bench_discrete", "bench_command"]

SIZES = ((3, 20), (3, 1000), (8, 1000), (8, 20000))
METHODS = ("alg1", "spd", "doremi")


def bench_discrete(
    device: str = "cpu",
    seed: int = 0,
    steps: int = 200,
    sizes=SIZES,
    methods=METHODS,
    repeats: int = 3,
) -> pd.DataFrame:
    """One row per (p, N, method): ms/step (min and median of ``repeats`` timed runs after a
    warm-up), items/s at the minimum, exact suboptimality after ``steps``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1 (got {repeats})")
    rows = []
    for p, N in sizes:
        problem = instances.make("dirichlet", stable_seed(seed, "bench", p, N), p=p, N=N)
        for method in methods:
            run_method(
                problem, method, steps=2, seed=seed, device=device
            )  # warm-up (imports, allocations)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                run = run_method(problem, method, steps=steps, seed=seed, device=device)
                times.append((time.perf_counter() - t0) / steps)
            best, median = min(times), statistics.median(times)
            items = 0 if method == "alg1" else p * SPDConfig.per_domain
            rows.append(
                {
                    "method": method,
                    "p": p,
                    "N": N,
                    "device": device,
                    "steps": steps,
                    "repeats": repeats,
                    "ms_per_step_min": 1e3 * best,
                    "ms_per_step_median": 1e3 * median,
                    "items_per_s": items / best,
                    "suboptimality": run.grade["suboptimality"],
                    "Z": run.grade["Z"],
                }
            )
    return pd.DataFrame(rows)


def _sequence_table(device: str):
    """Engineer C's cached-vs-uncached table, or None while that module is not there."""
    try:
        module = importlib.import_module("modgen_bench.sequence.bench")
    except ModuleNotFoundError as exc:
        if exc.name not in ("modgen_bench.sequence", "modgen_bench.sequence.bench"):
            raise  # the module exists but is broken: say so
        return None
    table = getattr(module, "throughput_table", None)
    return table(device) if table is not None else None


def _fmt(v) -> str:
    return f"{v:.4g}"


def bench_command(args) -> int:
    device = resolve_device(args.device)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        repeats = getattr(args, "repeats", 3)
        df = bench_discrete(device=device, seed=args.seed, repeats=repeats)
        print(
            "SPD harness on discrete problems (exact certificate: suboptimality of the returned "
            f"gate); time per step: min and median of {repeats} runs after a warm-up"
        )
        print(df.to_string(index=False, float_format=_fmt))
        seq = _sequence_table(device)
        if seq is not None:
            print(
                "\nSequence benchmark: SPD step throughput, "
                "cached vs uncached expert log-likelihoods"
            )
            print(seq.to_string(index=False, float_format=_fmt))
        else:
            print(
                "\n(sequence throughput: "
                "modgen_bench.sequence.bench.throughput_table not available)"
            )
    if getattr(args, "csv", None):
        from ..atomic import write_frame

        write_frame(args.csv, df)  # atomic; a missing folder is created
    return 0
