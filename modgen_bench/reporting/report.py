"""report.md and index.html from results files alone, through Jinja2 templates.

A report is: a title, headline boxes (`Headline`: the answer at a glance), sections (Markdown
prose rendered by markdown-it-py, tables, figures with alt text and PNG/SVG links), links to every
data file under the folder, and provenance folded into ``<details>``. ``headline.json`` beside
the report feeds the landing page (`build_index`).

`build_report` gives every finished run its own section (runs never pool): rows go to
the plug-in's ``report(df, fig_dir)`` only when the plug-in comes from an installed suite folder
or one the user trusts (``report --trust-plugins DIR``); a path read from the results is never
imported. Otherwise the run gets `default_section`, a generic table of its tidy rows.
"""

from __future__ import annotations

import base64
import json
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from markupsafe import Markup, escape

from ..atomic import confined, ensure_dir, read_bytes_nofollow, write_json, write_text
from ..errors import UserError
from ..results import Run, read_runs
from .figures import as_figure
from .headline import Headline, auto_headline
from .markdown import code, href, html_outside_code, md_text, render_markdown
from .section import Section
from .tables import format_mean_se, mean_se_table

__all__ = ["Section", "build_report", "write_report", "default_section", "data_files"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"
#: data files a reader may want, linked from the report (figures and checkpoints are not listed).
DATA_PATTERNS = ("*.csv", "*.parquet", "*.json", "*.npz", "*.txt")
_SKIP_DIRS = {"figures", "ckpt", "checkpoints", "cache", "__pycache__"}
#: the ``<meta name="generator">`` of a report page and of a landing page: a page is rewritten
#: only by the command that wrote it (`written_by`)
REPORT_GENERATOR = "modgen-bench report"
INDEX_GENERATOR = "modgen-bench index"


#: columns that never split the generic table (bookkeeping, or the value itself)
_NOT_KEYS = {"value", "seed", "suite", "experiment", "run"}


def default_section(title: str, df: pd.DataFrame) -> Section:
    """The generic renderer of tidy rows: every metric as mean ± s.e. over seeds, one row per
    (case, method, lam and every extra column such as step), so only seeds are ever pooled."""
    keys = ["case", "method", "lam"] + [
        c for c in df.columns if c not in _NOT_KEYS | {"case", "method", "lam", "metric"}
    ]
    keys = [k for k in keys if k in df.columns]
    filled = df.assign(**{k: df[k].fillna("") if df[k].dtype == object else df[k] for k in keys})
    t = mean_se_table(filled, by=(*keys, "metric"))
    t["mean ± s.e."] = [
        format_mean_se(m, s, n) for m, s, n in zip(t["mean"], t["se"], t["n"], strict=True)
    ]
    wide = (
        t.pivot_table(
            index=keys, columns="metric", values="mean ± s.e.", aggfunc="first", dropna=False
        )
        .dropna(how="all")
        .reset_index()
    )
    return Section(
        title,
        text=f"{len(df)} rows; seeds pooled as mean ± s.e. (n = seeds).",
        tables=[("All metrics (mean ± s.e. over seeds)", wide)],
    )


@lru_cache(maxsize=1)
def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = render_markdown
    env.filters["breakable"] = breakable
    return env


def breakable(text) -> Markup:
    """``text`` escaped, with a line-break opportunity (``<wbr>``) after each underscore, so a
    header such as ``compute_ratio`` can wrap and a wide table fits the page."""
    return Markup(str(escape(str(text))).replace("_", "_<wbr>"))


@lru_cache(maxsize=1)
def _md_env():
    """Markdown output keeps the template's blank lines (they separate Markdown blocks). Every
    value is literal text (`md_text`: no markup, no HTML) unless a filter says what it is: prose
    (``md``: Markdown with HTML escaped outside code spans) or prepared Markdown (``safe``)."""
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        finalize=lambda v: v if isinstance(v, Markup) else Markup(md_text(v)),
    )
    env.filters["md"] = lambda text: Markup(html_outside_code(str(text)))
    env.filters["quote"] = lambda text: Markup(html_outside_code(str(text)).replace("\n", "\n> "))
    return env


def _render_md(**ctx) -> str:
    text = _md_env().get_template("report.md.j2").render(**ctx)
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.6g}"
    if v is None or v is pd.NA:
        return ""
    return str(v)


_STATUS_COLUMNS = {"status", "verdict", "decision"}


def _table_view(caption: str, df: pd.DataFrame) -> dict:
    """Cells as text with a CSS class: numbers right-aligned, verdict statuses coloured."""
    df = df.reset_index(drop=True)
    cols = [str(c) for c in df.columns]
    rows = []
    for rec in df.itertuples(index=False):
        row = []
        for c, v in zip(cols, rec, strict=True):
            cls = (
                ("st-" + str(v))
                if c in _STATUS_COLUMNS
                else (
                    "num"
                    if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                    else ""
                )
            )
            row.append({"text": _cell(v), "cls": cls})
        rows.append(row)
    md = ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(md_text(c["text"]) for c in r) + " |" for r in rows]
    return {"caption": caption, "columns": cols, "rows": rows, "markdown": "\n".join(md)}


