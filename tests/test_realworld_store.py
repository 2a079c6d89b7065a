"""pipeline.store: a damaged stage file (truncated, garbage, empty) is logged and recomputed,
never loaded; the recomputed output is rewritten whole and equals a clean run's."""

import logging

import pytest
import torch

from modgen_bench.pipeline.store import Store, stage_key


def _out():
    return {"state": {"w": torch.arange(12.0).view(3, 4)}, "lam": [0.2, 0.3, 0.5], "mu": 0.7}


def _same(a, b):
    return (
        torch.equal(a["state"]["w"], b["state"]["w"])
        and a["lam"] == b["lam"]
        and a["mu"] == b["mu"]
    )


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "half-pickle"])
def test_damaged_stage_file_is_recomputed_not_loaded(tmp_path, caplog, damage):
    store, key = Store(tmp_path), stage_key("gate", 1)
    calls = []

    def compute():
        calls.append(1)
        return _out()

    first = store.get("gate-excess", key, compute)
    path = store.path("gate-excess", key)
    whole = path.read_bytes()
    assert _same(first, _out()) and len(calls) == 1
    assert _same(store.get("gate-excess", key, compute), _out()) and len(calls) == 1  # reused
    damaged = {
        "truncated": whole[: len(whole) // 2],
        "garbage": b"\x00not a torch file" * 40,
        "empty": b"",
        "half-pickle": whole[:40],
    }[damage]
    path.write_bytes(damaged)
    with caplog.at_level(logging.WARNING, logger="modgen_bench.pipeline.store"):
        again = store.get("gate-excess", key, compute)
    assert len(calls) == 2  # computed again, not loaded
    assert _same(again, _out())
    assert any(
        "is damaged" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records
    )
    assert len(path.read_bytes()) == len(whole)  # rewritten whole (the zip's inner
    assert _same(torch.load(path, weights_only=False), _out())  # folder is the temp file's name)
    assert _same(store.get("gate-excess", key, compute), _out()) and len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left
