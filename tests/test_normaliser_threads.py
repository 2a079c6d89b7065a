"""Same numbers whatever the launcher: the control-variate Z estimate and its standard error are
the same bits under 1 and 2 BLAS threads (a serial run's process has the machine's thread count,
a joblib worker one thread). 12288 draws (3 experts x 4096, the quick preset's restoration
batch) is a size where a threaded dot product splits its sum: before the reductions were
correctly rounded, se differed in the last digit (0.005456874466527821 vs ...819)."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import torch
from modgen_bench.algorithms.normaliser import z_control_variate
g = torch.Generator().manual_seed(0)
n, p = {n}, 3
log_experts = torch.randn(n, p, generator=g, dtype=torch.float64) * 3
log_w = torch.randn(n, generator=g, dtype=torch.float64) * 0.5
z, (lo, hi), se = z_control_variate(log_w, log_experts)
print(repr(z), repr(lo), repr(hi), repr(se))
"""


@pytest.mark.parametrize("n", [12288, 20000])
def test_z_and_its_se_do_not_depend_on_the_blas_thread_count(n):
    out = []
    for threads in ("1", "2"):
        env = {
            **os.environ,
            "OPENBLAS_NUM_THREADS": threads,
            "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }
        res = subprocess.run(
            [sys.executable, "-c", SCRIPT.format(n=n)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        out.append(res.stdout.strip())
    assert out[0] == out[1]