def _rel(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX), never a ``file:`` URI."""
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def _figure_view(item, out_dir: Path, embed: bool) -> dict:
    f = as_figure(item)
    png = Path(f.path)
    src = (
        f"data:image/png;base64,{base64.b64encode(read_bytes_nofollow(png)).decode()}"
        if embed
        else href(_rel(png, out_dir))
    )
    alt = f.alt
    alt_file = png.with_suffix(".alt.txt")
    if (not alt or alt == f.caption) and alt_file.is_file() and not alt_file.is_symlink():
        alt = alt_file.read_text()
    return {
        "caption": f.caption,
        "alt": alt or f.caption,
        "src": src,
        "png": href(_rel(png, out_dir)),
        "svg": href(_rel(f.svg, out_dir)) if f.svg else None,
        "width": _css_width(png),
    }


def _css_width(png: Path) -> int | None:
    """The PNG's width in CSS pixels (at the dpi its pHYs chunk records, else `DPI`; shown as at
    96 dpi), so every figure shows its fonts at one size whatever its bounding box or dpi; None
    when the header is unreadable."""
    from .figures import DPI

    try:
        head = read_bytes_nofollow(png)[:4096]
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    dpi = DPI
    at = head.find(b"pHYs")  # pixels per metre, written by matplotlib from savefig(dpi=...)
    if at > 0 and head[at + 12] == 1:
        dpi = int.from_bytes(head[at + 4 : at + 8], "big") * 0.0254 or DPI
    return round(int.from_bytes(head[16:20], "big") * 96 / dpi)


def _slug(text: str, seen: set) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, i = base, 2
    while slug in seen:
        slug, i = f"{base}-{i}", i + 1
    seen.add(slug)
    return slug


def data_files(out_dir) -> list[tuple[str, str]]:
    """(label, href) of every data file under ``out_dir`` (results, run.json, verdicts,
    counterexamples, bench tables), skipping figures, checkpoints, symlinks and the report's own;
    the href is ``./`` + the percent-encoded relative path (`markdown.href`)."""
    out_dir = Path(out_dir)
    own = {"headline.json"}
    found = set()
    for pat in DATA_PATTERNS:
        for p in out_dir.rglob(pat):
            rel = p.relative_to(out_dir)
            if p.name in own and p.parent == out_dir or p.name.startswith("."):
                continue
            if _SKIP_DIRS & set(rel.parts[:-1]) or p.name.endswith(".alt.txt") or p.is_symlink():
                continue
            found.add(rel.as_posix())
    return [(rel, href(rel)) for rel in sorted(found, key=lambda r: (r.count("/"), r))]


def _provenance_view(p: dict) -> dict:
    """A one-line readable summary and the folded JSON of one provenance record."""
    label = p.get("path") or p.get("experiment") or ""
    bits = []
    if p.get("experiment"):
        bits.append(
            code(p["experiment"]) + (f" run {code(p['run_key'])}" if p.get("run_key") else "")
        )
    version = p.get("code_version") if isinstance(p.get("code_version"), dict) else {}
    commit = p.get("git_commit") or version.get("git_commit")
    if commit:
        dirty = "+dirty" if str(commit).endswith("+dirty") else ""
        bits.append(f"commit {code(str(commit)[:12] + dirty)}")
    if version.get("source"):
        bits.append(f"source hash {code(version['source'])}")
    for key in ("preset", "device", "finished"):
        if p.get(key):
            bits.append(f"{key} {code(p[key])}")
    seconds = p.get("wall_seconds")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        bits.append(f"{float(seconds):.1f} s")
    if isinstance(p.get("overrides"), dict) and p["overrides"]:
        bits.append("overrides " + ", ".join(code(f"{k}={v}") for k, v in p["overrides"].items()))
    return {
        "label": str(label),
        "summary": "; ".join(bits) or "provenance",
        "json": json.dumps(p, indent=2, default=str),
    }


def _page_kind(path: Path) -> str | None:
    """'report', 'index' (a landing page) or None (another file) for an existing index.html,
    by its ``generator`` meta or, for pages written before it, by their layout."""
    head = read_bytes_nofollow(path)[:4096].decode("utf-8", errors="replace")
    for kind, gen in (("report", REPORT_GENERATOR), ("index", INDEX_GENERATOR)):
        if f'<meta name="generator" content="{gen}">' in head:
            return kind
    return "index" if 'class="landing"' in head else "report" if "all reports</a>" in head else None


def written_by(page: Path, generator: str, command: str) -> None:
    """`UserError` unless ``page`` is absent or was written by ``command`` (its generator): a
    report never overwrites a landing page or a file of the user's, nor a landing page a report."""
    if not os.path.lexists(page):
        return
    want = "report" if generator == REPORT_GENERATOR else "index"
    try:
        kind = _page_kind(page)
    except OSError as exc:
        raise UserError(f"'{page}': {exc.strerror or exc}; nothing was overwritten") from None
    if kind == want:
        return
    what = {
        "index": "a landing page (written by `modgen-bench report --index`)",
        "report": "a report page (written by `modgen-bench report`)",
    }.get(kind, "not a page modgen-bench wrote")
    raise UserError(
        f"'{page}' is {what}; `modgen-bench {command}` does not overwrite it "
        "(nothing was written): give the folder it belongs to, or move the file away"
    )


