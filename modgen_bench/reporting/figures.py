"""Figures a reader can read: PNG and SVG side by side, alt text, readable
axes, legends outside the data.

    fig_path = save_figure(fig, fig_dir / "name", alt="what the figure shows")  # name.png +
    name.svg
    auto_yscale(ax, values)      # linear when the data span less than a decade, else log
    legend_outside(ax)           # legend to the right of the axes, never over the data
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_text, write_with

__all__ = ["Figure", "save_figure", "auto_yscale", "legend_outside", "as_figure", "DPI"]

#: PNG resolution (dots per inch); the SVG beside it is resolution-free.
DPI = 150


@dataclass
class Figure:
    """A saved figure: caption (shown under it), PNG path (the SVG sits beside it), alt text."""

    caption: str
    path: Path
    alt: str = ""

    @property
    def svg(self) -> Path | None:
        svg = Path(self.path).with_suffix(".svg")
        return svg if svg.is_file() else None


def as_figure(item) -> Figure:
    """A `Figure` from a Figure or a ``(caption, path[, alt])`` tuple (the older Section form)."""
    if isinstance(item, Figure):
        return item
    caption, path, *alt = item
    return Figure(caption, Path(path), alt[0] if alt else caption)


def save_figure(fig, path, alt: str = "", dpi: int = DPI) -> Path:
    """Lay out ``fig``, write ``path`` as PNG and SVG (atomically), record ``alt`` in
    ``<name>.alt.txt`` and close the figure; returns the PNG path. ``path``'s suffix is ignored."""
    import matplotlib.pyplot as plt

    path = Path(path).with_suffix(".png")
    try:
        fig.tight_layout()
    except (ValueError, RuntimeError):  # tight_layout cannot place some outside legends: keep bbox
        pass
    for suffix in (".png", ".svg"):
        write_with(
            path.with_suffix(suffix),
            lambda tmp, suffix=suffix: fig.savefig(
                tmp,
                dpi=dpi,
                bbox_inches="tight",
                format=suffix[1:],
                metadata={"Date": None} if suffix == ".svg" else None,
            ),
        )
    if alt:
        write_text(path.with_suffix(".alt.txt"), alt)
    plt.close(fig)
    return path


def auto_yscale(ax, values, floor: float = 0.0) -> str:
    """Linear y axis when the finite positive ``values`` span less than a decade (or include
    values <= ``floor``), else log; returns the scale set. Tick labels stay on either way."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0 or v.min() <= floor or v.max() / v.min() < 10.0:
        ax.set_yscale("linear")
        return "linear"
    ax.set_yscale("log")
    return "log"


def legend_outside(ax, title: str | None = None, fontsize: int = 8):
    """Put ``ax``'s legend to the right of the axes (outside the data), in one column."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(
        handles,
        labels,
        title=title,
        fontsize=fontsize,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        frameon=False,
    )
