"""A report's sentences from Jinja2 templates; the numbers come from the section that calls.

    text = prose("real_text.md.j2", "setup", match="params", counts=counts)

Each piece of prose is a macro of a template (``{% macro setup(match, counts) %}...``), so a
template file holds one report's prose, readable in one place. Paragraphs are wrapped freely in
the template: within a paragraph (up to a blank line) a line break and the indentation around it
read as one space, so the paragraph renders as one line; a blank line starts a new paragraph.
Jinja's ``-`` whitespace control (``{%- if ... %}``) removes that space where a sentence joins
on without one. Values go in as they are: this is Markdown, escaped when the page renders it.
The ``f`` filter applies a format spec (``{{ n | f(",.0f") }}`` is ``format(n, ",.0f")``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

__all__ = ["prose", "unwrap", "TEMPLATES"]

#: the library's templates (report pages and the library reports' prose)
TEMPLATES = Path(__file__).resolve().parent / "templates"


def unwrap(source: str) -> str:
    """Template source with each paragraph on one line: line breaks inside a paragraph (and the
    indentation beside them) become one space; paragraphs stay separated by a blank line."""
    paragraphs = re.split(r"\n[ \t]*\n", source.strip())
    return "\n\n".join(
        " ".join(line.strip() for line in p.splitlines() if line.strip()) for p in paragraphs
    )


@lru_cache(maxsize=8)
def _env(folder: str):
    import jinja2

    class Unwrapped(jinja2.FileSystemLoader):
        def get_source(self, environment, template):
            source, filename, uptodate = super().get_source(environment, template)
            return unwrap(source), filename, uptodate

    env = jinja2.Environment(
        loader=Unwrapped(folder), autoescape=False, undefined=jinja2.StrictUndefined
    )
    env.filters["f"] = format
    return env


def prose(template: str, macro: str, folder: Path | str | None = None, **values) -> str:
    """The text of ``macro`` in ``template`` (under ``folder``; default `TEMPLATES`) with
    ``values`` as its arguments, stripped of surrounding whitespace."""
    module = _env(str(Path(folder or TEMPLATES).resolve())).get_template(template).module
    return str(getattr(module, macro)(**values)).strip()
