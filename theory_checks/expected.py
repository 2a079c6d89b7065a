"""Pinned verdicts: what `modgen-bench check --strict` compares a run against.

``expected.json`` (beside this file, shipped in the wheel) records, for one budget and seed, the
status of every (claim, reading) and, for each reading that fails, ``min_instances``: the
smallest budget on `LADDER` at which the same seed already finds the counterexample. A run with
a smaller ``--instances`` gets a warning before it starts: its 'holds' is not evidence.

Re-pin after a deliberate change (a fixed check, a new claim) with::

    python -m theory_checks.expected --instances 2000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from modgen_bench.errors import UserError

__all__ = ["EXPECTED", "LADDER", "load", "differences", "budget_warnings", "pin"]

EXPECTED = Path(__file__).with_name("expected.json")
#: budgets tried, smallest first, to find where a pinned counterexample first shows up
LADDER = (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 100, 200, 500, 1000, 2000)

log = logging.getLogger(__name__)


def load(path: str | Path | None = None) -> dict:
    """The pinned expectation (``{"instances", "seed", "verdicts": {claim: {reading: {...}}}}``)."""
    path = Path(path) if path is not None else EXPECTED
    if not path.is_file():
        raise FileNotFoundError(
            f"no pinned expectation file '{path}' (make one with "
            "'python -m theory_checks.expected')"
        )
    try:
        pinned = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise UserError(f"--expected {path}: not valid JSON ({exc})") from None
    _check_shape(pinned, path)
    return pinned


def _check_shape(pinned, path: Path) -> None:
    """`UserError` naming the file unless ``pinned`` is ``{"instances": int, "seed": int,
    "verdicts": {claim: {reading: {"status": str, ["min_instances": int]}}}}``."""

    def bad(rule: str):
        return UserError(
            f"--expected {path}: {rule} (write one with "
            "'python -m theory_checks.expected --out FILE')"
        )

    if not isinstance(pinned, dict) or not isinstance(pinned.get("verdicts"), dict):
        raise bad("expected an object with a 'verdicts' object")
    for key in ("instances", "seed"):
        if isinstance(pinned.get(key), bool) or not isinstance(pinned.get(key), int):
            raise bad(f"'{key}' must be an integer")
    for claim, readings in pinned["verdicts"].items():
        if not isinstance(readings, dict):
            raise bad(f"verdicts['{claim}'] must be an object of readings")
        for reading, want in readings.items():
            need = want.get("min_instances") if isinstance(want, dict) else None
            if (
                not isinstance(want, dict)
                or not isinstance(want.get("status"), str)
                or not (need is None or isinstance(need, int) and not isinstance(need, bool))
            ):
                raise bad(
                    f"verdicts['{claim}']['{reading}'] must be {{\"status\": text, "
                    'optional "min_instances": integer}'
                )


def differences(verdicts, pinned: dict) -> list[str]:
    """One line per verdict whose status differs from the pin (or that the pin does not know).

    Claims that were not run are not compared: ``check thm3`` is judged on thm3 alone.
    """
    out = []
    for v in verdicts:
        want = pinned["verdicts"].get(v.claim, {}).get(v.reading)
        if want is None:
            out.append(f"{v.claim} [{v.reading}]: {v.status}, not in the pinned expectation")
        elif want["status"] != v.status:
            out.append(
                f"{v.claim} [{v.reading}]: {v.status}, pinned {want['status']} "
                f"(at --instances {pinned['instances']} --seed {pinned['seed']})"
            )
    return out


def budget_warnings(claims, instances: int, pinned: dict) -> list[str]:
    """A line per pinned counterexample that ``instances`` is too small to have found."""
    out = []
    for claim in claims:
        for reading, want in pinned["verdicts"].get(claim, {}).items():
            need = want.get("min_instances")
            if want["status"] == "fails" and need is not None and instances < need:
                out.append(
                    f"{claim} [{reading}]: --instances {instances} is below the {need} that "
                    f"found its counterexample in the pinned run (seed {pinned['seed']}); "
                    "a 'holds' at this budget is not evidence"
                )
    return out


def pin(instances: int, seed: int, claims=()) -> dict:
    """Run the checks at (instances, seed); for each failing reading, scan `LADDER` upwards for
    the smallest budget at which it already fails."""
    from . import CLAIMS, run_claims

    names = list(claims) or list(CLAIMS)
    verdicts, _ = run_claims(names, instances, seed)
    table = {}
    for v in verdicts:
        table.setdefault(v.claim, {})[v.reading] = {"status": v.status}
    for claim in names:
        failing = {r for r, w in table[claim].items() if w["status"] == "fails"}
        for n in (n for n in LADDER if n < instances):
            if not failing:
                break
            found, _ = run_claims([claim], n, seed)
            for v in found:
                if v.reading in failing and v.status == "fails":
                    table[claim][v.reading]["min_instances"] = n
                    failing.discard(v.reading)
        for reading in failing:
            table[claim][reading]["min_instances"] = instances
    return {"instances": instances, "seed": seed, "verdicts": table}


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m theory_checks.expected",
        description="pin the verdicts `check --strict` compares against",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--instances", type=int, default=2000, help="budget of the pinned run")
    ap.add_argument("--seed", type=int, default=0, help="seed of the pinned run")
    ap.add_argument("--out", default=str(EXPECTED), help="file to write")
    args = ap.parse_args(argv)
    from modgen_bench.logs import configure

    configure()
    pinned = pin(args.instances, args.seed)
    from modgen_bench.atomic import write_text

    write_text(
        args.out, json.dumps(pinned, indent=1, sort_keys=True) + "\n"
    )  # temp file, then rename
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
