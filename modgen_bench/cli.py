"""`modgen-bench`: the command-line entry point (DESIGN.md, CLI contract).

Subcommands: solve, spd, check, run, report, bench. Heavy imports (cvxpy, torch) happen inside
the subcommand that needs them: `solve --method waterfill` loads neither.
Exit status: 0 on an answer (an infeasible problem is an answer), 2 on malformed input.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .errors import UserError
from .listing import KINDS, MethodChoices
from .resources import resolve_example

__all__ = ["main", "build_parser"]

#: Upper bounds on counts given on the command line: beyond these a run cannot finish, and a
#: Python int would overflow the C sizes it becomes.
MAX_STEPS = 10**9
MAX_SIZE = 10**9
#: `check --instances` default: theory_checks.DEFAULT_INSTANCES (a test keeps them equal), here so
#: that building the parser does not import the checks
CHECK_INSTANCES = 2000
#: `bench exact` shapes: N and p of the single solves, and of the stacks of `--batch`
DEFAULT_EXACT_SIZES, DEFAULT_EXACT_PS = (1_000, 10_000, 100_000, 1_000_000), (2, 8)
DEFAULT_BATCH_SIZES, DEFAULT_BATCH_PS = (20, 200), (2, 4, 8, 16)


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract: ``modgen-bench: error: ...``, exit status 2."""

    def error(self, message):
        sys.stderr.write(f"modgen-bench: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def _int_in(lo: int, hi: int):
    """An argparse type: an integer in [lo, hi] (a float spelling such as 1e6 is accepted)."""

    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not value == value or value in (float("inf"), float("-inf")) or value != int(value):
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number")
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{text} is outside [{lo}, {hi:.0e}]")
        return int(value)

    parse.__name__ = "integer"
    return parse


def _nonneg_float(text: str) -> float:
    """argparse type: a finite number >= 0 (solve --tol)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not (v >= 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0 (got {text})")
    return v


def _exact_methods() -> tuple[str, ...]:
    """The exact core's registered methods (`exact.paths.methods`): `solve --method` choices."""
    from .exact import methods

    return methods()


def _solve(args) -> int:
    """Solve every problem named; exit 3 when any answer is not certified (DESIGN.md, Additions)."""
    from .exact import solve
    from .exact.batch import iter_problems
    from .exact.jsonout import write_json

    code, many = 0, len(args.file) > 1
    for label, problem in iter_problems(args.file, resolve=resolve_example):
        sol = solve(
            problem,
            method=args.method,
            support=args.support,
            tol=args.tol,
            time_limit=args.time_limit,
        )
        many = many or label.endswith("]")
        if sol.status == "inaccurate":
            code = 3
        if args.json:  # streamed: the model and gate never become Python lists
            out = sol.to_json(arrays=True)
            write_json({"file": label, **out} if many else out, sys.stdout.write)
            print(flush=many)
            continue
        if many:
            print(f"== {label}")
        if sol.status == "infeasible":
            print(f"status: infeasible\nreason: {sol.reason}")
            continue
        print(
            f"status: {sol.status}   method: {sol.method} ({sol.solver})   support: {sol.support}"
        )
        print(
            f"value V* = {sol.value:.10g} nats   duality gap = {sol.duality_gap:.3g}   "
            f"time = {sol.seconds:.3f} s"
        )
        if sol.status == "inaccurate":
            lo, hi = sol.extra.get("bound", (float("nan"), float("nan")))
            print(f"NOT CERTIFIED: V* lies in [{lo:.10g}, {hi:.10g}]\nreason: {sol.reason}")
        width = max(len(n) for n in problem.names)
        print(f"{'domain':<{width}}  {'lambda*':>10}  {'KL(P_k || pi_g*)':>18}")
        for name, lam, v in zip(problem.names, sol.lam, sol.per_domain_kl, strict=True):
            print(f"{name:<{width}}  {lam:>10.6f}  {v:>18.10g}")
    return code


def _spd(args) -> int:
    from .algorithms.cli import spd_command

    return spd_command(args)


def _check(args) -> int:
    from theory_checks import run_checks  # shipped beside modgen_bench (pyproject.toml)

    return run_checks(
        claims=args.claims,
        instances=args.instances,
        seed=args.seed,
        out=args.out,
        strict=args.strict,
        expected=args.expected,
        jobs=args.jobs,
    )


def _run(args) -> int:
    from .launch import LaunchSpec, SlurmSpec
    from .runner import parse_overrides, run_suite

    if args.nproc > 1:  # re-run this command under torchrun (DDP training)
        from .distributed import run_under_torchrun

        return run_under_torchrun(args.nproc, sys.argv[1:], args.device)
    spec = LaunchSpec(
        args.launcher,
        args.jobs,
        SlurmSpec(
            partition=args.slurm_partition,
            time_min=args.slurm_time,
            gpus_per_node=args.gpus_per_job,
            cpus_per_task=args.cpus_per_job,
        ),
    )
    run_suite(
        args.suite,
        preset=args.preset,
        device=args.device,
        out=args.out,
        resume=args.resume,
        only=args.only,
        force=args.force,
        resume_from=args.resume_from,
        overrides=parse_overrides(args.overrides),
        launch=spec,
    )
    return 0


def _report(args) -> int:
    from .reporting import build_index, build_report

    md, html = (
        build_index(args.dir)
        if args.index
        else build_report(args.dir, trusted_dirs=args.trust_plugins)
    )
    print(f"wrote {md} and {html}")
    return 0


def _bench_fuzz(args) -> int:
    """`bench fuzz`: random hard instances graded by their certificates; exit 1 on a wrong
    answer."""
    from .bench.fuzz import format_counts, fuzz

    res = fuzz(
        instances=args.instances,
        seed=args.seed,
        method=args.method or "waterfill",
        report_every=10_000,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
        save_failures=args.save_failures,
    )
    print(format_counts(res))
    if args.csv:
        import pandas as pd

        from .atomic import write_frame

        write_frame(
            args.csv,
            pd.DataFrame(
                [
                    {
                        **res["counts"],
                        "worst_gap": res["worst_gap"],
                        "seconds_per_instance": res["seconds_per_instance"],
                        "instances": res["instances"],
                        "seed": res["seed"],
                    }
                ]
            ),
        )
    return 1 if res["counts"]["wrong"] else 0


def _bench_batch(args) -> int:
    """`bench exact --batch B`: `solve_batch` against `solve` one by one (`bench.batch`)."""
    import pandas as pd

    from .bench.batch import FAMILIES, bench_batch

    df = bench_batch(
        sizes=tuple(int(float(s)) for s in args.sizes or DEFAULT_BATCH_SIZES),
        ps=tuple(int(p) for p in args.ps or DEFAULT_BATCH_PS),
        B=args.batch,
        families=tuple(args.families or FAMILIES),
        repeats=args.repeats,
        seed=args.seed,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.csv:
        from .atomic import write_frame

        write_frame(args.csv, df)
    return 0


def _bench(args) -> int:
    if args.what == "train":
        from .bench.train import train_command

        return train_command(args)
    if args.what == "fuzz":
        return _bench_fuzz(args)
    if args.what == "exact" and args.batch:
        return _bench_batch(args)
    if args.what == "exact":
        import pandas as pd

        from .bench.exact import bench_exact, speedups

        sizes = tuple(int(float(s)) for s in args.sizes or DEFAULT_EXACT_SIZES)
        ps = tuple(int(p) for p in args.ps or DEFAULT_EXACT_PS)
        df = bench_exact(
            sizes=sizes,
            ps=ps,
            cvxpy_max_n=args.cvxpy_max_n,
            seed=args.seed,
            structured=not args.no_structured,
            repeats=args.repeats,
        )
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
            sp = speedups(df)
            if len(sp):
                print(
                    "\ncvxpy time / waterfill time (both warm, min over repeats), and "
                    "|value difference|:"
                )
                print(sp.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        if args.csv:
            from .atomic import write_frame

            write_frame(args.csv, df)
        return 0
    from .algorithms.bench import bench_command

    return bench_command(args)


DESCRIPTION = (
    "Verify and benchmark modular robust generative models: exact minimax gates with "
    "certificates (solve), stochastic algorithms graded exactly (spd), the paper's "
    "claims as checks (check), suites and their reports (run, report), benchmarks "
    "(bench)."
)
EPILOG = (
    "'modgen-bench list suites|experiments|presets|claims|methods|examples' shows what each "
    "option accepts; 'modgen-bench COMMAND --help' shows its options and defaults."
)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where there is none to show (None, flags)."""

    def _get_help_string(self, action):
        if (
            action.default is None
            or action.default is False
            or action.default == []
            or action.nargs == 0
        ):
            return action.help
        return super()._get_help_string(action)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("modgen-bench")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _list(args) -> int:
    from .listing import list_command

    return list_command(args)


def _with_logging(func):
    """Wrap a subcommand: set up `logging` and progress bars from --quiet / --log-file first."""

    def run(args):
        from .logs import configure

        configure(quiet=args.quiet, log_file=args.log_file)
        if args.log_file:
            _fail_on_log_errors(args.log_file)
        return func(args)

    run.__wrapped__ = func
    return run


def _fail_on_log_errors(log_file: str) -> None:
    """A message that cannot be written to ``--log-file`` (a full disk, /dev/full) stops the
    command with `OutputError` naming the file, instead of logging's traceback and exit 0."""
    import logging

    from .atomic import OutputError

    target = os.path.abspath(log_file)

    def fail(handler):
        exc = sys.exc_info()[1]
        try:  # what is still buffered for the file goes nowhere, not into a second error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, handler.stream.fileno())
            os.close(devnull)
        except (OSError, AttributeError, ValueError):
            pass
        raise OutputError(log_file, exc if isinstance(exc, OSError) else OSError(str(exc)))

    for h in logging.getLogger().handlers:
        if isinstance(h, logging.FileHandler) and h.baseFilename == target:
            h.handleError = lambda record, h=h: fail(h)


def _add_solve(sub) -> None:
    """``solve FILE [FILE ...]``: the exact robust gate of problem files."""
    s = sub.add_parser("solve", help="exact robust gate of a problem file (JSON or NPZ)")
    s.add_argument(
        "file",
        nargs="+",
        metavar="FILE",
        help="problem file(s) {domains, experts, names} (JSON or NPZ; an NPZ with a "
        "leading batch axis (B, p, N) holds B problems); the shipped examples/*.json "
        "are found from any directory (see 'list examples'). Several problems: one "
        "line each",
    )
    s.add_argument(
        "--method",
        choices=_exact_methods(),
        default="waterfill",
        help="exact solver (the registered methods): waterfill (numpy, fast) or cvxpy "
        "(conic reference); the others follow as fallbacks",
    )
    s.add_argument(
        "--support",
        choices=["domains", "union"],
        default="domains",
        help="where pi_g must sum to 1: the domains' support X0 (the paper) or X0 plus "
        "the experts' supports",
    )
    s.add_argument("--json", action="store_true", help="print the result object as JSON")
    s.add_argument(
        "--tol",
        type=_nonneg_float,
        default=1e-9,
        help="status optimal only when duality_gap <= TOL + 1e-9 * |value|; otherwise "
        "inaccurate with the bound interval, and exit status 3",
    )
    s.add_argument(
        "--time-limit",
        type=_nonneg_float,
        default=None,
        metavar="SECONDS",
        help="CPU seconds per problem for the whole fallback chain (default: 0.9 per "
        "1e6 entries of P, at least 0.9); an answer cut short is inaccurate and "
        "says which path stopped and why",
    )
    s.set_defaults(func=_solve)


def _add_spd(sub) -> None:
    """``spd FILE``: a stochastic algorithm on a problem file, graded exactly."""
    s = sub.add_parser("spd", help="run a stochastic algorithm on a problem file, graded exactly")
    s.add_argument("file", help="problem file (JSON or NPZ)")
    # metavar: argparse would otherwise list the (lazy) choices while building the parser,
    # importing torch for every command; %(choices)s is read only when the help is printed.
    s.add_argument(
        "--method",
        choices=MethodChoices(),
        default="spd",
        metavar="METHOD",
        help="a registered algorithm or lam rule: %(choices)s (see 'list methods')",
    )
    s.add_argument(
        "--lam-signal",
        choices=["kl", "excess", "nll"],
        default=None,
        help="lam gain; default: kl for spd/alg1, each peer method's own signal otherwise",
    )
    s.add_argument(
        "--gate",
        choices=["table", "linear"],
        default="table",
        help="gate parametrisation: one logit row per outcome, or linear in fixed features",
    )
    s.add_argument(
        "--support",
        choices=["domains", "union"],
        default="domains",
        help="support convention of the exact grade (as in solve)",
    )
    s.add_argument(
        "--steps",
        type=_int_in(1, MAX_STEPS),
        default=None,
        help="training steps (default: the method's config default)",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of sampling, initialisation and gate")
    s.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="cpu",
        help="torch device; auto = cuda when present",
    )
    s.add_argument("--json", action="store_true", help="print the result object as JSON")
    s.set_defaults(func=_spd)


def _add_check(sub) -> None:
    """``check [CLAIM ...]``: the theory checks and their verdict table."""
    s = sub.add_parser("check", help="run the theory checks and print the verdict table")
    s.add_argument(
        "claims",
        nargs="*",
        metavar="CLAIM",
        help="claims to check (default: all; see 'list claims')",
    )
    s.add_argument(
        "--instances",
        type=_int_in(1, MAX_SIZE),
        default=CHECK_INSTANCES,
        help="random instances per claim and reading",
    )
    s.add_argument("--seed", type=int, default=0, help="seed of the instance draws")
    s.add_argument(
        "--jobs",
        type=_int_in(1, 1024),
        default=None,
        help="worker processes for the claims and their mutations (default: one per core)",
    )
    s.add_argument("--out", default="reports/checks", help="folder for the verdicts and report")
    s.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a verdict differs from the pinned expectation "
        "(theory_checks/expected.json, or --expected)",
    )
    s.add_argument(
        "--expected",
        default=None,
        metavar="FILE",
        help="pinned verdicts to compare with (default: the shipped "
        "theory_checks/expected.json; write one with "
        "'python -m theory_checks.expected --out FILE')",
    )
    s.set_defaults(func=_check)


def _add_run(sub) -> None:
    """``run SUITE``: run a suite folder and report."""
    s = sub.add_parser("run", help="run a suite folder (synthetic, real_world) and report")
    s.add_argument("suite", help="a suite folder or a shipped suite name (see 'list suites')")
    s.add_argument(
        "--preset",
        default="quick",
        help="sizes to run at, a preset of the suite's TOMLs: quick, full, smoke "
        "(seconds), decisive (scaling); `list presets` shows them (presets "
        "change sizes, never code)",
    )
    s.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="torch device; auto = cuda when present",
    )
    s.add_argument("--out", default="reports", help="output root; runs go to OUT/<suite>-<preset>/")
    s.add_argument(
        "--resume",
        action="store_true",
        help="skip finished runs and continue stages from their checkpoints (after a "
        "code change, from an earlier run that this machine wrote)",
    )
    s.add_argument(
        "--resume-from",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="with --resume: also reuse the stage files of this earlier run folder "
        "(one you trust, made elsewhere or moved); repeatable",
    )
    s.add_argument("--only", nargs="*", help="run only these experiments (TOML stems)")
    s.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset key (dotted for tables, value as TOML); recorded in the "
        "run key, so the run gets its own folder; repeatable",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="delete the run's folder first and recompute every stage",
    )
    s.add_argument(
        "--launcher",
        choices=["serial", "joblib", "submitit"],
        default="serial",
        help="how independent jobs (replicates, sweep cells) run: in this process, "
        "joblib worker processes, or submitit (SLURM when present, else local)",
    )
    s.add_argument(
        "-j",
        "--jobs",
        type=_int_in(1, 4096),
        default=1,
        help="jobs at a time (joblib workers; submitit array parallelism)",
    )
    s.add_argument(
        "--nproc",
        type=_int_in(1, 1024),
        default=1,
        help="data-parallel processes: re-runs this command under torchrun "
        "--nproc-per-node N (gloo on CPU, NCCL on CUDA)",
    )
    s.add_argument("--slurm-partition", default=None, help="submitit on SLURM: partition")
    s.add_argument(
        "--slurm-time",
        type=_int_in(1, 100_000),
        default=240,
        help="submitit on SLURM: time limit per job, minutes",
    )
    s.add_argument("--gpus-per-job", type=_int_in(0, 64), default=0, help="submitit: GPUs per job")
    s.add_argument(
        "--cpus-per-job", type=_int_in(1, 1024), default=2, help="submitit: CPUs per job"
    )
    s.set_defaults(func=_run)


