"""`modgen_bench.threads.cpu_threads`: the count is set on CPU only and restored, on error too."""

import pytest
import torch

from modgen_bench.threads import cpu_threads


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def test_set_on_cpu_and_restored(two_threads):
    with cpu_threads(1, "cpu"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_left_alone_on_an_accelerator(two_threads):
    with cpu_threads(1, "cuda"):
        assert torch.get_num_threads() == 2


def test_restored_after_an_error(two_threads):
    with pytest.raises(RuntimeError), cpu_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_blas_threads_limits_and_restores():
    from threadpoolctl import threadpool_info

    from modgen_bench.threads import blas_threads

    def counts():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = counts()
    with blas_threads(1):
        assert counts() and set(counts()) == {1}
    assert counts() == before
    with pytest.raises(RuntimeError), blas_threads(1):
        raise RuntimeError("boom")
    assert counts() == before
    with blas_threads(None):
        assert counts() == before
