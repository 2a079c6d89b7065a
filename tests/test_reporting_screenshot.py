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
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not any(shutil.which(b) for b in ("chromium", "chromium-browser",
                                                                   "google-chrome")),
                                 reason="no chromium (apt-get install chromium)")]


def test_screenshots_show_rendered_pages(tmp_path):
    from PIL import Image
    root = tmp_path / "reports"
    shutil.copytree(FIXTURES / "golden_report", root / "suite")
    build_report(root / "suite")
    write_report(root / "checks", "checks", [Section("lemma1", "**fails** on `E[k](x)`")], [{}],
                 headlines=[Headline("Verdicts", "1 fails", counts={"holds": 1, "fails": 1}, tone="bad")])
    build_index(root)
    pages = [root / "suite" / "index.html", root / "checks" / "index.html", root / "index.html"]
    out = subprocess.run([str(REPO / "scripts" / "screenshot_reports.sh"), str(tmp_path / "shots"),
                          *map(str, pages)], capture_output=True, text=True, timeout=300,
                         env={"HEIGHT": "1200", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    for png in map(Path, out.stdout.split()):
        px = np.asarray(Image.open(png).convert("RGB")).astype(int)
        assert (px.sum(axis=2) < 600).mean() > 0.005, f"{png} looks blank"
        if png.stem == "checks":   # the fails badge / headline border: #cf222e
            red = (abs(px[..., 0] - 207) < 30) & (px[..., 1] < 80) & (px[..., 2] < 90)
            assert red.sum() > 200, "no red verdict badge visible"
