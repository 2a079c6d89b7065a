"""Hypothesis profiles (STYLE.md): `ci` (derandomised, no database, no deadline, modest count) and
`thorough` (random, many examples, database kept). Pick with MODGEN_HYPOTHESIS_PROFILE or
pytest's --hypothesis-profile; the default is `ci`."""
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=25,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", derandomize=False, deadline=None, max_examples=1000,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("MODGEN_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one intra-op thread (and CPU results stay reproducible).

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True, scope="session")
def _machine_key_in_tmp(tmp_path_factory):
    """Runs seal their key.json with this machine's key (`provenance.seal`): tests keep that key
    in a temporary folder, never in the user's home."""
    old = os.environ.get("MODGEN_BENCH_STATE")
    os.environ["MODGEN_BENCH_STATE"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        os.environ.pop("MODGEN_BENCH_STATE", None)
    else:
        os.environ["MODGEN_BENCH_STATE"] = old