def write_report(
    out_dir,
    title: str,
    sections: list[Section],
    provenance: list[dict],
    headlines: list[Headline] | None = None,
    intro: str = "",
    embed_figures: bool = True,
) -> tuple[Path, Path]:
    """Write report.md, index.html (figures embedded unless ``embed_figures`` is off) and
    headline.json into ``out_dir``; returns (report.md, index.html)."""
    out_dir = Path(out_dir)
    headlines = list(headlines or [])
    seen: set = set()
    views = []
    for s in sections:
        views.append(
            {
                "title": s.title,
                "text": s.text or "",
                "level": min(max(int(s.level), 2), 4),
                "anchor": _slug(s.title, seen),
                "tables": [_table_view(c, t) for c, t in s.tables],
                "figures": [_figure_view(f, out_dir, embed_figures) for f in s.figures],
            }
        )
    heads = [
        {
            "title": h.title,
            "text": h.text,
            "counts": h.counts,
            "tone": h.tone,
            "figure": _figure_view(h.figure, out_dir, embed_figures) if h.figure else None,
        }
        for h in headlines
    ]
    ctx = dict(
        title=title,
        intro=intro,
        headlines=heads,
        sections=views,
        toc=views,
        files=data_files(out_dir),
        provenance=[_provenance_view(p) for p in provenance],
    )
    html = _env().get_template("report.html.j2").render(generator=REPORT_GENERATOR, **ctx)
    md = _render_md(**ctx)
    md_path, html_path = out_dir / "report.md", out_dir / "index.html"
    written_by(html_path, REPORT_GENERATOR, "report")
    write_json(
        out_dir / "headline.json",
        {
            "title": title,
            "headlines": [
                {**h.to_json(), "figure": _rel(h.figure.path, out_dir) if h.figure else None}
                for h in headlines
            ],
        },
    )
    write_text(md_path, md)
    write_text(html_path, html)
    return md_path, html_path


# ---------------------------------------------------------------- suite reports from run folders


def _plugin_report(run: Run, trusted: list[Path], plugin_reports: dict):
    """The ``report`` of the run's plug-in from a trusted folder, or (None, why not)."""
    from ..suites import discover, installed_suite_dir

    name = run.experiment
    if name in plugin_reports:
        return plugin_reports[name], ""
    folders = [*trusted]
    installed = installed_suite_dir(
        str(run.info.get("installed_suite") or run.info.get("suite", ""))
    )
    if installed is not None:
        folders.append(installed)
    for folder in folders:
        try:
            exp = {e.name: e for e in discover(str(folder))}.get(name)
        except (FileNotFoundError, ValueError):
            continue
        if exp is not None:
            return getattr(exp.load(), "report", None), ""
    return None, (
        f"No trusted plug-in for experiment {code(name)} of suite "
        f"{code(run.info.get('suite'))} "
        "(plug-ins come only from the installed suite folders or `report --trust-plugins DIR`; "
        "a folder named inside the results is never imported): generic table of its rows."
    )


def _config_differences(run: Run, peers: list[Run]) -> str:
    """'key: this value (other runs: ...)' for config keys that differ among runs of one
    experiment."""

    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    def config(r):
        return r.info.get("config") if isinstance(r.info.get("config"), dict) else {}

    mine = flat(config(run))
    others = [flat(config(p)) for p in peers]
    keys = sorted(
        {k for o in others for k in set(o) ^ set(mine)}
        | {k for o in others for k in mine if k in o and o[k] != mine[k]}
    )
    lines = [
        f"{code(k)} = {code(mine.get(k, '—'))} (other runs: "
        + ", ".join(code(o.get(k, "—")) for o in others)
        + ")"
        for k in keys
    ]
    src = _source(run)
    if src and any(_source(p) != src for p in peers):
        lines.append(
            f"code source hash {code(src)} (other runs: "
            + ", ".join(code(_source(p)) for p in peers)
            + ")"
        )
    return "; ".join(lines)


