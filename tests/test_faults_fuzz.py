"""`bench fuzz` (the exact core's random hard instances) at a small count, as part of the
fault-injection suite: every instance answered, none wrong, none invalid."""

import re

import pytest

from modgen_bench.cli import main


def test_bench_fuzz_small_count_has_no_wrong_answer(capsys):
    assert main(["bench", "fuzz", "--instances", "8", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    m = re.search(
        r"fuzz: (\d+) instances \(seed 1\): optimal (\d+)\s+inaccurate (\d+)\s+"
        r"infeasible (\d+)\s+wrong (\d+)\s+invalid (\d+)",
        out,
    )
    assert m, out
    n, optimal, inaccurate, infeasible, wrong, invalid = map(int, m.groups())
    assert n == 8 and optimal + inaccurate + infeasible == 8
    assert wrong == 0 and invalid == 0


@pytest.mark.parametrize("value", ["-1", "0", "inf", "1e30", "x"])
def test_bench_fuzz_bad_count_one_line_exit_2(capsys, value):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "fuzz", "--instances", value])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith("modgen-bench: error: argument --instances")