def _add_report(sub) -> None:
    """``report DIR``: rebuild the reports from results files."""
    s = sub.add_parser("report", help="rebuild tables, figures, report.md, index.html from results")
    s.add_argument("dir", help="a suite output folder (or, with --index, the output root)")
    s.add_argument(
        "--index",
        action="store_true",
        help="instead, write DIR/index.html + index.md linking every report under DIR",
    )
    s.add_argument(
        "--trust-plugins",
        action="append",
        default=[],
        metavar="SUITE_DIR",
        help="also take plug-in report() code from this suite folder (its code runs); "
        "by default only the installed suites' plug-ins run, never a folder named "
        "inside the results; repeatable",
    )
    s.set_defaults(func=_report)


def _add_bench(sub) -> None:
    """``bench exact|spd|fuzz|train``: performance tables."""
    s = sub.add_parser("bench", help="performance tables")
    s.add_argument("what", choices=["exact", "spd", "fuzz", "train"], help="which benchmark")
    _add_bench_fuzz(s)
    _add_bench_exact(s)
    s.add_argument("--seed", type=int, default=0, help="seed of the benchmark instances")
    s.add_argument(
        "--repeats",
        type=_int_in(1, 1000),
        default=3,
        help="timed repeats after one warm-up run (min and median reported)",
    )
    s.add_argument("--csv", default=None, help="also write the table to this CSV file")
    _add_bench_train(s)
    s.set_defaults(func=_bench)


