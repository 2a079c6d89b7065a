"""Markdown prose -> HTML with markdown-it-py (CommonMark + tables), maths never turned into links.

Report prose is Markdown: ``**bold**``, lists, code spans. Maths in prose is written as code
(```E[k](x)```) and rendered as code. Maths written bare is still safe: a ``[`` glued to a word
or a closing bracket (``E[k](x)``, ``P_k[A](B)``) is function application, never a link, so the
link rule is skipped there and the text stays literal. Raw HTML in prose is escaped.

Data is never markup: a value from run.json or the rows enters prose as a code span (`code`) or
escaped text (`md_text`), every link is a relative path prefixed ``./`` and percent-encoded
(`href`), and the renderer accepts no link or image with a scheme or a host (``http:``,
``javascript:``, ``//host``): such Markdown stays literal text, so no page fetches anything.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import PurePosixPath
from urllib.parse import quote, urlsplit

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["render_markdown", "code", "md_text", "href", "html_outside_code", "is_local_link"]

#: characters that can open inline markup in CommonMark (backslash-escaped by `md_text`)
_MD_PUNCT = re.compile(r"([\\`*_\[\]!|~])")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)


def code(value) -> str:
    """``value`` as one Markdown code span, whatever backticks it holds (a fence longer than its
    longest run of backticks; line breaks become spaces): shown literally, never markup."""
    text = " ".join(str(value).splitlines())
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_text(value) -> str:
    """``value`` as literal Markdown text: ``& < >`` as entities, every other markup character
    backslash-escaped, line breaks as spaces (a name can open no link, image, tag or block)."""
    text = " ".join(str(value).splitlines())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_PUNCT.sub(r"\\\1", text)


def href(path) -> str:
    """A link target for a file below the page's folder: ``./`` + the percent-encoded relative
    POSIX path (a ``:`` in a folder name is encoded, so it can never read as a scheme)."""
    rel = PurePosixPath(str(path).replace("\\", "/")).as_posix().lstrip("/")
    return "./" + quote(rel, safe="/")


def is_local_link(url: str) -> bool:
    """True for a relative link (no scheme, no host) or an in-page anchor; a ``data:image/``
    URI (an embedded figure) too."""
    url = url.strip()
    if url.startswith("data:image/"):
        return True
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and not url.startswith("//")


def html_outside_code(text: str) -> str:
    """``text`` (Markdown) with ``<`` and ``>`` as entities outside code spans, so report.md
    holds no raw HTML whatever a viewer does with it; code spans are shown literally anyway."""
    out, at = [], 0
    for m in _CODE_SPAN.finditer(text):
        out.append(text[at : m.start()].replace("<", "&lt;").replace(">", "&gt;"))
        out.append(m.group(0))
        at = m.end()
    out.append(text[at:].replace("<", "&lt;").replace(">", "&gt;"))
    return "".join(out)


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


_LOCAL = ("./", "../", "#")


def _local_only(md: MarkdownIt) -> None:
    """Links and images only to relative paths (prefixed ``./``) and anchors: markdown-it leaves
    a link, image, autolink or reference whose target fails ``validateLink`` as literal text."""
    normalize = md.normalizeLink

    def normal(url: str) -> str:
        url = normalize(url)
        if not is_local_link(url) or url.strip().startswith("data:"):
            return url  # refused by validate: markdown-it blanks it
        return url if url.startswith(_LOCAL) else "./" + url

    md.normalizeLink = normal
    md.validateLink = lambda url: url.startswith(_LOCAL)


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    _no_glued_links(md)
    _local_only(md)
    return md


def render_markdown(text: str) -> Markup:
    """HTML for Markdown ``text`` (safe to insert into a Jinja template unescaped)."""
    return Markup(_renderer().render(text or ""))
