"""Golden report: a committed tiny results bundle (two configs of one experiment, CSV export only,
a partly blank ``step``) rebuilt into report.md and compared with the committed expectation.

Regenerate the expectation after an intended change with
    MODGEN_REGEN_GOLDEN=1 .venv/bin/pytest -q tests/test_reporting_golden.py
and read the diff of tests/fixtures/golden_report.md before committing it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modgen_bench.reporting import build_index, build_report

FIXTURES = Path(__file__).parent / "fixtures"


def test_golden_report(tmp_path):
    root = tmp_path / "golden"
    shutil.copytree(FIXTURES / "golden_report", root)
    md, html = build_report(root)
    got = md.read_text()
    expected = FIXTURES / "golden_report.md"
    if os.environ.get("MODGEN_REGEN_GOLDEN"):
        expected.write_text(got)
    assert got == expected.read_text()
    page = html.read_text()
    # each config its own section, with its own numbers (not another config's)
    a, b = (
        page.split('id="golden-run-aaaaaaaaaaaa-earlier"')[1],
        page.split('id="golden-run-bbbbbbbbbbbb-latest"')[1],
    )
    a, b = a.split("<h2 ")[0], b.split("<h2 ")[0]
    assert ">0.0938 ± 0.0002 (n=2)<" in a and "1.0938" not in a
    assert ">1.0938 ± 0.0002 (n=2)<" in b and "0.0938" not in b
    landing = build_index(tmp_path)[1].read_text()
    assert (
        "golden/index.html" in landing and "gate-kl vs mono-d16" in landing
    )  # summaries = headlines
