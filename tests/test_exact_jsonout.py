"""`solve --json` streams the model and gate (modgen_bench/exact/jsonout.py): the text
parses to exactly the object `json.dumps` of the lists gives, at any chunk size."""

import json

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from modgen_bench.cli import main
from modgen_bench.exact import solve
from modgen_bench.exact.jsonout import RowBlocks, dumps
from modgen_bench.testing import strategies as mst

chunks = st.integers(1, 9) | st.just(1 << 16)


@given(mst.problems(max_p=4, max_N=8, leak=0.5), st.sampled_from(["union", "domains"]), chunks)
def test_streamed_answer_is_the_json_dumps_object(prob, support, chunk):
    sol = solve(prob, method="waterfill", support=support)
    note(f"status {sol.status}, chunk {chunk}")
    reference = json.dumps(sol.to_json())
    streamed = dumps(sol.to_json(arrays=True), chunk=chunk)
    assert json.loads(streamed) == json.loads(reference)
    assert streamed == reference  # same separators, same float repr: same text


@given(
    st.integers(0, 6),
    st.integers(0, 4),
    chunks,
    st.sampled_from([1.0, 1e-300, 5e-324, 1e300, 0.1, -0.0, 2.0 / 3.0]),
    st.integers(0, 2**32 - 1),
)
def test_arrays_round_trip_every_float(n, p, chunk, scale, seed):
    """Row blocks and plain arrays, every float bit for bit (float.__repr__ round-trips)."""
    a = np.random.default_rng(seed).random((n, p)) * scale
    obj = {"v": a[:, 0] if p else np.zeros(n), "m": a, "r": RowBlocks(n, p, lambda s: a[s])}
    back = json.loads(dumps(obj, chunk=chunk))
    assert back["m"] == a.tolist() and back["r"] == a.tolist()
    assert back["v"] == obj["v"].tolist()
    assert np.array_equal(np.array(back["m"], dtype=float).reshape(n, p), a)


def test_non_finite_values_are_null_and_3d_is_refused():
    out = json.loads(dumps({"a": np.array([1.5, np.inf, np.nan, -np.inf]), "b": np.float64(2.0)}))
    assert out == {"a": [1.5, None, None, None], "b": 2.0}
    with pytest.raises(ValueError, match="1 or 2 dimensions"):
        dumps({"x": np.zeros((1, 1, 1))})


def test_cli_solve_json_is_the_solution_object(tmp_path, capsys):
    from modgen_bench import instances

    problem = instances.make("overlap", 5, p=3, N=40)
    path = tmp_path / "p.json"
    problem.save(path)
    assert main(["solve", str(path), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    ref = solve(problem, method="waterfill", support="domains").to_json()
    ref["seconds"] = got["seconds"]
    assert got == ref and len(got["gate"]) == 40 and len(got["gate"][0]) == 3