def _source(run: Run):
    version = run.info.get("code_version")
    return version.get("source") if isinstance(version, dict) else None


def _run_sections(run: Run, peers: list[Run], root: Path, trusted, plugin_reports):
    """The header section of one run, its plug-in (or generic) sections and its headlines."""
    name, key = run.experiment, run.key
    many = bool(peers)
    newest = many and all(
        str(run.info.get("finished", "")) >= str(p.info.get("finished", "")) for p in peers
    )
    label = f"{name} (run {key}, {'latest' if newest else 'earlier'})" if many else str(name)
    run_dir = root / run.path
    links = " · ".join(
        f"[{f}]({href(Path(run.path, f).as_posix())})"
        for f in ("results.csv", "results.parquet", "run.json")
        if (run_dir / f).is_file()
    )
    meta = [f"Folder {code(run.path)}: {len(run.rows)} rows. {links}"]
    info = run.info
    facts = [
        f"preset {code(info['preset'])}" if info.get("preset") else "",
        f"device {code(info['device'])}" if info.get("device") else "",
        f"finished {code(info['finished'])}" if info.get("finished") else "",
    ]
    if any(facts):
        meta.append(", ".join(f for f in facts if f) + ".")
    if many:
        diff = _config_differences(run, peers)
        meta.append(
            f"**{len(peers) + 1} runs of {code(name)} are under this folder; each has its "
            "own section.** "
            + (f"This run differs in: {diff}." if diff else "Same config; other code or device.")
        )
    report, why = _plugin_report(run, trusted, plugin_reports)
    fig_dir = ensure_dir(run_dir / "figures")
    made = (
        report(run.rows, fig_dir)
        if report
        else [default_section("all metrics (generic table)", run.rows)]
    )
    if why:
        meta.append(why)
    heads, sections = [], [Section(label, "\n\n".join(meta), level=2)]
    for item in made:
        if isinstance(item, Headline):
            heads.append(item)
        else:
            item.level = max(item.level, 3)
            sections.append(item)
    if not heads:
        auto = auto_headline(run.rows, fig_dir)
        heads = [auto] if auto is not None else []
    for h in heads:
        h.title = f"{label}: {h.title}"
    return heads, sections


def build_report(root, plugin_reports: dict | None = None, trusted_dirs=()) -> tuple[Path, Path]:
    """Rebuild the report of every finished run under ``root`` from its results and run.json.

    ``plugin_reports`` maps an experiment name to a ``report(df, fig_dir)``; ``trusted_dirs`` are
    suite folders the user allows code from. Each run gets its own section and figure folder.
    Nothing is written through a symlink inside ``root`` (`atomic.confined`); a folder of
    reports (use ``report --index``) and a page the report did not write are errors.
    """
    with confined(root):
        return _build_report(Path(root), plugin_reports, trusted_dirs)


def _build_report(root: Path, plugin_reports, trusted_dirs) -> tuple[Path, Path]:
    """`build_report` inside its confinement."""
    nested = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("report.md") if p.parent != root
    )
    if nested:
        raise UserError(
            f"'{root}' holds reports of its own ({', '.join(nested[:3])}"
            f"{', ...' if len(nested) > 3 else ''}): report one of their folders, or "
            f"write the landing page with `modgen-bench report --index {root}`"
        )
    written_by(root / "index.html", REPORT_GENERATOR, "report")
    runs = read_runs(root)
    trusted = []
    for d in trusted_dirs:
        if not Path(d).is_dir():
            raise UserError(f"--trust-plugins {d}: no such suite folder")
        trusted.append(Path(d).resolve())
    by_exp: dict[str, list[Run]] = {}
    for r in runs:
        by_exp.setdefault(r.experiment, []).append(r)
    headlines, sections = [], []
    for name in sorted(by_exp):
        group = sorted(
            by_exp[name], key=lambda r: (str(r.info.get("finished", "")), r.path), reverse=True
        )
        for run in group:
            heads, secs = _run_sections(
                run, [p for p in group if p is not run], root, trusted, dict(plugin_reports or {})
            )
            headlines += heads
            sections += secs
    if not headlines:
        headlines = [
            Headline(
                "Runs",
                "; ".join(
                    f"{code(r.experiment)} run {code(r.key)}: {len(r.rows)} rows" for r in runs
                )
                + ". No plug-in headline.",
            )
        ]
    intro = (
        f"{len(runs)} finished run(s) of {len(by_exp)} experiment(s) under {code(root.name)}; "
        "every number below is rebuilt from the runs' results (`results.parquet`, else the "
        "`results.csv` export) and `run.json` "
        "(`modgen-bench report DIR`)."
    )
    return write_report(
        root,
        f"modgen-bench report: {root.name}",
        sections,
        [{**r.info} for r in runs],
        headlines=headlines,
        intro=intro,
    )
