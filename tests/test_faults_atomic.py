"""modgen_bench.atomic: complete file or previous file, never a prefix; failures name the path."""

import os

import numpy as np
import pandas as pd
import pytest

from modgen_bench import atomic
from modgen_bench.atomic import OutputError


def _no_temps(folder):
    return [p.name for p in folder.iterdir() if ".tmp" in p.name] == []


def test_text_bytes_json_frame_and_callable_round_trip(tmp_path):
    atomic.write_text(tmp_path / "a.txt", "héllo\n")
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic.write_json(tmp_path / "c.json", {"x": [1, 2]})
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    atomic.write_frame(tmp_path / "d.csv", df)
    atomic.write_frame(tmp_path / "e.parquet", df)
    atomic.write_with(tmp_path / "f.npy", lambda tmp: np.save(tmp, np.arange(3)))
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.json").read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}'
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "d.csv"), df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "e.parquet"), df)
    # np.save appends .npy unless the name ends with it: the temp name keeps the suffix
    assert np.load(tmp_path / "f.npy").tolist() == [0, 1, 2]
    assert _no_temps(tmp_path)


def test_failing_writer_keeps_previous_file_and_removes_temp(tmp_path):
    target = tmp_path / "r.csv"
    atomic.write_text(target, "old complete\n")

    def half(f):
        f.write("new but ")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic.atomic_write(target, half)
    assert target.read_text() == "old complete\n"
    assert _no_temps(tmp_path)


def test_parent_is_a_file_names_the_path(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write '.*/f/sub': Not a directory"):
        atomic.write_text(tmp_path / "f" / "sub" / "out.txt", "y")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder_names_the_path(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="ro"):
            atomic.write_text(ro / "out.txt", "y")
    finally:
        ro.chmod(0o755)


def test_os_error_inside_writer_becomes_output_error(tmp_path):
    def full(tmp):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write '.*x\.bin': No space left on device"):
        atomic.write_with(tmp_path / "x.bin", full)
    assert _no_temps(tmp_path)


def test_new_files_get_the_umask_mode_and_replacements_keep_theirs(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "new.txt", "x")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
        (tmp_path / "exe.sh").write_text("old")
        (tmp_path / "exe.sh").chmod(0o750)
        atomic.write_text(tmp_path / "exe.sh", "new")
        assert (tmp_path / "exe.sh").stat().st_mode & 0o777 == 0o750
    finally:
        os.umask(old)
