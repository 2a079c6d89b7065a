"""`modgen-bench spd FILE`: run one stochastic method on a problem file and grade it exactly
(DESIGN.md).

Prints (with --json) {"worst_case_kl", "Z", "exact_value", "suboptimality", "lambda", "steps",
"method"} plus "lam_signal", "gate", "support", "seed", "device", "mu", "per_domain_kl",
"seconds". --lam-signal selects the signal of --method spd (and the exact gain of alg1); the peer
methods (doremi, groupdro, afl) are defined by their published signal (excess, nll, nll) and use
it.
"""

from __future__ import annotations

import json
import time

from ..errors import UserError
from ..problem import DiscreteProblem
from ..runner import resolve_device
from .alg1 import Alg1Config
from .harness import run_method
from .spd import SPDConfig

__all__ = ["spd_command"]


def spd_command(args) -> int:
    problem = DiscreteProblem.load(args.file)
    device = resolve_device(args.device)
    steps = (
        args.steps
        if args.steps is not None
        else (Alg1Config.steps if args.method == "alg1" else SPDConfig.steps)
    )
    if args.lam_signal is not None and args.method not in ("spd", "alg1"):
        raise UserError(
            f"--lam-signal applies to --method spd or alg1; '{args.method}' is defined "
            "by its own published signal (doremi: excess; groupdro, afl: nll)"
        )
    signal = args.lam_signal
    t0 = time.perf_counter()
    run = run_method(
        problem,
        args.method,
        signal,
        gate=args.gate,
        support=args.support,
        steps=steps,
        seed=args.seed,
        device=device,
    )
    seconds = time.perf_counter() - t0
    out = {
        "worst_case_kl": run.grade["worst_case_kl"],
        "Z": run.grade["Z"],
        "exact_value": run.exact_value,
        "suboptimality": run.grade["suboptimality"],
        "lambda": run.lam.tolist(),
        "steps": steps,
        "method": args.method,
        "lam_signal": run.lam_signal,
        "gate": args.gate if args.method != "alg1" else "table",
        "support": args.support,
        "seed": args.seed,
        "device": device,
        "mu": None if run.mu != run.mu else run.mu,
        "per_domain_kl": run.grade["per_domain_kl"].tolist(),
        "seconds": seconds,
    }
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"method: {args.method}   lam signal: {out['lam_signal']}   gate: {out['gate']}   "
        f"support: {args.support}   steps: {steps}   seed: {args.seed}   "
        f"({seconds:.1f} s on {device})"
    )
    print(
        f"worst-case KL = {out['worst_case_kl']:.6g} nats "
        f"(exact, gate normalised by Z = {out['Z']:.6g})"
    )
    print(f"exact value V* = {out['exact_value']:.6g}   suboptimality = {out['suboptimality']:.3g}")
    width = max(len(n) for n in problem.names)
    print(f"{'domain':<{width}}  {'lambda':>10}  {'KL(P_k || pi_g / Z)':>20}")
    for name, lam, v in zip(problem.names, out["lambda"], out["per_domain_kl"], strict=True):
        print(f"{name:<{width}}  {lam:>10.6f}  {v:>20.10g}")
    return 0
