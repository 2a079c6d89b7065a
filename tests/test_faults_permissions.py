"""Fault injection, permissions, when the tests run as root (as in CI containers): root ignores
file modes, so each case forks a child that drops to the unprivileged user ``nobody`` and runs the
command there. A folder it may not write and a file it may not read give one line naming the
path and exit status 2. As a normal user the same cases run in test_faults_writes.py
and test_faults_inputs.py (there they skip as root).

The command runs once as root first, so every module it imports is loaded before the fork (the
child cannot read the interpreter's files under /root).
"""

import os
import pwd
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

from modgen_bench.cli import main

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="needs root to drop to 'nobody'; "
    "as a normal user test_faults_writes.py covers permissions",
)

SUITE = Path(__file__).parent / "fixtures" / "tiny_suite"
CORPUS = Path(__file__).parent / "fixtures" / "bad_inputs"


def _as_nobody(argv) -> tuple[int, str]:
    """Exit status and stderr of ``main(argv)`` in a forked child running as 'nobody'."""
    nobody = pwd.getpwnam("nobody")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(r)
            sys.stderr = os.fdopen(w, "w", buffering=1)
            sys.stdout = open(os.devnull, "w")
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc(file=sys.stderr)
        finally:
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 98)
    os.close(w)
    with os.fdopen(r) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


@pytest.fixture
def shared_tmp():
    """A folder 'nobody' can reach (pytest's tmp_path lies under a root-only folder)."""
    base = Path(tempfile.mkdtemp(prefix="modgen-perm-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _cmd(kind, out: Path):
    return {
        "check": ["check", "identities", "--instances", "2", "--out", str(out / "checks")],
        "run": [
            "run",
            str(SUITE),
            "--preset",
            "quick",
            "--device",
            "cpu",
            "--out",
            str(out / "runs"),
        ],
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
            str(out / "bench.csv"),
        ],
    }[kind]


@pytest.mark.parametrize("kind", ["check", "run", "bench"])
def test_output_folder_not_writable(shared_tmp, capsys, kind):
    warm = shared_tmp / "warm"
    assert main(_cmd(kind, warm)) == 0  # root, writable: loads every module it needs
    capsys.readouterr()
    locked = shared_tmp / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    code, err = _as_nobody(_cmd(kind, locked))
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err
    assert lines[-1].startswith("modgen-bench: error: ") and str(locked) in lines[-1], err
    assert "Permission denied" in lines[-1]
    assert sum(line.startswith("modgen-bench") for line in lines) == 1
    assert list(locked.iterdir()) == []


def test_problem_file_not_readable(shared_tmp, capsys):
    good = shared_tmp / "p.json"
    shutil.copy(CORPUS / "bom.json", good)
    good.chmod(0o644)
    assert main(["solve", str(good), "--json"]) == 0
    capsys.readouterr()
    good.chmod(0o600)  # root's only
    code, err = _as_nobody(["solve", str(good), "--json"])
    assert code == 2, err
    assert err.strip().splitlines() == [
        f"modgen-bench: error: cannot read problem file '{good}': Permission denied"
    ]
