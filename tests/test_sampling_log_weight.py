"""`sampling.log_weight`: log pi_g(x)/q(x) with pi_g = sum_k g_k E_k and q = (1/p) sum_k E_k,
against the ratio computed directly in float64."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from modgen_bench.sampling import log_weight


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 8), p=st.integers(1, 5))
def test_log_weight_is_log_pi_over_q(seed, n, p):
    g = torch.Generator().manual_seed(seed)
    log_g = torch.log_softmax(torch.randn(n, p, generator=g, dtype=torch.float64), -1)
    log_e = 3.0 * torch.randn(n, p, generator=g, dtype=torch.float64) - 5.0
    pi = (log_g.exp() * log_e.exp()).sum(-1)
    q = log_e.exp().mean(-1)
    torch.testing.assert_close(
        log_weight(log_g, log_e).double(), torch.log(pi / q), rtol=1e-6, atol=1e-6
    )
