"""The landing page of a reports folder: one link per report found under it.

`make run` leaves several reports (theory checks, each suite and preset); ``build_index(root)``
writes ``root/index.html`` and ``root/index.md`` listing every ``report.md`` below ``root`` with
its title, its first paragraph and links to both renderings, so a reader starts from one page.
"""
from __future__ import annotations

import html
from pathlib import Path

from ..problem import atomic_write

__all__ = ["build_index"]


def _summary(report: Path) -> tuple[str, str]:
    """(title, first paragraph) of a report.md: its H1 and the first prose line under a heading."""
    title, para = report.parent.name, ""
    for line in report.read_text().splitlines():
        if line.startswith("# ") and title == report.parent.name:
            title = line[2:].strip()
        elif line and not line.startswith(("#", "|", "!", "*", "`", "{", "-")) and not para:
            para = line.strip()
            break
    return title, para


def build_index(root="reports") -> tuple[Path, Path]:
    """Write ``root/index.md`` and ``root/index.html`` linking every report under ``root``."""
    root = Path(root)
    reports = sorted(p for p in root.rglob("report.md") if p.parent != root)
    if not reports:
        raise FileNotFoundError(f"no report.md under '{root}': run `modgen-bench check` or "
                                "`modgen-bench run SUITE` first")
    md = ["# modgen-bench reports", ""]
    body = ["<h1>modgen-bench reports</h1>", "<ul>"]
    for rep in reports:
        title, para = _summary(rep)
        rel = rep.parent.relative_to(root)
        md += [f"- **[{title}]({rel / 'report.md'})** ([html]({rel / 'index.html'})): {para}"]
        body += [f"<li><a href='{html.escape(str(rel / 'index.html'))}'><b>{html.escape(title)}</b></a>"
                 f" <code>{html.escape(str(rel))}</code><br>{html.escape(para)}</li>"]
    body.append("</ul>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>modgen-bench reports</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}li{margin:1em 0}"
            "</style></head><body>" + "\n".join(body) + "</body></html>")
    md_path, html_path = root / "index.md", root / "index.html"
    atomic_write(md_path, lambda f: f.write("\n".join(md) + "\n"))
    atomic_write(html_path, lambda f: f.write(page))
    return md_path, html_path
