"""`modgen-bench list suites|experiments|presets|claims|methods|examples [--json]`.

Every list is read from where the thing is defined, never restated: suites and examples from the
shipped folders (`modgen_bench.resources`), experiments and presets from the suites' TOML files
(`modgen_bench.suites.discover`), claims from `theory_checks.CLAIMS`, methods from the algorithm
and lam-rule registries (`algorithms.harness.method_names`). Only ``methods`` and ``claims``
import torch / the checks; the others read files.
"""

from __future__ import annotations

import json
import sys

__all__ = ["KINDS", "MethodChoices", "list_items", "list_command"]

KINDS = ("suites", "experiments", "presets", "claims", "methods", "examples")


class MethodChoices:
    """argparse ``choices`` for ``spd --method``, read from the registries when first asked.

    Building the parser must not import torch (`solve` never loads it), so the registries are
    consulted only when an ``spd --method`` value is checked or the help is printed; a lam rule
    registered with ``@LAM_RULES.register("name")`` is then a valid method.
    """

    def _names(self) -> list[str]:
        from .algorithms.harness import method_names

        return method_names()

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def _first_line(text: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join((text or "").strip().split("\n\n")[0].split())


def _suites() -> list[dict]:
    from .resources import bundled, bundled_suites

    return [{"name": name, "path": str(bundled(name))} for name in bundled_suites()]


def _experiments(suites) -> list[dict]:
    from .suites import discover

    rows = []
    for suite in suites:
        for exp in discover(suite):
            rows.append(
                {
                    "suite": suite,
                    "experiment": exp.name,
                    "module": exp.module_name,
                    "presets": sorted(exp.presets),
                    "description": " ".join(exp.description.split()),
                }
            )
    return rows


def _presets(suites) -> list[dict]:
    return [
        {"suite": e["suite"], "experiment": e["experiment"], "preset": p}
        for e in _experiments(suites)
        for p in e["presets"]
    ]


def _claims() -> list[dict]:
    from theory_checks import CLAIMS

    return [
        {"claim": name, "summary": _first_line(sys.modules[check.__module__].__doc__)}
        for name, check in CLAIMS.items()
    ]


def _methods() -> list[dict]:
    from .algorithms.harness import ALGORITHMS, method_names, signal_of

    return [
        {
            "method": name,
            "lam_signal": signal_of(name, None),
            "source": "algorithm" if name in ALGORITHMS else "lam rule (SPD harness)",
        }
        for name in method_names()
    ]


def _examples() -> list[dict]:
    from .resources import bundled

    root = bundled("examples")
    files = sorted(root.glob("*.json")) + sorted(root.glob("*.npz")) if root else []
    return [{"example": f"examples/{f.name}", "path": str(f)} for f in files]


def list_items(kind: str, suite: str | None = None) -> list[dict]:
    """The rows `list KIND` prints; ``suite`` narrows experiments and presets to one suite."""
    if kind not in KINDS:
        raise ValueError(f"unknown list '{kind}'; choose one of {', '.join(KINDS)}")
    suites = [suite] if suite else [s["name"] for s in _suites()]
    return {
        "suites": _suites,
        "claims": _claims,
        "methods": _methods,
        "examples": _examples,
        "experiments": lambda: _experiments(suites),
        "presets": lambda: _presets(suites),
    }[kind]()


def list_command(args) -> int:
    rows = list_items(args.what, suite=args.suite)
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print(f"(no {args.what})")
        return 0
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(_cell(r[k])) for r in rows)) for k in keys[:-1]}
    print("  ".join(k.ljust(widths.get(k, 0)) for k in keys).rstrip())
    for r in rows:
        print("  ".join(_cell(r[k]).ljust(widths.get(k, 0)) for k in keys).rstrip())
    return 0


def _cell(value) -> str:
    return ",".join(value) if isinstance(value, list) else str(value)
