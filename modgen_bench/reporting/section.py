"""`Section`: one part of a report (a plug-in's ``report(df, fig_dir)`` returns a list of them)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Section"]


@dataclass
class Section:
    """One part of a report: a title, Markdown text, tables and figures; ``level`` 2 to 4."""

    title: str
    text: str = ""
    tables: list = field(default_factory=list)  # [(caption, DataFrame)]
    figures: list = field(default_factory=list)  # [Figure or (caption, path[, alt])]
    level: int = 2
