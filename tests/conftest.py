"""Hypothesis profiles (STYLE.md): `ci` (derandomised, no database, no deadline, modest count) and
`thorough` (random, many examples, database kept). Pick with MODGEN_HYPOTHESIS_PROFILE or
pytest's --hypothesis-profile; the default is `ci`."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    derandomize=False,
    deadline=None,
    max_examples=1000,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
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


# ---- corpus tests on a machine without the Debian corpus packages --------------------------------
# `make test` installs the packages where it can (root or password-less sudo). Elsewhere a test
# marked `corpora(name, ...)` is skipped and the session ends with one line naming the packages and
# the command. MODGEN_REQUIRE_CORPORA=1 (set by .ci/run, which can install them) turns the skip off,
# so CI runs every corpus test and a failed install fails it instead of hiding the tests.
_SKIPPED_FOR = set()


def pytest_configure(config):
    config.addinivalue_line("markers", "corpora(*names): needs these registered corpora on disk")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MODGEN_REQUIRE_CORPORA") == "1":
        return
    from modgen_bench.data.corpora import missing_packages

    for item in items:
        names = [n for mark in item.iter_markers("corpora") for n in mark.args]
        missing = missing_packages(names) if names else []
        if missing:
            _SKIPPED_FOR.update(missing)
            item.add_marker(
                pytest.mark.skip(reason=f"corpus packages missing: {' '.join(missing)}")
            )


def pytest_terminal_summary(terminalreporter):
    if _SKIPPED_FOR:
        pkgs = " ".join(sorted(_SKIPPED_FOR))
        terminalreporter.write_line(
            f"corpus tests skipped: the Debian packages {pkgs} are not installed; to run them: "
            f"sudo apt-get install -y {pkgs}"
        )
