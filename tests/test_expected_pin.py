"""theory_checks.expected: pinning writes the verdict file atomically (temp file, then rename): the
JSON lands whole, no temp file is left, and a refused write keeps the previous pin unchanged."""

import json

import pytest

from modgen_bench.atomic import OutputError
from theory_checks import expected


def test_pin_writes_the_file_whole_and_atomically(tmp_path, monkeypatch):
    fake = {"instances": 3, "seed": 0, "verdicts": {"lemma1": {"main": {"status": "holds"}}}}
    monkeypatch.setattr(expected, "pin", lambda instances, seed: fake)
    out = tmp_path / "pins.json"
    out.write_text("previous\n")
    from modgen_bench import atomic

    calls = []
    real = atomic.write_text
    monkeypatch.setattr(
        atomic, "write_text", lambda path, text: calls.append(str(path)) or real(path, text)
    )
    assert expected._main(["--instances", "3", "--out", str(out)]) == 0
    assert calls == [str(out)]  # through the one atomic writer
    assert json.loads(out.read_text()) == fake
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pins.json"]


def test_a_refused_write_keeps_the_previous_pin(tmp_path, monkeypatch):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    monkeypatch.setattr(expected, "pin", lambda instances, seed: {"verdicts": {}})
    out = tmp_path / "ro" / "pins.json"
    out.parent.mkdir()
    out.write_text("previous\n")
    out.parent.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            expected._main(["--out", str(out)])
        assert out.read_text() == "previous\n"
    finally:
        out.parent.chmod(0o700)
