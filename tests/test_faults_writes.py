"""Fault injection, outputs: a file system that refuses a write (read-only, an existing file
where a folder should be, not writable, full) gives one line ``modgen-bench: error: ...`` naming
the path and exit status 2 for check, run, report and bench alike; what was complete before stays
byte-identical, no temp file is left, and a run stopped by a full disk resumes to every row.

Read-only and full file systems are real: a tmpfs mounted read-only, or with ``size=``. Where
the machine does not allow mounting (not root, no CAP_SYS_ADMIN), those cases skip with the reason.
"""

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from modgen_bench.cli import main

SUITE = Path(__file__).parent / "fixtures" / "tiny_suite"


def _run_argv(out, *extra):
    return ["run", str(SUITE), "--preset", "quick", "--device", "cpu", "--out", str(out), *extra]


def _cmd(kind, out: Path):
    """argv of a cheap command of each kind that writes under ``out``."""
    return {
        "check": ["check", "identities", "--instances", "2", "--out", str(out / "checks")],
        "run": _run_argv(out / "runs"),
        "bench": [
            "bench",
            "exact",
            "--sizes",
            "10",
            "--ps",
            "2",
            "--no-structured",
            "--cvxpy-max-n",
            "0",
            "--csv",
            str(out / "bench" / "exact.csv"),
        ],
    }[kind]


@contextmanager
def tmpfs(path: Path, size: str = "4m", read_only: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(folder: Path) -> None:
    """Fill the file system holding ``folder`` until a write fails with ENOSPC."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def _snapshot(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "filler"
    }


def _one_line(capsys, rc, *fragments):
    out, err = capsys.readouterr()
    # progress lines may come first (check prints each claim's time); the error is the last
    # line, the only one from modgen-bench
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert lines and lines[-1].startswith("modgen-bench: error: "), err
    assert sum(line.startswith("modgen-bench") for line in lines) == 1, err
    assert "Traceback" not in err + out
    for f in fragments:
        assert f in lines[-1], (f, lines[-1])
    return lines[-1]


def _main(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


KINDS = ["check", "run", "bench"]


@pytest.mark.parametrize("kind", KINDS)
def test_read_only_file_system(tmp_path, capsys, kind):
    with tmpfs(tmp_path / "ro", read_only=True) as ro:
        _one_line(capsys, _main(_cmd(kind, ro)), str(ro), "Read-only file system")


@pytest.mark.parametrize("kind", KINDS)
def test_output_under_an_existing_file(tmp_path, capsys, kind):
    (tmp_path / "afile").write_text("I am a file")
    _one_line(capsys, _main(_cmd(kind, tmp_path / "afile")), str(tmp_path / "afile"))
    assert (tmp_path / "afile").read_text() == "I am a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes whatever the folder's permissions")
@pytest.mark.parametrize("kind", KINDS)
def test_output_folder_not_writable(tmp_path, capsys, kind):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        _one_line(capsys, _main(_cmd(kind, locked)), str(locked), "Permission denied")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("kind", KINDS)
def test_full_disk(tmp_path, capsys, kind):
    with tmpfs(tmp_path / "full", size="64k") as full:
        _fill(full)
        _one_line(capsys, _main(_cmd(kind, full)), str(full), "No space left on device")
        assert [p.name for p in full.rglob("*") if ".tmp" in p.name] == []


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    assert main(_run_argv(out)) == 0
    return out / "tiny_suite-quick"


def test_report_on_read_only_results(tmp_path, capsys, finished_run):
    with tmpfs(tmp_path / "ro") as mnt:
        shutil.copytree(finished_run, mnt / "r")
        before = _snapshot(mnt)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        _one_line(
            capsys, _main(["report", str(mnt / "r")]), str(mnt / "r"), "Read-only file system"
        )
        assert _snapshot(mnt) == before


def test_report_on_full_disk_keeps_the_previous_report(tmp_path, capsys, finished_run):
    with tmpfs(tmp_path / "full", size="2m") as mnt:
        shutil.copytree(finished_run, mnt / "r")
        before = _snapshot(mnt)
        assert "r/report.md" in before and "r/index.html" in before
        _fill(mnt)
        _one_line(
            capsys, _main(["report", str(mnt / "r")]), str(mnt / "r"), "No space left on device"
        )
        assert _snapshot(mnt) == before  # the previous report and results, untouched


def test_run_stopped_by_full_disk_resumes_to_every_row(tmp_path, capsys, finished_run):
    """A disk that fills mid-run: finished experiments stay complete; after space is freed,
    --resume writes the rest and the rows equal an uninterrupted run's."""

    def rows(root):
        return {
            d.name.rsplit("-", 1)[0]: (d / "results.csv").read_bytes()
            for d in sorted(root.glob("*-*"))
            if (d / "done").is_file()
        }

    want = rows(finished_run)
    with tmpfs(tmp_path / "full", size="40k") as mnt:
        line = _one_line(
            capsys,
            _main(_run_argv(mnt)),
            str(mnt),
            "No space left on device",
            "(the previous file, if any, is unchanged)",
            "add --resume",
        )
        root = mnt / "tiny_suite-quick"
        got = rows(root)
        assert len(got) < len(want), line  # the disk did fill before the end
        assert got == {e: want[e] for e in got}  # what is done is complete and right
        assert [p.name for p in mnt.rglob("*") if ".tmp" in p.name] == []
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        assert main(_run_argv(mnt, "--resume")) == 0
        assert rows(root) == want


def test_torch_save_on_full_disk_is_a_named_output_error(tmp_path):
    """torch.save wraps ENOSPC in a RuntimeError; the atomic writer still names the file."""
    torch = pytest.importorskip("torch")
    from modgen_bench.atomic import OutputError, write_with

    with tmpfs(tmp_path / "full", size="1m") as mnt:  # the failed write frees ~1 MB again
        write_with(mnt / "ck.pt", lambda tmp: torch.save({"step": 1}, tmp))
        before = (mnt / "ck.pt").read_bytes()
        with pytest.raises(OutputError, match=r"ck\.pt': No space left on device"):
            write_with(mnt / "ck.pt", lambda tmp: torch.save({"w": torch.zeros(1_000_000)}, tmp))
        assert (mnt / "ck.pt").read_bytes() == before
        assert [p.name for p in mnt.iterdir() if ".tmp" in p.name] == []
