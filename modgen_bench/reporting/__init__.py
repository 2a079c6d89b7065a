"""Reports rebuilt from results files alone: pandas tables, matplotlib figures, report.md, index.html."""
from .tables import mean_se_table, format_mean_se
from .report import Section, build_report, write_report
from .index import build_index

__all__ = ["Section", "build_index", "build_report", "write_report", "mean_se_table", "format_mean_se"]
