"""Figure layout: nothing a reader needs is drawn over something else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import modgen_bench.reporting.headline as headline


def test_difference_figure_ylabel_clears_the_title(tmp_path, monkeypatch):
    """Five-domain mixtures (tick labels as text) and the real-text study's long y label: the
    label, laid out as `save_figure` lays it out, must not touch the title."""
    seen = {}

    def capture(fig, path, alt=""):
        fig.tight_layout()
        fig.canvas.draw()
        r, ax = fig.canvas.get_renderer(), fig.axes[0]
        seen["ylabel"] = ax.yaxis.label.get_window_extent(r)
        seen["title"] = ax.title.get_window_extent(r)
        return Path(path)

    monkeypatch.setattr(headline, "save_figure", capture)
    lams = ["0,0,0,0,1", "0,0,0,1,0", "0,0,0.5,0.5,0", "0.2,0.2,0.2,0.2,0.2", "1,0,0,0,0"]
    diff = pd.DataFrame(
        {
            "lam": lams,
            "x": np.nan,
            "mean": 0.01,
            "se": 0.05,
            "n": 2,
            "lo": -0.1,
            "hi": 0.3,
            "decision": "undecided",
        }
    )
    headline.difference_figure(
        diff,
        tmp_path / "d",
        "gate_excess_logZ",
        "mono_uniform",
        "nll_per_token difference (nats/token)",
    )
    assert seen["ylabel"].height > 0 and seen["title"].width > 0
    assert not seen["ylabel"].overlaps(seen["title"])
