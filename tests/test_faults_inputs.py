"""Fault injection, inputs: every malformed problem file and bad argument gets one line
``modgen-bench: error: ...`` naming the file or option and exit status 2, never a traceback.
The corpus is committed under tests/fixtures/bad_inputs
(regenerate with its make_corpus.py).

Every case calls `modgen_bench.cli.main` in-process: an exception escaping `main` fails the test,
exactly as a traceback would (the real entry point is exercised by test_faults_resume.py).
"""

import os
from pathlib import Path

import pytest

from modgen_bench.cli import main

CORPUS = Path(__file__).parent / "fixtures" / "bad_inputs"

#: file -> a fragment its one-line message must contain (besides the file's name)
BAD_FILES = {
    "empty.json": "is empty",
    "not_json.json": "not valid JSON",
    "truncated.json": "not valid JSON",
    "latin1.json": "not UTF-8",
    "duplicate_keys.json": "duplicate key 'domains'",
    "deep_nesting.json": "nests too deeply",
    "huge_int_digits.json": "outside the float range",
    "nan_literal.json": "NaN or infinite",
    "booleans.json": "is a boolean",
    "strings.json": "is a string",
    "nulls.json": "is null",
    "nested3.json": "nested exactly 2 deep",
    "one_d.json": "got 1 dimension",
    "huge_int.json": "outside the float range",
    "huge_float.json": "NaN or infinite",
    "negative.json": "negative mass",
    "unnormalised.json": "sums to 1.1",
    "shape_mismatch.json": "both must be p x N",
    "ragged.json": "rows have different lengths",
    "empty_object.json": "missing the key(s) 'domains', 'experts'",
    "empty_arrays.json": "p >= 1",
    "empty_rows.json": "N >= 1",
    "top_level_list.json": "must be an object",
    "domains_object.json": "(got an object)",
    "names_number.json": "'names' must be a list of 2 strings (got the number 5)",
    "names_ints.json": "'names' entry 0 must be a string",
    "names_count.json": "'names' has 1 entries",
    "truncated.npz": "not a readable NPZ archive",
    "corrupt.npz": "not a readable NPZ archive",
    "npy_named_npz.npz": "a single .npy array",
    "random_bytes.npz": "no zip header",
    "complex.npz": "complex numbers",
    "bool.npz": "booleans",
    "strings.npz": "strings",
    "names_scalar.npz": "got a scalar",
    "names_numbers.npz": "got a 1-D array of dtype int64",
    "four_d.npz": "got 4 dimension(s)",
    "missing_key.npz": "missing the key(s) 'experts'",
    "nan.npz": "NaN or infinite",
    "object.npz": "allow_pickle=False",
    "zip_without_arrays.npz": "missing the key(s) 'domains', 'experts'",
}
#: unusual but valid files: they solve (a 3-D NPZ is a batch of problems, exact/batch.py)
GOOD_FILES = ["bom.json", "compressed.npz", "three_d.npz"]


def _one_line_error(capsys, rc, fragment, names=()):
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("modgen-bench: error: ")
    assert "Traceback" not in err and "Traceback" not in out
    assert fragment in lines[0]
    for name in names:
        assert name in lines[0]
    return lines[0]


def test_load_names_each_bad_file():
    """The library path (no CLI) raises ProblemError naming the file for every bad file."""
    from modgen_bench.problem import DiscreteProblem, ProblemError

    for name, fragment in BAD_FILES.items():
        with pytest.raises(ProblemError) as err:
            DiscreteProblem.load(CORPUS / name)
        assert name in str(err.value) and fragment in str(err.value), name


def test_corpus_is_complete():
    on_disk = {p.name for p in CORPUS.iterdir() if p.suffix in (".json", ".npz")}
    assert on_disk == set(BAD_FILES) | set(GOOD_FILES)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_solve_bad_file_one_line_exit_2(capsys, name):
    rc = main(["solve", str(CORPUS / name), "--json"])
    _one_line_error(capsys, rc, BAD_FILES[name], names=[name])


@pytest.mark.parametrize(
    "name",
    [
        "truncated.npz",
        "npy_named_npz.npz",
        "deep_nesting.json",
        "huge_int.json",
        "names_number.json",
        "booleans.json",
    ],
)
def test_spd_bad_file_one_line_exit_2(capsys, name, one_torch_thread):
    rc = main(["spd", str(CORPUS / name), "--steps", "5"])
    _one_line_error(capsys, rc, BAD_FILES[name], names=[name])


@pytest.mark.parametrize("name", GOOD_FILES)
def test_unusual_but_valid_files_solve(capsys, name):
    assert main(["solve", str(CORPUS / name), "--json"]) == 0
    assert '"status": "optimal"' in capsys.readouterr().out


