"""Reports rebuilt from results files alone: pandas tables, matplotlib figures, report.md and
index.html from Jinja2 templates, headline boxes, a landing page."""

from .figures import Figure, auto_yscale, legend_outside, save_figure
from .headline import (
    Headline,
    difference_figure,
    gate_vs_monolith_headline,
    paired_differences,
    verdict_headline,
)
from .index import build_index
from .markdown import render_markdown
from .report import Section, build_report, default_section, write_report
from .tables import format_mean_se, mean_se_table

__all__ = [
    "Section",
    "Figure",
    "Headline",
    "build_index",
    "build_report",
    "write_report",
    "default_section",
    "mean_se_table",
    "format_mean_se",
    "save_figure",
    "auto_yscale",
    "legend_outside",
    "verdict_headline",
    "paired_differences",
    "difference_figure",
    "gate_vs_monolith_headline",
    "render_markdown",
]
