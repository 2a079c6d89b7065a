"""Markdown prose -> HTML with markdown-it-py (CommonMark + tables), maths never turned into links.

Report prose is Markdown: ``**bold**``, lists, code spans. Maths in prose is written as code
(```E[k](x)```) and rendered as code. Maths written bare is still safe: a ``[`` glued to a word
or a closing bracket (``E[k](x)``, ``P_k[A](B)``) is function application, never a link, so the
link rule is skipped there and the text stays literal. Raw HTML in prose is escaped.
"""
from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["render_markdown"]


def _no_glued_links(md: MarkdownIt) -> None:
    """Wrap the inline ``link`` rule: a ``[`` preceded by a letter, digit, ``_``, ``)`` or ``]``
    opens maths, not a link (CommonMark would link ``E[k](x)`` to the URL ``x``)."""
    original = md.inline.ruler.__rules__[md.inline.ruler.__find__("link")].fn

    def link(state, silent):
        pos = state.pos
        if pos > 0 and (state.src[pos - 1].isalnum() or state.src[pos - 1] in "_)]"):
            return False
        return original(state, silent)

    md.inline.ruler.at("link", link)


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    _no_glued_links(md)
    return md


def render_markdown(text: str) -> Markup:
    """HTML for Markdown ``text`` (safe to insert into a Jinja template unescaped)."""
    return Markup(_renderer().render(text or ""))
