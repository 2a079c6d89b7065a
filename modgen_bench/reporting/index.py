"""The landing page of a reports folder: one entry per report found under it, summarised by that
report's headline boxes (``headline.json``, written by `write_report`), not by its first line.

`make run` leaves several reports (theory checks, each suite and preset); ``build_index(root)``
writes ``root/index.html`` and ``root/index.md`` from a Jinja2 template.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text

__all__ = ["build_index"]


def _summary(report: Path) -> tuple[str, str]:
    """(title, first paragraph) of a report.md without headline.json (older reports)."""
    title, para = report.parent.name, ""
    for line in report.read_text().splitlines():
        if line.startswith("# ") and title == report.parent.name:
            title = line[2:].strip()
        elif line and not line.startswith(("#", "|", "!", "*", "`", "{", "-", "[", ">", "<")) and not para:
            para = line.strip()
            break
    return title, para


def _entry(rep: Path, root: Path) -> dict:
    rel = rep.parent.relative_to(root).as_posix()
    title, summary = _summary(rep)
    heads = []
    hj = rep.parent / "headline.json"
    if hj.is_file():
        data = json.loads(hj.read_text())
        title = data.get("title", title)
        for h in data.get("headlines", []):
            fig = None
            if h.get("figure"):
                png = f"{rel}/{h['figure']}"
                svg = png[:-4] + ".svg" if (root / png[:-4]).with_suffix(".svg").is_file() else None
                alt_file = (root / png).with_suffix(".alt.txt")
                alt = alt_file.read_text() if alt_file.is_file() else h["title"]
                from .report import _css_width
                fig = {"src": png, "png": png, "svg": svg, "alt": alt, "caption": h["title"],
                       "width": _css_width(root / png) if (root / png).is_file() else None}
            text = h.get("text", "").replace("](#", f"]({rel}/index.html#")   # in-report anchors
            heads.append({"title": h["title"], "text": text, "counts": h.get("counts", {}),
                          "tone": h.get("tone", "neutral"), "figure": fig})
    return {"title": title, "rel": rel, "href": f"{rel}/index.html", "md": f"{rel}/report.md",
            "summary": summary, "headlines": heads}


def build_index(root="reports") -> tuple[Path, Path]:
    """Write ``root/index.md`` and ``root/index.html`` summarising every report under ``root``."""
    from .report import _env
    root = Path(root)
    reports = sorted(p for p in root.rglob("report.md") if p.parent != root)
    if not reports:
        raise FileNotFoundError(f"no report.md under '{root}': run `modgen-bench check` or "
                                "`modgen-bench run SUITE` first")
    entries = [_entry(rep, root) for rep in reports]
    html = _env().get_template("index.html.j2").render(title="modgen-bench reports", root=str(root),
                                                       entries=entries)
    md = ["# modgen-bench reports", ""]
    for e in entries:
        md += [f"## [{e['title']}]({e['md']})", "", f"`{e['rel']}` ([html]({e['href']}))", ""]
        for h in e["headlines"] or [{"title": "", "text": e["summary"], "counts": {}}]:
            counts = ", ".join(f"{n} {k}" for k, n in h["counts"].items())
            md += [f"> **{h['title']}**" + (f" — {counts}" if counts else ""), ">",
                   "> " + h["text"].replace("\n", "\n> "), ""]
    md_path, html_path = root / "index.md", root / "index.html"
    write_text(md_path, "\n".join(md) + "\n")
    write_text(html_path, html)
    return md_path, html_path
