"""Outputs of `run_checks`: the printed verdict table, verdicts.csv/json, mutations.csv,
counterexample problem files, and report.md + index.html (one section per claim) via
`modgen_bench.reporting`.

Table columns beyond the margin: ``ratio_median`` and ``ratio_max`` (tightness: the smaller side
of the claimed inequality over the larger, 1 = attained, > 1 = violated; empty for identities)
and ``power`` (plausible wrong variants of this reading that the check rejects, caught/tried)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from modgen_bench.atomic import write_frame, write_json
from modgen_bench.provenance import provenance
from modgen_bench.reporting import Section, verdict_headline, write_report

__all__ = ["print_table", "write_outputs", "save_counterexamples", "save_figure"]


def save_figure(fig, fig_dir, name: str, caption: str, alt: str = ""):
    """Save a check's figure as ``fig_dir/name.png`` and ``.svg`` and close it; returns a
    `modgen_bench.reporting.Figure` (caption, PNG path, alt text: ``alt`` or the caption)."""
    from modgen_bench.reporting import Figure
    from modgen_bench.reporting import save_figure as save

    path = save(fig, f"{fig_dir}/{name}.png", alt=alt or caption)
    return Figure(caption, path, alt or caption)


TABLE_COLUMNS = [
    "claim",
    "reading",
    "instances",
    "status",
    "worst_margin",
    "certificate",
    "tight",
    "violations",
    "ratio_median",
    "ratio_max",
    "power",
]
MUTATION_COLUMNS = [
    "claim",
    "reading",
    "mutation",
    "error",
    "status",
    "caught",
    "violations",
    "instances",
]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def table(verdicts) -> pd.DataFrame:
    return pd.DataFrame([v.row() for v in verdicts])


def print_table(verdicts) -> None:
    df = table(verdicts)[TABLE_COLUMNS]
    with pd.option_context("display.width", 200, "display.max_colwidth", 48):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def save_counterexamples(out: Path, verdicts) -> None:
    """Save each failing verdict's worst instance as counterexamples/<claim>__<reading>.json."""
    for v in verdicts:
        if v.counterexample is not None:
            path = out / "counterexamples" / f"{v.claim}__{_slug(v.reading)}.json"
            v.counterexample.save(path)
            v.counterexample_file = str(path.relative_to(out))


def _plain(text: str) -> str:
    """Plain text (readings, notes: ``lam* weights``) made literal in Markdown: `*` never
    emphasises."""
    return str(text).replace("*", "\\*")


def _section(claim: str, verdicts, doc: str, seconds: float, results=()) -> Section:
    """A claim's section: its module docstring, one bullet per reading (status in bold, tightness,
    the counterexample file linked), its mutations (caught or not), the verdict rows and the
    check's figures."""
    lines = [doc.strip(), ""]
    for v in verdicts:
        ratio = (
            f"; tightness (smaller / larger side) median {v.ratio_median:.3g}, max "
            f"{v.ratio_max:.3g} over {v.ratios}"
            if v.ratios
            else ""
        )
        lines.append(
            f"- **{_plain(v.reading)}: {v.status}** on {v.instances} instances ({v.violations} "
            f"violations, {v.tight} tight{ratio}); worst margin {v.worst_margin:.4g} nats at "
            f"`{v.worst_instance}`; certificate {v.certificate:.2g}. {_plain(v.note)}"
            + (
                f" Counterexample: [{v.counterexample_file}]({v.counterexample_file})."
                if v.counterexample_file
                else ""
            )
        )
    mine = [r for r in results if r.mutation.claim == claim]
    if mine:
        lines.append(f"\nMutation power ({sum(r.caught for r in mine)}/{len(mine)} caught):\n")
        lines += [
            f"- {_plain(r.mutation.name)} ({_plain(r.mutation.error)}) on "
            f"'{_plain(r.mutation.reading)}': **{'caught' if r.caught else 'NOT caught'}** "
            f"({r.violations}/{r.instances} violations)"
            for r in mine
        ]
    lines.append(f"\n({seconds:.1f} s)")
    rows = table(verdicts)[TABLE_COLUMNS]
    figures = [fig for v in verdicts for fig in v.figures]
    return Section(claim, text="\n".join(lines), tables=[("Verdicts", rows)], figures=figures)


def write_outputs(out: Path, verdicts, seconds: dict, mutation_results=(), **config) -> None:
    """verdicts.csv, verdicts.json (rows + provenance), mutations.csv, counterexamples,
    report.md, index.html."""
    from . import CLAIMS
    from .mutations import table as mutation_table

    save_counterexamples(out, verdicts)
    df = table(verdicts)
    write_frame(out / "verdicts.csv", df)
    muts = mutation_table(mutation_results)
    if len(muts):
        write_frame(out / "mutations.csv", muts)
    prov = provenance(config=config, seconds=seconds, device="cpu")
    payload = {
        "verdicts": [v.row() for v in verdicts],
        "mutations": muts.to_dict(orient="records"),
        "provenance": prov,
    }
    write_json(out / "verdicts.json", payload, indent=1)
    sections = [Section("Verdict table", tables=[("All claims", df[TABLE_COLUMNS])])]
    if len(muts):
        sections.append(
            Section(
                "Mutation power",
                text=MUTATION_TEXT.format(budget=config.get("mutation_budget")),
                tables=[("Mutations", muts[MUTATION_COLUMNS])],
            )
        )
    for claim in seconds:
        doc = sys.modules[CLAIMS[claim].__module__].__doc__ or ""
        mine = [v for v in verdicts if v.claim == claim]
        sections.append(_section(claim, mine, doc, seconds[claim], mutation_results))
    write_report(
        out, "modgen-bench theory checks", sections, [prov], headlines=[headline(verdicts, config)]
    )


MUTATION_TEXT = (
    "Each check re-run ({budget} instances, same seed) on plausible wrong versions of its claim "
    "(theory_checks/mutations.py): a constant off by a factor 2 in the direction that makes the "
    "statement false, a sign flipped, a square root lost, a term dropped or counted twice, the "
    "wrong end of the experts' envelope, a planted 10% violation rate. 'caught' = the reading "
    "fails under the mutation. A mutation not caught marks a check with no power against that "
    "error: the bound is looser than the error on every instance (see the tightness columns)."
)


def headline(verdicts, config: dict):
    """Verdict counts (fails in red) and the failing claim readings, each linked to its section."""
    failing = [
        f"[{v.claim}](#{_slug(v.claim)}): {v.reading} (worst margin {v.worst_margin:.3g} nats)"
        for v in verdicts
        if v.status == "fails"
    ]
    h = verdict_headline(
        [v.status for v in verdicts], title="Theory checks: verdicts", failing=failing
    )
    n = config.get("instances")
    if n is not None:
        budget = (
            f"Budget: {n} random instances per check (seed {config.get('seed')}); a check "
            "that holds here may still fail on a larger budget."
        )
        h.text = (
            h.text.replace("\n\nFailing:", f" {budget}\n\nFailing:", 1)
            if failing
            else f"{h.text} {budget}"
        )
    return h
