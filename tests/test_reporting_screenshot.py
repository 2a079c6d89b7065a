"""Look at a report the way a reader does: headless Chromium renders the golden
report and the landing page; the screenshots must show the page (not blank) with the red of a
failing verdict badge / headline border. Opt-in (-m slow); skipped without chromium.

    .venv/bin/pytest -q -m slow tests/test_reporting_screenshot.py
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from modgen_bench.reporting import Headline, Section, build_index, build_report, write_report

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
        reason="no chromium (apt-get install chromium)",
    ),
]


def test_screenshots_show_rendered_pages(tmp_path):
    from PIL import Image

    root = tmp_path / "reports"
    shutil.copytree(FIXTURES / "golden_report", root / "suite")
    build_report(root / "suite")
    write_report(
        root / "checks",
        "checks",
        [Section("lemma1", "**fails** on `E[k](x)`")],
        [{}],
        headlines=[Headline("Verdicts", "1 fails", counts={"holds": 1, "fails": 1}, tone="bad")],
    )
    build_index(root)
    pages = [root / "suite" / "index.html", root / "checks" / "index.html", root / "index.html"]
    out = subprocess.run(
        [
            str(REPO / "scripts" / "screenshot_reports.sh"),
            str(tmp_path / "shots"),
            *map(str, pages),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HEIGHT": "1200", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    for png in map(Path, out.stdout.split()):
        px = np.asarray(Image.open(png).convert("RGB")).astype(int)
        assert (px.sum(axis=2) < 600).mean() > 0.005, f"{png} looks blank"
        if png.stem == "checks":  # the fails badge / headline border: #cf222e
            red = (abs(px[..., 0] - 207) < 30) & (px[..., 1] < 80) & (px[..., 2] < 90)
            assert red.sum() > 200, "no red verdict badge visible"


def _clipped_tables(page: Path, width: int, tmp_path: Path) -> list:
    """[table index, scroll width, visible width] of every table of ``page`` that needs a
    horizontal scroll in a ``width``-pixel-wide Chromium window."""
    import json
    import re

    browser = next(
        shutil.which(b)
        for b in ("chromium", "chromium-browser", "google-chrome")
        if shutil.which(b)
    )
    probe = (
        "<script>addEventListener('load', () => document.body.dataset.clipped = "
        "JSON.stringify([...document.querySelectorAll('table')].map((t, i) => "
        "[i, t.scrollWidth, t.clientWidth]).filter(r => r[1] > r[2] + 1)));</script>"
    )
    copy = tmp_path / "probe.html"
    copy.write_text(page.read_text().replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--window-size={width},900",
            "--dump-dom",
            copy.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r'data-clipped="([^"]*)"', dom)
    assert found, "the probe did not run"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_a_leaderboard_wide_table_fits_a_1400_pixel_window(tmp_path):
    """The five-domain leaderboard (14 columns, underscored headers, interval cells) shows its
    last column without scrolling at 1400 px; at 800 px it scrolls (the page never overflows)."""
    import pandas as pd

    cell = "2.7272 (-0.0753 [-0.1569, +0.0064])"
    cols = [
        "rank",
        "method",
        "match",
        "params_ratio",
        "compute_ratio",
        "token_ratio",
        "worst vertex",
        "uniform",
        *(f"fortunes-{x}" for x in ("en", "de", "es", "it", "ru")),
        "every mixture vs gate_excess_logZ (Holm)",
    ]
    rows = [
        [i + 1, m, "params", 0.99, 6.45, 1.0, *[cell] * 7, "undecided"]
        for i, m in enumerate(["mono_groupdro", "router_prefix_top1", "gate_excess_logZ"])
    ]
    _, html = write_report(
        tmp_path / "r",
        "wide",
        [Section("Leaderboard", "", tables=[("leaderboard", pd.DataFrame(rows, columns=cols))])],
        [{}],
    )
    assert _clipped_tables(html, 1400, tmp_path) == []
    assert [t[0] for t in _clipped_tables(html, 800, tmp_path)] == [0]
