"""Load test: `modgen-bench solve` on a large problem file.

    .venv/bin/python scripts/measure_solve_load.py --mb 200 [--format npz|json] [--p 2]

Writes a random p x N problem whose arrays (domains + experts, float64) total ``--mb`` MB, runs
`modgen-bench solve FILE --json` in a fresh process, and prints the file size, the array size,
the peak resident memory of that process (ru_maxrss of the child), its wall time, and the
solver's own ``seconds``; then the same for a process that only loads the file
(`DiscreteProblem.load`), which isolates the I/O path from the solver.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).with_name("modgen-bench")
LOAD_ONLY = (
    "import sys; from modgen_bench.problem import DiscreteProblem; "
    "p = DiscreteProblem.load(sys.argv[1]); print(p.P.shape)"
)


def make_problem(path: Path, mb: float, p: int, fmt: str, seed: int = 0) -> tuple[int, int]:
    """A random problem with p domains whose two float64 arrays total ``mb`` MB; returns (p, N)."""
    N = int(mb * 1e6 / (2 * p * 8))
    rng = np.random.default_rng(seed)
    P = rng.random((p, N))
    P /= P.sum(axis=1, keepdims=True)
    E = rng.random((p, N))
    E /= E.sum(axis=1, keepdims=True)
    if fmt == "npz":
        np.savez(path, domains=P, experts=E)
    else:
        with open(path, "w") as f:
            json.dump({"domains": P.tolist(), "experts": E.tolist()}, f)
    return p, N


def measure(argv: list[str]) -> dict:
    """Peak RSS (MB) and wall seconds of one child process (rusage of children: one at a time)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    wall = time.perf_counter() - t0
    # ru_maxrss of RUSAGE_CHILDREN is the largest of the children waited for so far: run each
    # measurement from a fresh interpreter (see main) to read one process's peak
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.strip()}")
    return {"peak_rss_mb": peak_kb / 1024, "wall_s": wall, "stdout": proc.stdout}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200.0, help="array size in MB (domains + experts)")
    ap.add_argument("--p", type=int, default=2)
    ap.add_argument("--format", choices=["npz", "json"], default="npz")
    ap.add_argument("--which", choices=["both", "solve", "load"], default="both")
    ap.add_argument("--keep", default=None, help="reuse/keep the problem file at this path")
    args = ap.parse_args()
    if args.which == "both":  # one fresh interpreter per measurement (ru_maxrss is a maximum)
        for which in ("load", "solve"):
            extra = ["--keep", args.keep] if args.keep else []
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--mb",
                    str(args.mb),
                    "--p",
                    str(args.p),
                    "--format",
                    args.format,
                    "--which",
                    which,
                    *extra,
                ],
                check=True,
            )
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / f"big.{args.format}")
        if not path.is_file():
            p, N = make_problem(path, args.mb, args.p, args.format)
        array_mb = 2 * 8 * args.p * int(args.mb * 1e6 / (2 * args.p * 8)) / 1e6
        file_mb = path.stat().st_size / 1e6
        if args.which == "load":
            r = measure([sys.executable, "-c", LOAD_ONLY, str(path)])
            print(
                f"load  {args.format}: file {file_mb:.1f} MB, arrays {array_mb:.1f} MB, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB ({r['peak_rss_mb'] / array_mb:.2f}x arrays), "
                f"wall {r['wall_s']:.1f} s"
            )
        else:
            r = measure([str(EXE), "solve", str(path), "--json"])
            sol = json.loads(r["stdout"].splitlines()[-1])
            print(
                f"solve {args.format}: file {file_mb:.1f} MB, arrays {array_mb:.1f} MB, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB ({r['peak_rss_mb'] / array_mb:.2f}x arrays), "
                f"wall {r['wall_s']:.1f} s, solver {sol['seconds']:.1f} s, status {sol['status']}, "
                f"gap {sol['duality_gap']:.2g}"
            )


if __name__ == "__main__":
    main()
