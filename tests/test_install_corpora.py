"""scripts/install_corpora.sh, the first step of `make run` and of .ci/run (on a fresh machine)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install_corpora.sh"
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")


def _run(packages, user=None):
    cmd = ["bash", str(SCRIPT)]
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    env = {**os.environ, "MODGEN_CORPUS_PACKAGES": packages}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, cwd="/")
    return out, time.perf_counter() - t0


@needs_dpkg
def test_nothing_missing_is_silent_and_succeeds():
    out, _ = _run("bash coreutils")
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


@needs_dpkg
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None,
    reason="needs root to run the script as an unprivileged user",
)
def test_without_root_or_sudo_it_stops_at_once_with_the_command():
    out, seconds = _run("bash no-such-corpus-pkg", user="nobody")
    assert out.returncode == 1 and seconds < 10
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modgen-bench: error:")
    assert "sudo apt-get install -y no-such-corpus-pkg" in lines[0] and " bash" not in lines[0]


def test_make_run_checks_the_corpora_before_anything_else():
    if shutil.which("make") is None:
        pytest.skip("no make")
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.splitlines()[0] == "bash scripts/install_corpora.sh"
    assert "install_corpora.sh" in (ROOT / ".ci" / "run").read_text()
    assert (ROOT / "scripts" / "run_default.sh").read_text().count("install_corpora.sh") == 1


def test_make_test_installs_the_corpora_or_goes_on_and_ci_requires_them():
    if shutil.which("make") is None:
        pytest.skip("no make")
    out = subprocess.run(
        ["make", "-n", "--no-print-directory", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    lines = out.splitlines()
    install = next(i for i, line in enumerate(lines) if "install_corpora.sh" in line)
    pytest_at = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert install < pytest_at and "||" in lines[install]
    assert "MODGEN_REQUIRE_CORPORA=1" in (ROOT / ".ci" / "run").read_text()
