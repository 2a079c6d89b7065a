"""Load: the NPZ path reads each array once and validates without float-sized temporaries.
The 200 MB measurement is scripts/measure_solve_load.py; this is its
CPU-cheap guard (16 MB of arrays)."""

import tracemalloc

import numpy as np

from modgen_bench.problem import DiscreteProblem


def test_npz_load_peak_memory_is_the_arrays_plus_small_temporaries(tmp_path):
    p, N = 2, 500_000  # 2 arrays x 2 x 500k x 8 B = 16 MB
    rng = np.random.default_rng(0)
    P, E = rng.random((p, N)), rng.random((p, N))
    P /= P.sum(axis=1, keepdims=True)
    E /= E.sum(axis=1, keepdims=True)
    path = tmp_path / "big.npz"
    np.savez(path, domains=P, experts=E)
    arrays = P.nbytes + E.nbytes
    del P, E
    tracemalloc.start()
    try:
        prob = DiscreteProblem.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prob.P.dtype == np.float64 and not prob.P.flags.writeable
    # the arrays themselves, plus boolean masks (1/8 of one array) and read buffers; a single
    # needless float64 copy of one array would add 0.5 x arrays
    assert peak < 1.3 * arrays, (peak / 1e6, arrays / 1e6)
