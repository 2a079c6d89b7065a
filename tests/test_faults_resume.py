"""Fault injection, interruptions: SIGKILL / SIGINT of `modgen-bench run` at stage boundaries,
then `--resume`, gives results byte-identical to an uninterrupted run.

The suite is tests/fixtures/tiny_suite (three experiments, milliseconds each); its plug-in
signals itself at the point ``MODGEN_FAULT`` names, so every boundary is hit exactly. The runs
are forked from the test process (no interpreter start-up); one test signals a real
`modgen-bench` process from outside.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modgen_bench.cli import main

SUITE = Path(__file__).parent / "fixtures" / "tiny_suite"
EXPERIMENTS = ["alpha", "beta", "gamma"]


def _argv(out, *extra):
    return ["run", str(SUITE), "--preset", "quick", "--device", "cpu", "--out", str(out), *extra]


def _state(out) -> dict:
    """experiment -> results.csv bytes, for every finished run folder (the rows that count)."""
    root = Path(out) / "tiny_suite-quick"
    return {
        d.name.rsplit("-", 1)[0]: (d / "results.csv").read_bytes()
        for d in sorted(root.glob("*-*"))
        if (d / "done").is_file()
    }


def _temps(out) -> list:
    return [str(p) for p in Path(out).rglob("*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline")
    assert main(_argv(out)) == 0
    state = _state(out)
    assert sorted(state) == EXPERIMENTS and all(len(b.splitlines()) == 9 for b in state.values())
    return state


def _default_sigint():
    """A process started in the background by a non-interactive shell inherits SIGINT ignored
    (and Python then installs no KeyboardInterrupt handler): these tests interrupt on purpose."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _child(argv, fault):
    _default_sigint()
    os.environ["MODGEN_FAULT"] = fault
    sys.exit(main(argv))


def _run_with_fault(out, fault) -> int:
    proc = multiprocessing.get_context("fork").Process(target=_child, args=(_argv(out), fault))
    proc.start()
    proc.join(120)
    assert proc.exitcode is not None, "the faulted run hung"
    return proc.exitcode


# (experiment, point, signal): start = before its first row, end = rows made, nothing written
FAULTS = [
    ("alpha", "start", "KILL"),
    ("beta", "start", "KILL"),
    ("beta", "end", "KILL"),
    ("gamma", "end", "KILL"),
    ("beta", "start", "INT"),
    ("gamma", "end", "INT"),
]


@pytest.mark.parametrize("exp, point, sig", FAULTS)
def test_interrupt_then_resume_gives_identical_rows(tmp_path, capsys, baseline, exp, point, sig):
    out = tmp_path / "out"
    code = _run_with_fault(out, f"{exp}:{point}:{sig}")
    assert code == (-signal.SIGKILL if sig == "KILL" else 130)
    before = EXPERIMENTS[: EXPERIMENTS.index(exp)]
    # what survived is complete: the finished experiments, byte-identical; nothing half-written
    assert _state(out) == {e: baseline[e] for e in before}
    assert _temps(out) == []
    capsys.readouterr()
    assert main(_argv(out, "--resume")) == 0
    log = capsys.readouterr().out
    assert _state(out) == baseline  # no row lost, none changed
    for e in before:  # finished stages not redone
        assert (
            f"[{e}] run" in log and "done already" in log.split(f"[{e}] run", 1)[1].splitlines()[0]
        )
    assert log.count("running preset") == len(EXPERIMENTS) - len(before)


def test_external_sigint_one_line_then_resume(tmp_path, baseline):
    """A real process, interrupted from outside while inside experiment beta."""
    out, mark = tmp_path / "out", tmp_path / "mark"
    exe = Path(sys.executable).with_name("modgen-bench")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MODGEN_FAULT": "beta:wait:INT",
        "MODGEN_FAULT_MARK": str(mark),
    }
    proc = subprocess.Popen(
        [str(exe), *_argv(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 90
        while not mark.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines() == [
        "modgen-bench: interrupted (finished stages are kept; "
        "add --resume to the same command to continue)"
    ]
    assert _state(out) == {"alpha": baseline["alpha"]}
    assert main(_argv(out, "--resume")) == 0
    assert _state(out) == baseline
