"""`modgen-bench`: the command-line entry point (DESIGN.md, CLI contract).

Subcommands: solve, spd, check, run, report, bench. Heavy imports (cvxpy, torch) happen inside
the subcommand that needs them: `solve --method waterfill` loads neither.
Exit status: 0 on an answer (an infeasible problem is an answer), 2 on malformed input.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .problem import DiscreteProblem, ProblemError

__all__ = ["main", "build_parser"]


def _solve(args) -> int:
    from .exact import solve
    problem = DiscreteProblem.load(args.file)
    sol = solve(problem, method=args.method, support=args.support)
    if args.json:
        print(json.dumps(sol.to_json()))
        return 0
    if not sol.optimal:
        print(f"status: infeasible\nreason: {sol.reason}")
        return 0
    print(f"status: optimal   method: {sol.method} ({sol.solver})   support: {sol.support}")
    print(f"value V* = {sol.value:.10g} nats   duality gap = {sol.duality_gap:.3g}   "
          f"time = {sol.seconds:.3f} s")
    width = max(len(n) for n in problem.names)
    print(f"{'domain':<{width}}  {'lambda*':>10}  {'KL(P_k || pi_g*)':>18}")
    for name, lam, v in zip(problem.names, sol.lam, sol.per_domain_kl):
        print(f"{name:<{width}}  {lam:>10.6f}  {v:>18.10g}")
    return 0


def _spd(args) -> int:
    from .algorithms.cli import spd_command
    return spd_command(args)


def _check(args) -> int:
    repo = Path(__file__).resolve().parent.parent
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from theory_checks import run_checks
    return run_checks(claims=args.claims, instances=args.instances, seed=args.seed, out=args.out)


def _run(args) -> int:
    from .runner import run_suite
    run_suite(args.suite, preset=args.preset, device=args.device, out=args.out,
              resume=args.resume, only=args.only)
    return 0


def _report(args) -> int:
    from .reporting import build_index, build_report
    md, html = (build_index if args.index else build_report)(args.dir)
    print(f"wrote {md} and {html}")
    return 0


def _bench(args) -> int:
    if args.what == "exact":
        from .bench.exact import bench_exact, speedups
        import pandas as pd
        sizes = tuple(int(float(s)) for s in args.sizes)
        ps = tuple(int(p) for p in args.ps)
        df = bench_exact(sizes=sizes, ps=ps, cvxpy_max_n=args.cvxpy_max_n, seed=args.seed,
                         structured=not args.no_structured)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            sp = speedups(df)
            if len(sp):
                print("\ncvxpy time / waterfill time, and |value difference|:")
                print(sp.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        if args.csv:
            df.to_csv(args.csv, index=False)
        return 0
    from .algorithms.bench import bench_command
    return bench_command(args)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="modgen-bench", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("solve", help="exact robust gate of a problem file (JSON or NPZ)")
    s.add_argument("file")
    s.add_argument("--method", choices=["cvxpy", "waterfill"], default="waterfill")
    s.add_argument("--support", choices=["domains", "union"], default="domains")
    s.add_argument("--json", action="store_true", help="print the result object as JSON")
    s.set_defaults(func=_solve)

    s = sub.add_parser("spd", help="run a stochastic algorithm on a problem file, graded exactly")
    s.add_argument("file")
    s.add_argument("--method", choices=["spd", "alg1", "doremi", "groupdro", "afl"], default="spd")
    s.add_argument("--lam-signal", choices=["kl", "excess", "nll"], default=None,
                   help="lam gain; default: kl for spd/alg1, each peer method's own signal otherwise")
    s.add_argument("--gate", choices=["table", "linear"], default="table")
    s.add_argument("--support", choices=["domains", "union"], default="domains")
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_spd)

    s = sub.add_parser("check", help="run the theory checks and print the verdict table")
    s.add_argument("claims", nargs="*", metavar="CLAIM")
    s.add_argument("--instances", type=int, default=200)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="reports/checks")
    s.set_defaults(func=_check)

    s = sub.add_parser("run", help="run a suite folder (synthetic, real_world) and report")
    s.add_argument("suite")
    s.add_argument("--preset", choices=["quick", "full"], default="quick")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    s.add_argument("--out", default="reports")
    s.add_argument("--resume", action="store_true")
    s.add_argument("--only", nargs="*", help="run only these experiments (TOML stems)")
    s.set_defaults(func=_run)

    s = sub.add_parser("report", help="rebuild tables, figures, report.md, index.html from results")
    s.add_argument("dir")
    s.add_argument("--index", action="store_true",
                   help="instead, write DIR/index.html + index.md linking every report under DIR")
    s.set_defaults(func=_report)

    s = sub.add_parser("bench", help="performance tables")
    s.add_argument("what", choices=["exact", "spd"])
    s.add_argument("--sizes", nargs="*", default=["1e3", "1e4", "1e5", "1e6"])
    s.add_argument("--ps", nargs="*", default=["2", "8"])
    s.add_argument("--cvxpy-max-n", type=int, default=20_000)
    s.add_argument("--no-structured", action="store_true")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--csv", default=None, help="also write the table to this CSV file")
    s.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    s.set_defaults(func=_bench)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ProblemError as exc:
        print(f"modgen-bench: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"modgen-bench: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
