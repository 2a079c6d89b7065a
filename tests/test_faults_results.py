"""Fault injection, damaged results: `report DIR` on a truncated line, a cut header, a short
row, a non-numeric value, a damaged run.json or Parquet file names the file (and the line) in one
line, exit status 2, never a pandas traceback."""

import shutil
from pathlib import Path

import pytest

from modgen_bench.cli import main

SUITE = Path(__file__).parent / "fixtures" / "tiny_suite"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    assert main(["run", str(SUITE), "--preset", "quick", "--device", "cpu", "--out", str(out)]) == 0
    return out / "tiny_suite-quick"


def _cut(n):
    def damage(d):
        (d / "results.parquet").unlink()
        raw = (d / "results.csv").read_bytes()
        (d / "results.csv").write_bytes(raw[:n])

    return damage


def _csv_line(lineno, edit):
    def damage(d):
        (d / "results.parquet").unlink()
        lines = (d / "results.csv").read_text().splitlines(keepends=True)
        lines[lineno - 1] = edit(lines[lineno - 1])
        (d / "results.csv").write_text("".join(lines))

    return damage


def _write(name, data: bytes):
    def damage(d):
        (d / name).write_bytes(data)

    return damage


def _truncate(name, keep):
    def damage(d):
        raw = (d / name).read_bytes()
        (d / name).write_bytes(raw[:keep])

    return damage


DAMAGE = {
    "truncated last line": (_cut(-7), "is cut short"),
    "cut header": (_cut(20), "is cut short"),
    "header only damaged": (
        _csv_line(1, lambda s: "experiment,suite,ca\n"),
        "line 1 (the header) lacks",
    ),
    "short row": (_csv_line(4, lambda s: s.rsplit(",", 2)[0] + "\n"), "line 4 has 6 fields"),
    "long row": (_csv_line(5, lambda s: s.rstrip("\n") + ",extra,more\n"), "results.csv"),
    "non-numeric value": (
        _csv_line(3, lambda s: s.rsplit(",", 1)[0] + ",notanumber\n"),
        "line 3, column 'value'",
    ),
    "non-numeric seed": (
        _csv_line(
            6,
            lambda s: (
                ",".join(["beta", "tiny_suite", "c1", "m0", "four", '"0.5,0.5"', "kl", "1.0"])
                + "\n"
            ),
        ),
        "line 6, column 'seed'",
    ),
    "run.json truncated": (_truncate("run.json", 30), "run.json: not valid JSON"),
    "run.json a list": (_write("run.json", b"[1, 2]"), "run.json: expected a JSON object"),
    "run.json deep": (
        _write("run.json", b"[" * 100_000 + b"]" * 100_000),
        "run.json: not valid JSON",
    ),
    "parquet truncated": (_truncate("results.parquet", 1000), "not a readable Parquet file"),
    "parquet is text": (_write("results.parquet", b"suite,case\n"), "not a readable Parquet file"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_report_on_damaged_results_names_the_file(tmp_path, capsys, finished, case):
    damage, fragment = DAMAGE[case]
    root = tmp_path / "r"
    shutil.copytree(finished, root)
    run_dir = next(root.glob("beta-*"))
    damage(run_dir)
    capsys.readouterr()
    rc = main(["report", str(root)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("modgen-bench: error: "), err
    assert "Traceback" not in err + out
    assert run_dir.name in lines[0] and fragment in lines[0], lines[0]


def test_undamaged_copy_reports(tmp_path, capsys, finished):
    """The control: the same copy without damage reports (so the cases above fail for the
    damage)."""
    root = tmp_path / "r"
    shutil.copytree(finished, root)
    (next(root.glob("beta-*")) / "results.parquet").unlink()  # the CSV path, as in most cases
    assert main(["report", str(root)]) == 0