def _add_bench_fuzz(s) -> None:
    """``bench fuzz``'s options."""
    s.add_argument(
        "--instances",
        type=_int_in(1, MAX_SIZE),
        default=1000,
        help="bench fuzz: random hard instances to solve",
    )
    s.add_argument(
        "--method",
        choices=_exact_methods(),
        default=None,
        help="bench fuzz: the solver method tried first (default waterfill)",
    )
    s.add_argument(
        "--save-failures",
        default=None,
        metavar="DIR",
        help="bench fuzz: save each inaccurate or wrong instance as a problem file in DIR",
    )


def _add_bench_exact(s) -> None:
    """``bench exact``'s options (sizes, batch stacks, cvxpy)."""
    s.add_argument(
        "--sizes",
        nargs="*",
        type=_int_in(1, MAX_SIZE),
        default=None,
        help="bench exact: numbers of outcomes N (default 1e3 1e4 1e5 1e6; with --batch 20 200)",
    )
    s.add_argument(
        "--ps",
        nargs="*",
        default=None,
        help="bench exact: numbers of domains p (default 2 8; with --batch 2 4 8 16)",
    )
    s.add_argument(
        "--batch",
        type=_int_in(1, MAX_SIZE),
        default=None,
        metavar="B",
        help="bench exact: time solve_batch on stacks of B problems against solve one by one",
    )
    s.add_argument(
        "--families",
        nargs="*",
        default=None,
        help="bench exact --batch: instance families (default: the theory checks' and the fuzz's)",
    )
    s.add_argument(
        "--cvxpy-max-n", type=int, default=20_000, help="bench exact: largest N given to cvxpy"
    )
    s.add_argument(
        "--no-structured",
        action="store_true",
        help="bench exact: skip the structured instance families",
    )


