"""The landing page of a reports folder: one entry per report found under it, summarised by that
report's headline boxes (``headline.json``, written by `write_report`), not by its first line.

`make run` leaves several reports (theory checks, each suite and preset); ``build_index(root)``
writes ``root/index.html`` and ``root/index.md`` from a Jinja2 template. A report folder may come
from someone else: its ``headline.json`` is data (fields of the wrong type are errors naming the
file), a figure it names must be a regular file inside that report's folder, and every link is a
relative, percent-encoded path (`markdown.href`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import write_text
from ..errors import UserError
from .markdown import code, href, html_outside_code, md_text

__all__ = ["build_index"]


def _summary(report: Path) -> tuple[str, str]:
    """(title, first paragraph) of a report.md without headline.json (older reports)."""
    title, para = report.parent.name, ""
    for line in report.read_text(errors="replace").splitlines():
        if line.startswith("# ") and title == report.parent.name:
            title = line[2:].strip()
        elif (
            line
            and not line.startswith(("#", "|", "!", "*", "`", "{", "-", "[", ">", "<"))
            and not para
        ):
            para = line.strip()
            break
    return title, para


def _inside(folder: Path, name) -> Path | None:
    """``folder/name`` when it is a regular file (no symlink) whose real path lies inside
    ``folder``; else None."""
    if not isinstance(name, str) or not name or "\0" in name:
        return None
    path = folder / name
    real, base = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([real, base]) != base or path.is_symlink() or not path.is_file():
        return None
    return path


def _headlines(hj: Path) -> tuple[str | None, list]:
    """(title, headline dicts) of a headline.json, its types checked."""
    try:
        data = json.loads(hj.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{hj}: not readable JSON ({exc})") from None
    heads = data.get("headlines", []) if isinstance(data, dict) else None
    if not isinstance(heads, list) or not all(isinstance(h, dict) for h in heads):
        raise UserError(f"{hj}: expected an object whose 'headlines' is a list of objects")
    for h in heads:
        for key, kind in (("title", str), ("text", str), ("counts", dict), ("tone", str)):
            if key in h and not isinstance(h[key], kind):
                raise UserError(f"{hj}: headline field '{key}' must be a {kind.__name__}")
    title = data.get("title")
    return (str(title) if title is not None else None), heads


def _figure(folder: Path, root: Path, h: dict) -> dict | None:
    from .report import _css_width

    png = _inside(folder, h.get("figure"))
    if png is None:
        return None
    svg = _inside(folder, Path(h["figure"]).with_suffix(".svg").as_posix())
    alt_file = _inside(folder, Path(h["figure"]).with_suffix(".alt.txt").as_posix())
    alt = alt_file.read_text(errors="replace") if alt_file else h.get("title", "")
    link = href(png.relative_to(root).as_posix())
    return {
        "src": link,
        "png": link,
        "svg": href(svg.relative_to(root).as_posix()) if svg else None,
        "alt": alt,
        "caption": h.get("title", ""),
        "width": _css_width(png),
    }


def _entry(rep: Path, root: Path) -> dict:
    folder = rep.parent
    rel = folder.relative_to(root).as_posix()
    title, summary = _summary(rep)
    heads = []
    hj = folder / "headline.json"
    if hj.is_file() and not hj.is_symlink():
        named, found = _headlines(hj)
        title = named or title
        for h in found:
            # in-report anchors point into that report's page
            text = h.get("text", "").replace("](#", f"]({href(rel)}/index.html#")
            heads.append(
                {
                    "title": h.get("title", ""),
                    "text": text,
                    "counts": h.get("counts", {}),
                    "tone": h.get("tone", "neutral"),
                    "figure": _figure(folder, root, h),
                }
            )
    return {
        "title": title,
        "rel": rel,
        "href": href(f"{rel}/index.html"),
        "md": href(f"{rel}/report.md"),
        "summary": summary,
        "headlines": heads,
    }


def build_index(root="reports") -> tuple[Path, Path]:
    """Write ``root/index.md`` and ``root/index.html`` summarising every report under ``root``;
    an index.html there that is a report page (`report.written_by`) is never overwritten."""
    from .report import INDEX_GENERATOR, _env, written_by

    root = Path(root)
    reports = sorted(p for p in root.rglob("report.md") if p.parent != root and not p.is_symlink())
    if not reports:
        raise UserError(
            f"no report.md under '{root}': run `modgen-bench check` or "
            "`modgen-bench run SUITE` first"
        )
    written_by(root / "index.html", INDEX_GENERATOR, "report --index")
    entries = [_entry(rep, root) for rep in reports]
    html = (
        _env()
        .get_template("index.html.j2")
        .render(
            title="modgen-bench reports", root=str(root), entries=entries, generator=INDEX_GENERATOR
        )
    )
    md = ["# modgen-bench reports", ""]
    for e in entries:
        md += [
            f"## [{md_text(e['title'])}]({e['md']})",
            "",
            f"{code(e['rel'])} ([html]({e['href']}))",
            "",
        ]
        for h in e["headlines"] or [{"title": "", "text": e["summary"], "counts": {}}]:
            counts = ", ".join(f"{md_text(n)} {md_text(k)}" for k, n in h["counts"].items())
            md += [
                f"> **{md_text(h['title'])}**" + (f" — {counts}" if counts else ""),
                ">",
                "> " + html_outside_code(str(h["text"])).replace("\n", "\n> "),
                "",
            ]
    md_path, html_path = root / "index.md", root / "index.html"
    write_text(md_path, "\n".join(md) + "\n")
    write_text(html_path, html)
    return md_path, html_path
