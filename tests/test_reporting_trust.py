"""`report` never imports code from a path found in results.

A results bundle whose run.json names a suite folder inside the bundle, holding a plug-in whose
import would write a marker file: `report` renders the generic table and the marker never
appears; only `--trust-plugins DIR` (the user naming the folder) lets that code run.
"""

from __future__ import annotations

import pandas as pd
import pytest

from modgen_bench.cli import main
from modgen_bench.results import write_results

PAYLOAD = """
from pathlib import Path
Path({marker!r}).write_text("payload ran")

def run(ctx):
    pass

def report(df, fig_dir):
    Path({marker!r}).write_text("payload report ran")
    return []
"""


@pytest.fixture
def bundle(tmp_path):
    root = tmp_path / "bundle"
    evil = root / "evil_suite"
    evil.mkdir(parents=True)
    marker = tmp_path / "PWNED"
    (evil / "evil.py").write_text(PAYLOAD.format(marker=str(marker)))
    (evil / "evil.toml").write_text('[experiment]\nmodule = "evil"\n[preset.quick]\n')
    rows = pd.DataFrame(
        [
            {
                "experiment": "evil",
                "suite": "synthetic",
                "case": "c",
                "method": "m",
                "seed": 0,
                "lam": "",
                "metric": "loss",
                "value": 0.25,
            }
        ]
    )
    # names an installed suite *and* a suite_dir inside the bundle: neither may run bundle code
    write_results(
        root / "run-1",
        rows,
        {
            "experiment": "evil",
            "suite": "synthetic",
            "installed_suite": "../bundle/evil_suite",
            "suite_dir": str(evil),
        },
    )
    return root, evil, marker


def test_report_never_runs_code_named_by_the_results(bundle, capsys):
    root, _, marker = bundle
    assert main(["report", str(root)]) == 0
    assert not marker.exists()
    html = (root / "index.html").read_text()
    assert "No trusted plug-in" in html and "0.2500" in html  # the generic renderer's table


def test_trust_plugins_is_the_only_way_in(bundle):
    root, evil, marker = bundle
    assert main(["report", str(root), "--trust-plugins", str(evil)]) == 0
    assert marker.read_text() == "payload report ran"  # proves the test above could fail