def _add_bench_train(s) -> None:
    """``bench spd`` and ``bench train``'s options."""
    s.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="torch device for bench spd; auto = cuda when present",
    )
    s.add_argument(
        "--preset",
        choices=["quick", "medium", "full"],
        default="quick",
        help="bench train: the real-world preset whose expert, monolith and gate are timed",
    )
    s.add_argument(
        "--steps-per-run",
        type=_int_in(1, 100_000),
        default=20,
        help="bench train: training steps in each timed run",
    )
    s.add_argument(
        "--threads",
        type=_int_in(1, 1024),
        default=1,
        help="bench train: torch threads on CPU (tiny models run fastest on one)",
    )
    s.add_argument(
        "--compile",
        action="store_true",
        help="bench train: also time a torch.compile'd reference loop",
    )


def _add_list(sub) -> None:
    """``list WHAT``: suites, experiments, presets, claims, methods, examples."""
    s = sub.add_parser("list", help="list suites, experiments, presets, claims, methods, examples")
    s.add_argument("what", choices=KINDS, help="what to list")
    s.add_argument("--suite", default=None, help="experiments/presets of this suite only")
    s.add_argument("--json", action="store_true", help="print a JSON list of objects")
    s.set_defaults(func=_list)


#: one builder per subcommand, in the order `--help` lists them
_SUBCOMMANDS = (_add_solve, _add_spd, _add_check, _add_run, _add_report, _add_bench, _add_list)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(
        prog="modgen-bench", description=DESCRIPTION, epilog=EPILOG, formatter_class=_HelpFormatter
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    ap.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an internal error (accepted anywhere on the line)",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)

    for p in sub.choices.values():
        p.formatter_class = _HelpFormatter
        p.add_argument(
            "--quiet",
            action="store_true",
            help="only warnings and errors on stderr; no progress bars",
        )
        p.add_argument(
            "--log-file",
            default=None,
            metavar="FILE",
            help="also append every message (with timestamps) to FILE",
        )
        p.set_defaults(func=_with_logging(p.get_default("func")))
    return ap


def _take_debug(argv: list) -> bool:
    """Remove every ``--debug`` before a ``--`` from ``argv`` (in place); True if there was one."""
    end = argv.index("--") if "--" in argv else len(argv)
    found = "--debug" in argv[:end]
    argv[:end] = [a for a in argv[:end] if a != "--debug"]
    return found


def _os_message(exc: OSError) -> str:
    """One line for a refused read or write, naming the path (OutputError already does)."""
    from .atomic import OutputError

    if isinstance(exc, OutputError) or not exc.filename:
        return str(exc.strerror or exc)
    where = f"'{exc.filename}'" + (f" -> '{exc.filename2}'" if exc.filename2 else "")
    return f"{where}: {exc.strerror or exc}"


def _fail(message, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    lines = str(message).strip().splitlines() or [""]
    more = "" if len(lines) == 1 or debug else " (rerun with --debug for details)"
    print(f"modgen-bench: error: {lines[0]}{more}", file=sys.stderr)
    return 2


def _internal(exc: BaseException, debug: bool) -> int:
    """An internal error: re-raised under ``--debug`` (traceback, exit 1), else one line, exit 1."""
    if debug:
        raise exc
    first = (str(exc).strip().splitlines() or [""])[0]
    print(
        f"modgen-bench: internal error: {type(exc).__name__}: {first} "
        "(rerun with --debug for the traceback)",
        file=sys.stderr,
    )
    return 1


def main(argv=None) -> int:
    """Run one command and map every failure onto the exit-status contract (DESIGN.md, CLI).

    0 an answer (also infeasible); 2 a user error: one line ``modgen-bench: error: ...`` naming
    the file or option (arguments, malformed input, a file system that refuses a read or a write:
    missing, permissions, read-only, under a file, disk full); 1 an internal error: one line, with
    the traceback only under ``--debug``; 130 interrupted (Ctrl-C).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _take_debug(argv)
    args = build_parser().parse_args(argv)
    args.debug = debug
    try:
        return args.func(args)
    except UserError as exc:  # ProblemError, ResultsError, config and option errors
        return _fail(exc, debug)
    except BrokenPipeError:  # `modgen-bench ... | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        from .atomic import OutputError

        hint = (
            "; finished experiments are kept: add --resume to the same command once the file "
            "system accepts writes"
            if isinstance(exc, OutputError) and args.command == "run"
            else ""
        )
        return _fail(_os_message(exc) + hint, debug)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError):  # a module of ours or a dependency: a bug
            return _internal(exc, debug)
        return _fail(exc, debug)  # a suite plug-in missing or failing to import (suites.py)
    except KeyboardInterrupt:
        hint = (
            " (finished stages are kept; add --resume to the same command to continue)"
            if args.command == "run"
            else ""
        )
        print(f"modgen-bench: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: exit 1, traceback on request
        return _internal(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
