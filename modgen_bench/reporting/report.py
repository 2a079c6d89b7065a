"""report.md and a self-contained index.html (embedded PNGs) from results files alone."""
from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..problem import atomic_write
from ..results import read_results
from .tables import format_mean_se, mean_se_table

__all__ = ["Section", "build_report", "write_report", "default_section"]


@dataclass
class Section:
    """One part of a report: a title, Markdown text, tables and figure files."""

    title: str
    text: str = ""
    tables: list = field(default_factory=list)     # [(caption, DataFrame)]
    figures: list = field(default_factory=list)    # [(caption, Path to a PNG)]


def default_section(title: str, df: pd.DataFrame) -> Section:
    """Every metric as mean ± s.e. over seeds, one row per (case, method, lam)."""
    t = mean_se_table(df)
    t["mean ± s.e."] = [format_mean_se(m, s, n) for m, s, n in zip(t["mean"], t["se"], t["n"])]
    wide = t.pivot_table(index=[c for c in ("case", "method", "lam") if c in t], columns="metric",
                         values="mean ± s.e.", aggfunc="first").reset_index()
    return Section(title, tables=[("All metrics (mean ± s.e. over seeds)", wide)])


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def write_report(out_dir, title: str, sections: list[Section], provenance: list[dict]) -> tuple[Path, Path]:
    """Write report.md (figures linked) and index.html (figures embedded) into ``out_dir``."""
    out_dir = Path(out_dir)
    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        md += [f"## {s.title}", "", s.text, ""]
        body += [f"<h2>{html.escape(s.title)}</h2>", f"<p>{html.escape(s.text)}</p>"]
        for caption, table in s.tables:
            md += [f"**{caption}**", "", _md_table(table), ""]
            body += [f"<h4>{html.escape(caption)}</h4>", table.to_html(index=False, float_format="%.6g")]
        for caption, fig in s.figures:
            fig = Path(fig)
            rel = fig.relative_to(out_dir) if fig.is_relative_to(out_dir) else fig
            md += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
            data = base64.b64encode(fig.read_bytes()).decode()
            body += [f'<figure><img src="data:image/png;base64,{data}" style="max-width:100%">'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>"]
    prov = json.dumps(provenance, indent=2, default=str)
    md += ["## Provenance", "", "```json", prov, "```", ""]
    body += ["<h2>Provenance</h2>", f"<pre>{html.escape(prov)}</pre>"]
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) +
            "</title><style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
            "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
            "</style></head><body>" + "\n".join(body) + "</body></html>")
    md_path, html_path = out_dir / "report.md", out_dir / "index.html"
    atomic_write(md_path, lambda f: f.write("\n".join(md)))
    atomic_write(html_path, lambda f: f.write(page))
    return md_path, html_path


def build_report(root, plugin_reports: dict | None = None) -> tuple[Path, Path]:
    """Rebuild the report of every finished run under ``root`` from results.csv and run.json.

    ``plugin_reports`` maps an experiment name to its plug-in's ``report(df, fig_dir)``;
    experiments without one get `default_section`.
    """
    from ..suites import discover  # the plug-in's own report, found from run.json
    root = Path(root)
    df, infos = read_results(root)
    plugin_reports = dict(plugin_reports or {})
    sections = []
    fig_dir = root / "figures"
    fig_dir.mkdir(exist_ok=True)
    for info in infos:
        name = info.get("experiment", info["path"])
        sub = df[df["experiment"].eq(name)] if "experiment" in df.columns else df
        report = plugin_reports.get(name)
        if report is None and info.get("suite_dir"):
            try:
                exp = {e.name: e for e in discover(info["suite_dir"])}.get(name)
                module = exp.load() if exp else None
                report = getattr(module, "report", None)
            except (ImportError, FileNotFoundError, ValueError) as exc:
                sections.append(Section(f"{name}: plug-in report unavailable", text=str(exc)))
        made = report(sub, fig_dir) if report else [default_section(name, sub)]
        for s in made:
            s.title = f"{name}: {s.title}" if not s.title.startswith(name) else s.title
        sections += made
    title = f"modgen-bench report: {root.name}"
    return write_report(root, title, sections, infos)
