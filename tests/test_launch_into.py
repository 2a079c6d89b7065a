"""`modgen_bench.launch.launch_into`: a plug-in's sweep adds every job's rows in job order and
merges the jobs' corpus provenance per corpus and resample."""

from types import SimpleNamespace

from modgen_bench.launch import Job, LaunchSpec, launch_into


def _job(out_dir, i, resample):
    return (
        [{"case": "c", "metric": "m", "value": float(i)}],
        {"corpora": {"code": {f"resample{resample}": {"sha256": f"h{resample}"}}}},
    )


def test_rows_in_job_order_and_provenance_merged(tmp_path):
    rows = []
    ctx = SimpleNamespace(out_dir=str(tmp_path), info={}, add=lambda **r: rows.append(r))
    jobs = [Job(f"j{i}", _job, dict(i=i, resample=r)) for i, r in [(2, 0), (0, 1), (1, 0)]]
    launch_into(ctx, jobs, LaunchSpec())
    assert [r["value"] for r in rows] == [2.0, 0.0, 1.0]
    assert ctx.info["corpora"] == {
        "code": {"resample0": {"sha256": "h0"}, "resample1": {"sha256": "h1"}}
    }
    assert (tmp_path / "ckpt" / "j1" / "done").is_file()
