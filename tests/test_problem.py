"""DiscreteProblem validation and I/O: one clear error per broken rule; round trips are exact."""

import json

import numpy as np
import pytest

from modgen_bench import instances
from modgen_bench.problem import ROW_SUM_TOL, DiscreteProblem, ProblemError

GOOD_P = [[0.5, 0.5], [1.0, 0.0]]
GOOD_E = [[0.4, 0.6], [0.9, 0.1]]


@pytest.mark.parametrize(
    "domains, experts, fragment",
    [
        ([[0.5, -0.5, 1.0]], [[0.2, 0.3, 0.5]], "negative mass"),
        ([[0.5, float("nan"), 0.5]], [[0.2, 0.3, 0.5]], "NaN"),
        ([[0.5, 0.6]], [[0.5, 0.5]], "sums to 1.1"),
        ([[0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]], "both must be p x N"),
        ([], [], "p >= 1"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "p >= 1"),
        (np.zeros((2, 0)), np.zeros((2, 0)), "N >= 1"),
        ([[0.5, 0.5]], [0.5, 0.5], "p x N array (got 1"),
        ([["a", "b"]], [[0.5, 0.5]], "array of numbers"),
    ],
)
def test_each_broken_rule_gets_one_clear_message(domains, experts, fragment):
    with pytest.raises(ProblemError) as err:
        DiscreteProblem.from_arrays(domains, experts)
    assert fragment in str(err.value)


def test_row_sum_tolerance_is_the_stated_one():
    off = ROW_SUM_TOL / 2
    DiscreteProblem.from_arrays([[0.5 + off, 0.5]], [[0.5, 0.5]])
    with pytest.raises(ProblemError, match="within 1e-06"):
        DiscreteProblem.from_arrays([[0.5 + 3 * ROW_SUM_TOL, 0.5]], [[0.5, 0.5]])


def test_names_must_match_p():
    with pytest.raises(ProblemError, match="'names' has 1 entries but there are p = 2"):
        DiscreteProblem.from_arrays(GOOD_P, GOOD_E, names=["only"])


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_round_trip(tmp_path, suffix):
    prob = instances.make("dirichlet", 3, p=3, N=7)
    path = tmp_path / f"prob{suffix}"
    prob.save(path)
    back = DiscreteProblem.load(path)
    np.testing.assert_array_equal(back.P, prob.P)
    np.testing.assert_array_equal(back.E, prob.E)
    assert back.names == prob.names


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("", "is empty"),
        ("{not json", "not valid JSON"),
        (json.dumps({"domains": GOOD_P}), "missing the key(s) 'experts'"),
        (json.dumps([1, 2]), "must be an object"),
    ],
)
def test_bad_files(tmp_path, content, fragment):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ProblemError) as err:
        DiscreteProblem.load(path)
    assert fragment in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ProblemError, match="does not exist"):
        DiscreteProblem.load(tmp_path / "nope.json")


def test_save_leaves_no_partial_file_on_failure(tmp_path):
    prob = DiscreteProblem.from_arrays(GOOD_P, GOOD_E)
    path = tmp_path / "p.json"
    prob.save(path)
    before = path.read_text()

    class Boom(DiscreteProblem):
        def to_dict(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        Boom(prob.P, prob.E, prob.names).save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


# --- every valid spelling of a problem loads, and loads identically -------------------------------

from hypothesis import given, note, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from modgen_bench.testing.strategies import problems  # noqa: E402


@pytest.mark.parametrize(
    "spell",
    [
        lambda a: a.tolist(),  # JSON: lists of floats
        lambda a: tuple(tuple(r) for r in a.tolist()),  # tuples
        lambda a: [row for row in a],  # a list of 1-D ndarray rows
        lambda a: [[np.float64(x) for x in r] for r in a],  # numpy scalars
        lambda a: a,  # a float64 array (NPZ)
    ],
)
def test_every_valid_spelling_is_accepted(spell):
    prob = DiscreteProblem.from_arrays(spell(np.array(GOOD_P)), spell(np.array(GOOD_E)))
    np.testing.assert_array_equal(prob.P, GOOD_P)


def test_integer_and_float32_arrays_are_real_numbers():
    prob = DiscreteProblem.from_arrays(
        np.array([[1, 0], [0, 1]]), np.array([[0.5, 0.5]] * 2, dtype=np.float32)
    )
    assert prob.P.dtype == prob.E.dtype == np.float64


@pytest.mark.parametrize(
    "names, fragment",
    [
        (5, "must be a list of 2 strings (got the number 5)"),
        ("ab", "must be a list of 2 strings (got a string)"),
        ([1, 2], "entry 0 must be a string (got the number 1)"),
        (["a", None], "entry 1 must be a string (got null)"),
        (np.array([1, 2]), "got a 1-D array of dtype int64"),
        (np.array("ab"), "got a scalar"),
    ],
)
def test_names_must_be_strings(names, fragment):
    with pytest.raises(ProblemError) as err:
        DiscreteProblem.from_arrays(GOOD_P, GOOD_E, names=names)
    assert fragment in str(err.value)


def test_names_accept_a_string_array():
    assert DiscreteProblem.from_arrays(GOOD_P, GOOD_E, names=np.array(["x", "y"])).names == (
        "x",
        "y",
    )


@settings(max_examples=40)
@given(problems(), st.sampled_from([".json", ".npz"]))
def test_saved_problems_load_back_exactly(tmp_path_factory, prob, suffix):
    """Property: the stricter validation never rejects what `save` writes, and the round trip
    is exact (JSON through repr of floats, NPZ bit for bit)."""
    note(f"p={prob.p} N={prob.N} {suffix}")
    path = tmp_path_factory.mktemp("rt") / f"p{suffix}"
    prob.save(path)
    back = DiscreteProblem.load(path)
    np.testing.assert_array_equal(back.P, prob.P)
    np.testing.assert_array_equal(back.E, prob.E)
    assert back.names == prob.names