def test_missing_and_directory_and_unreadable(capsys, tmp_path):
    _one_line_error(
        capsys, main(["solve", str(tmp_path / "nope.json")]), "does not exist", ["nope.json"]
    )
    (tmp_path / "dir.json").mkdir()
    _one_line_error(
        capsys, main(["solve", str(tmp_path / "dir.json")]), "not a regular file", ["dir.json"]
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(capsys, tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes((CORPUS / "bom.json").read_bytes())
    path.chmod(0)
    _one_line_error(capsys, main(["solve", str(path)]), "Permission denied", ["p.json"])


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["spd", "FILE", "--steps", "99999999999999999999"], "argument --steps"),
        (["spd", "FILE", "--steps", "0"], "argument --steps"),
        (["spd", "FILE", "--steps", "1.5"], "argument --steps"),
        (["bench", "exact", "--sizes", "inf"], "argument --sizes"),
        (["bench", "exact", "--sizes", "nan"], "argument --sizes"),
        (["bench", "exact", "--sizes", "-5"], "argument --sizes"),
        (["check", "--instances", "1e30"], "argument --instances"),
        (["solve", "FILE", "--method", "magic"], "argument --method"),
        (["nosuch"], "invalid choice: 'nosuch'"),
        (["solve"], "the following arguments are required: FILE"),
        (["run", "synthetic", "--only", "nosuch", "--out", "OUT"], "nosuch"),
    ],
)
def test_bad_arguments_one_line_exit_2(capsys, tmp_path, argv, fragment):
    good = str(CORPUS / "bom.json")
    argv = [good if a == "FILE" else str(tmp_path / "out") if a == "OUT" else a for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse exits; the message contract is the same
        rc = exc.code
    _one_line_error(capsys, rc, fragment)


def test_debug_shows_traceback_of_internal_error_only(capsys, monkeypatch):
    import modgen_bench.cli as cli

    def boom(args):
        raise TypeError("a bug of ours")

    monkeypatch.setattr(cli, "_solve", boom)
    # without --debug: one line, exit 1
    assert main(["solve", "x.json"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: TypeError: a bug of ours" in err
    assert "--debug" in err
    # with --debug (before or after the subcommand): the traceback
    for argv in (["--debug", "solve", "x.json"], ["solve", "x.json", "--debug"]):
        with pytest.raises(TypeError, match="a bug of ours"):
            main(argv)


_TOML = '[experiment]\nmodule = "{module}"\n[preset.quick]\nx = 1\n'
#: a custom suite folder, file name -> content, and the fragment its error names
BAD_SUITES = {
    "module missing": ({"a.toml": _TOML.format(module="nosuch")}, "nosuch.py' does not exist"),
    "invalid TOML": ({"a.toml": "[experiment\n"}, "a.toml: invalid TOML"),
    "no module key": ({"a.toml": "[experiment]\n[preset.quick]\nx = 1\n"}, "needs a 'module' key"),
    "unknown table": (
        {"a.toml": _TOML.format(module="m") + "[extra]\n"},
        "unknown top-level table",
    ),
    "plug-in syntax error": (
        {"a.toml": _TOML.format(module="bad"), "bad.py": "def run(ctx) oops\n"},
        "bad.py failed to import",
    ),
    "plug-in without run": (
        {"a.toml": _TOML.format(module="norun"), "norun.py": "X = 1\n"},
        "defines no run(ctx)",
    ),
    "no experiments": ({"readme.txt": "nothing"}, "holds no experiment TOML files"),
    "no quick preset": (
        {"a.toml": '[experiment]\nmodule = "m"\n[preset.full]\nx = 1\n'},
        "has no preset 'quick'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SUITES))
def test_bad_custom_suite_one_line_exit_2(capsys, tmp_path, case):
    files, fragment = BAD_SUITES[case]
    suite = tmp_path / "mysuite"
    suite.mkdir()
    for name, text in files.items():
        (suite / name).write_text(text)
    rc = main(["run", str(suite), "--device", "cpu", "--out", str(tmp_path / "out")])
    _one_line_error(capsys, rc, fragment)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "MISSING", "--out", "OUT"], "not found"),
        (["check", "nosuchclaim"], "unknown claim 'nosuchclaim'"),
        (["report", "MISSING"], "no finished runs"),
        (["report", "OUT"], "no finished runs"),
    ],
)
def test_missing_targets_one_line_exit_2(capsys, tmp_path, argv, fragment):
    (tmp_path / "out").mkdir()
    argv = [
        str(tmp_path / "missing") if a == "MISSING" else str(tmp_path / "out") if a == "OUT" else a
        for a in argv
    ]
    _one_line_error(capsys, main(argv), fragment)
