"""A results folder from someone else is data, never code (the security section of the probe).

Pickles: a payload that would create a marker file is planted at every stage path of a run
folder (a torch zip file and a bare pickle) and in an earlier sibling run of the same config;
``run`` with and without ``--resume`` never executes it. Links, beacons and symlinks: see the
sections below. Each case asserts the exit code, one named line, nothing written outside the
output folder and nothing executed.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import torch
from markdown_it import MarkdownIt

from modgen_bench.cli import main
from modgen_bench.pipeline.store import Store, stage_key
from modgen_bench.reporting.markdown import render_markdown
from modgen_bench.results import write_results

# ------------------------------------------------------------------------------ pickles

STAGES = ("loglik", "gate-excess", "router", "q-draws")

PLUGIN = """
from modgen_bench.pipeline.store import Store, stage_key
import numpy as np
import torch

STAGES = {stages!r}


def run(ctx):
    store = Store(ctx.out_dir)
    for i, stage in enumerate(STAGES):
        out = store.get(stage, stage_key(stage, ctx.config["offset"]),
                        lambda: {{"state": {{"w": torch.full((2, 3), float(i))}},
                                 "lam": np.array([0.25, 0.75]), "mu": np.float64(0.5 + i),
                                 "history": {{"loss": [np.float64(1.5), 2.5]}}}})
        ctx.add("c", stage, "w", float(out["state"]["w"].sum()) + ctx.config["offset"])
        ctx.add("c", stage, "lam0", float(np.asarray(out["lam"])[0]))
        ctx.add("c", stage, "mu", float(out["mu"]))
"""


class _Payload:
    """Unpickling this creates ``marker`` (as `open(marker, 'w')` would): code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path, kind: str) -> None:
    if kind == "torch":
        torch.save({"state": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Payload(marker)))


@pytest.fixture
def stage_suite(tmp_path):
    d = tmp_path / "stagesuite"
    d.mkdir()
    (d / "stagey.py").write_text(PLUGIN.format(stages=STAGES))
    (d / "stagey.toml").write_text(
        textwrap.dedent("""
        [experiment]
        module = "stagey"
        [preset.quick]
        offset = 0.0
        """)
    )
    return d


def _rows(root: Path) -> dict:
    return {
        d.name.split("-")[0]: (d / "results.csv").read_text()
        for d in sorted(root.glob("stagey-*"))
        if (d / "done").is_file()
    }


def _snapshot(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_store_never_runs_a_planted_stage_file(tmp_path, kind, caplog):
    marker = tmp_path / "PWNED"
    store, key = Store(tmp_path / "run"), stage_key("gate", 1)
    (tmp_path / "run").mkdir()
    _plant(store.path("gate-excess", key), marker, kind)
    calls = []
    out = store.get("gate-excess", key, lambda: calls.append(1) or {"w": torch.ones(2)})
    assert not marker.exists() and calls == [1] and torch.equal(out["w"], torch.ones(2))
    assert any("not plain data" in r.getMessage() for r in caplog.records)
    assert torch.equal(store.get("gate-excess", key, lambda: 1 / 0)["w"], torch.ones(2))


def test_store_reads_numpy_values_back_as_plain_data(tmp_path):
    import numpy as np

    store, key = Store(tmp_path), stage_key("x")
    fresh = store.get(
        "gate-kl",
        key,
        lambda: {
            "lam": np.array([0.2, 0.8]),
            "mu": np.float64(0.1),
            "ok": np.bool_(True),
            "n": np.int64(3),
        },
    )
    again = store.get("gate-kl", key, lambda: 1 / 0)
    for got in (fresh, again):
        assert torch.equal(got["lam"], torch.tensor([0.2, 0.8], dtype=torch.float64))
        assert got["mu"] == 0.1 and type(got["mu"]) is float and got["ok"] is True and got["n"] == 3


def test_store_does_not_follow_a_symlinked_stage_file(tmp_path):
    outside = tmp_path / "outside.pt"
    torch.save({"w": torch.zeros(1)}, outside)
    store, key = Store(tmp_path / "run"), stage_key("s")
    (tmp_path / "run").mkdir()
    store.path("router", key).symlink_to(outside)
    out = store.get("router", key, lambda: {"w": torch.ones(1)})
    assert torch.equal(out["w"], torch.ones(1))
    assert not store.path("router", key).is_symlink()  # replaced by a real file
    assert torch.equal(torch.load(outside, weights_only=True)["w"], torch.zeros(1))  # untouched


def test_training_checkpoint_payload_never_runs(tmp_path):
    from modgen_bench.sequence.checkpoint import load_checkpoint

    marker, path = tmp_path / "PWNED", tmp_path / "expert-a-0123456789ab.pt"
    _plant(path, marker, "torch")
    assert load_checkpoint(path, "cpu") is None and not marker.exists()


def _run(suite, out, *extra):
    return main(["run", str(suite), "--out", str(out), "--device", "cpu", "--quiet", *extra])


@pytest.mark.parametrize("kind", ["torch", "pickle"])
@pytest.mark.parametrize("resume", [False, True])
def test_planted_payload_in_every_stage_file_of_a_run_folder_never_runs(
    stage_suite, tmp_path, kind, resume, capsys
):
    out, marker = tmp_path / "out", tmp_path / "PWNED"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    clean = _rows(root)
    (run_dir,) = root.glob("stagey-*")
    planted = sorted(run_dir.glob("*.pt"))
    assert len(planted) == len(STAGES)
    for f in planted:  # the sender's folder: done removed, stages replaced
        _plant(f, marker, kind)
    (run_dir / "done").unlink()
    assert _run(stage_suite, out, *(["--resume"] if resume else [])) == 0
    assert not marker.exists()
    assert _rows(root) == clean
    for f in planted:  # recomputed and rewritten as plain data
        torch.load(f, weights_only=True)


def test_resume_never_adopts_a_foreign_sibling_with_the_same_config(stage_suite, tmp_path, capsys):
    """A sibling folder whose key.json holds this config but no seal of this machine's runs (it
    came from elsewhere) lends nothing under --resume, and the log says which and why."""
    out, marker = tmp_path / "out", tmp_path / "PWNED"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    (mine,) = root.glob("stagey-*")
    clean = (mine / "results.csv").read_text()
    foreign = root / "stagey-f0f0f0f0f0f0"
    shutil.copytree(mine, foreign)
    key = json.loads((foreign / "key.json").read_text())
    key["run_key"], key["seal"] = "f0f0f0f0f0f0", "0" * 64
    (foreign / "key.json").write_text(json.dumps(key))
    for f in foreign.glob("*.pt"):
        _plant(f, marker, "torch")
    shutil.rmtree(mine)  # only the foreign folder has this config now
    (stage_suite / "stagey.py").write_text((stage_suite / "stagey.py").read_text() + "\n# edit\n")
    capsys.readouterr()
    assert main(["run", str(stage_suite), "--out", str(out), "--device", "cpu", "--resume"]) == 0
    said = capsys.readouterr().out
    assert not marker.exists()
    assert "stagey-f0f0f0f0f0f0 hold(s) this config but no record of this machine's runs" in said
    (new,) = [d for d in root.glob("stagey-*") if d != foreign]
    assert json.loads((new / "run.json").read_text())["resumed_from"] is None
    assert (new / "results.csv").read_text() == clean


def test_resume_adopts_this_machines_sibling_and_a_named_one_and_says_so(
    stage_suite, tmp_path, capsys
):
    out = tmp_path / "out"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    (first,) = root.glob("stagey-*")
    (stage_suite / "stagey.py").write_text((stage_suite / "stagey.py").read_text() + "\n# edit\n")
    capsys.readouterr()
    assert main(["run", str(stage_suite), "--out", str(out), "--device", "cpu", "--resume"]) == 0
    said = capsys.readouterr().out
    assert f"reusing the stage files of {first} (written by a run on this machine)" in said
    # a folder from elsewhere (no seal) is adopted when the user names it
    elsewhere = tmp_path / "from-a-colleague" / first.name
    shutil.copytree(first, elsewhere)
    key = json.loads((elsewhere / "key.json").read_text())
    key.pop("seal")
    (elsewhere / "key.json").write_text(json.dumps(key))
    for d in root.glob("stagey-*"):
        shutil.rmtree(d)
    (stage_suite / "stagey.py").write_text((stage_suite / "stagey.py").read_text() + "\n# again\n")
    assert (
        main(
            [
                "run",
                str(stage_suite),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--resume",
                "--resume-from",
                str(elsewhere),
            ]
        )
        == 0
    )
    assert "(named by --resume-from)" in capsys.readouterr().out


def test_adoption_copies_no_symlink_and_nothing_through_one(stage_suite, tmp_path):
    out = tmp_path / "out"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    (first,) = root.glob("stagey-*")
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    (first / "loot.pt").symlink_to(secret)
    (first / "lootdir").symlink_to(tmp_path, target_is_directory=True)
    (stage_suite / "stagey.py").write_text((stage_suite / "stagey.py").read_text() + "\n# edit\n")
    assert _run(stage_suite, out, "--resume") == 0
    (new,) = [d for d in root.glob("stagey-*") if d != first]
    assert not (new / "loot.pt").exists() and not (new / "lootdir").exists()


# ------------------------------------------------------------------------------ links and beacons

EVIL = {
    "js": "javascript:alert(document.domain)",
    "beacon": "![x](http://host.example/beacon.png)",
    "phish": "[log in here](https://evil.example/login)",
    "script": "<script>alert(1)</script>",
    "img": "<img src=http://host.example/b.png onerror=alert(1)>",
    "tick": "`x` ![y](//host.example/y.png) `",
}


class _Attrs(HTMLParser):
    """Every (tag, attribute, value) of an HTML page."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        self.found += [(tag, k, v or "") for k, v in attrs]

    handle_startendtag = handle_starttag


def _attrs(html: str) -> list:
    p = _Attrs()
    p.feed(html)
    return p.found


def _assert_local_only(html: str, where: str) -> None:
    """No remote resource, no scheme: every src/href relative (./, ../, #) or a data: image; no
    event handler attribute; no <script>."""
    for tag, k, v in _attrs(html):
        assert not k.startswith("on"), f"{where}: <{tag} {k}=...>"
        assert "javascript:" not in v.lower(), f"{where}: <{tag} {k}={v!r}>"
        if k in ("src", "href"):
            assert v.startswith(("./", "../", "#", "data:image/")), f"{where}: <{tag} {k}={v!r}>"
        assert tag != "script", where


def _evil_results(root: Path) -> Path:
    """A results folder as a stranger could send it: hostile folder, experiment, case and method
    names, and run.json strings."""
    rows = pd.DataFrame(
        [
            {
                "experiment": EVIL["script"],
                "suite": EVIL["beacon"],
                "case": case,
                "method": method,
                "seed": seed,
                "lam": "0.5,0.5",
                "metric": metric,
                "value": 0.1 * seed + i,
            }
            for i, (case, method) in enumerate(
                [(EVIL["beacon"], EVIL["script"]), (EVIL["img"], EVIL["phish"])]
            )
            for seed in (0, 1)
            for metric in (EVIL["tick"], "kl")
        ]
    )
    info = {
        "experiment": EVIL["script"],
        "suite": EVIL["img"],
        "preset": EVIL["beacon"],
        "device": EVIL["phish"],
        "finished": EVIL["beacon"],
        "git_commit": EVIL["img"],
        "run_key": EVIL["tick"],
        "overrides": {"a": EVIL["phish"], EVIL["script"]: 1},
        "code_version": {"source": EVIL["beacon"]},
        "config": {"k": EVIL["script"]},
    }
    run_dir = root / EVIL["js"]
    run_dir.mkdir(parents=True)
    write_results(run_dir, rows, info)
    (root / f"{EVIL['js']}.csv").write_text("a,b\n1,2\n")  # a data file with that name too
    return root


def test_report_renders_hostile_names_and_run_json_as_data(tmp_path, capsys):
    root = _evil_results(tmp_path / "reports" / "suite-quick")
    assert main(["report", str(root)]) == 0
    html = (root / "index.html").read_text()
    _assert_local_only(html, "report page")
    assert "./javascript%3Aalert%28document.domain%29/results.csv" in html
    md = (root / "report.md").read_text()
    # what a Markdown viewer that passes HTML through would show
    viewer = MarkdownIt("commonmark", {"html": True}).enable("table")
    _assert_local_only(viewer.render(md), "report.md in a permissive viewer")
    shown = viewer.render(md)
    assert "<script" not in shown and "<img src=http" not in shown
    # the landing page over it
    assert main(["report", "--index", str(tmp_path / "reports")]) == 0
    _assert_local_only((tmp_path / "reports" / "index.html").read_text(), "landing page")
    _assert_local_only(viewer.render((tmp_path / "reports" / "index.md").read_text()), "index.md")


def test_markdown_prose_never_links_out(tmp_path):
    html = render_markdown(
        "[a](javascript:alert(1)) ![b](http://h/b.png) <http://h> [c](//h/x) "
        "[d][r] ![e](data:image/png;base64,AAAA) [f](files/x.csv)\n\n[r]: http://h\n"
    )
    _assert_local_only(html, "prose")
    assert '<a href="./files/x.csv">f</a>' in html


def _bundle(root: Path, headline: dict) -> Path:
    rep = root / "sub"
    rep.mkdir(parents=True)
    (rep / "report.md").write_text("# Sub\n\nwords\n")
    (rep / "headline.json").write_text(json.dumps(headline))
    return rep


def test_landing_page_reads_only_files_inside_the_bundle(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("PRIVATE-KEY-MATERIAL")
    root = tmp_path / "reports"
    rep = _bundle(
        root,
        {
            "title": "t",
            "headlines": [
                {"title": "a", "text": "x", "figure": "fig.png"},
                {"title": "b", "text": "y", "figure": "../../secret.png"},
                {"title": "c", "text": "z", "figure": str(tmp_path / "secret.png")},
            ],
        },
    )
    (rep / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    (rep / "fig.alt.txt").symlink_to(secret)  # the alt text names a file outside
    (tmp_path / "secret.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["report", "--index", str(root)]) == 0
    page = (root / "index.html").read_text() + (root / "index.md").read_text()
    assert "PRIVATE-KEY-MATERIAL" not in page and "secret.png" not in page
    assert 'src="./sub/fig.png"' in page


@pytest.mark.parametrize(
    "headline",
    [
        [1, 2],
        {"headlines": "abc"},
        {"headlines": [{"text": 3}]},
        {"headlines": [{"title": "t", "counts": [1]}]},
    ],
)
def test_mistyped_headline_json_is_one_line_naming_the_file(tmp_path, capsys, headline):
    root = tmp_path / "reports"
    _bundle(root, headline)
    assert main(["report", "--index", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "headline.json" in err[0] and err[0].startswith("modgen-bench: error:")
    assert not (root / "index.html").exists()


def test_report_never_overwrites_a_landing_page_or_a_users_file(tmp_path, capsys):
    reports = tmp_path / "reports"
    _evil_results(reports / "suite-quick")
    assert main(["report", str(reports / "suite-quick")]) == 0
    assert main(["report", "--index", str(reports)]) == 0
    landing = (reports / "index.html").read_bytes()
    capsys.readouterr()
    assert main(["report", str(reports)]) == 2  # a folder of reports, not runs
    err = capsys.readouterr().err
    assert "report --index" in err and len(err.strip().splitlines()) == 1
    assert (reports / "index.html").read_bytes() == landing
    (reports / "suite-quick" / "index.html").write_text("<p>my own notes</p>")
    assert main(["report", str(reports / "suite-quick")]) == 2
    assert "does not overwrite it" in capsys.readouterr().err
    assert (reports / "suite-quick" / "index.html").read_text() == "<p>my own notes</p>"
    (reports / "suite-quick" / "index.html").unlink()
    assert main(["report", str(reports / "suite-quick")]) == 0  # and a report page over a report


# ------------------------------------------------------------------------------ planted symlinks


def test_symlinked_figures_folder_is_an_error_naming_it(tmp_path, capsys):
    root = _evil_results(tmp_path / "suite-quick")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / EVIL["js"] / "figures").symlink_to(elsewhere, target_is_directory=True)
    assert main(["report", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "figures" in err[0] and "symbolic link" in err[0]
    assert list(elsewhere.iterdir()) == []


def test_symlinked_run_folder_is_an_error_naming_it(stage_suite, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(stage_suite, out) == 0
    root = out / "stagesuite-quick"
    (run_dir,) = root.glob("stagey-*")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run_dir, elsewhere)
    for f in elsewhere.iterdir():
        f.unlink() if f.is_file() else shutil.rmtree(f)
    run_dir.symlink_to(elsewhere, target_is_directory=True)
    capsys.readouterr()
    assert _run(stage_suite, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and run_dir.name in err[0] and "symbolic link" in err[0]
    assert list(elsewhere.iterdir()) == []


def test_replacing_a_symlinked_report_never_takes_its_targets_mode(tmp_path):
    root = _evil_results(tmp_path / "suite-quick")
    target = tmp_path / "target.md"
    target.write_text("theirs")
    os.chmod(target, 0o4777)
    (root / "report.md").symlink_to(target)
    assert main(["report", str(root)]) == 0
    st = (root / "report.md").lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) & 0o7000 == 0
    assert stat.S_IMODE(st.st_mode) & 0o022 == 0 or os.umask(0o022) & 0o022 == 0
    assert target.read_text() == "theirs" and stat.S_IMODE(target.stat().st_mode) == 0o4777


def test_results_read_through_a_symlink_are_refused(tmp_path, capsys):
    root = _evil_results(tmp_path / "suite-quick")
    run_dir = root / EVIL["js"]
    secret = tmp_path / "run.json"
    secret.write_text(json.dumps({"experiment": "x"}))
    (run_dir / "run.json").unlink()
    (run_dir / "run.json").symlink_to(secret)
    assert main(["report", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.json" in err[0] and "symbolic link" in err[0]


def test_a_home_without_room_for_the_machine_key_only_stops_adoption(
    stage_suite, tmp_path, monkeypatch
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("MODGEN_BENCH_STATE", str(blocker / "state"))
    out = tmp_path / "out"
    assert _run(stage_suite, out) == 0
    (run_dir,) = (out / "stagesuite-quick").glob("stagey-*")
    assert json.loads((run_dir / "key.json").read_text())["seal"] is None


@pytest.mark.corpora("scripture", "fortunes-es")
def test_payload_in_every_stage_file_of_a_real_pipeline_run_never_runs(tmp_path):
    """The real-world plug-in's stage and checkpoint files (experts, loglik, gates, monoliths,
    router, draws) all replaced by a payload after the run, the jobs' done markers removed: the
    rerun computes every stage again, runs nothing and gives the same rows."""
    import copy

    from test_launch import MICRO

    from modgen_bench.results import RunContext
    from modgen_bench.suites import load_plugin

    micro = {**MICRO, "seeds": [0]}
    plugin = load_plugin(Path(__file__).resolve().parent.parent / "real_world" / "modular_text.py")

    def run():
        ctx = RunContext("real_world", copy.deepcopy(micro), tmp_path / "run", "cpu", 0)
        plugin.run(ctx)
        return ctx.frame()

    clean = run()
    planted = sorted((tmp_path / "run").rglob("*.pt"))
    stems = {p.name.rsplit("-", 1)[0] for p in planted}
    assert {"loglik", "gate-excess", "router", "q-draws"} <= stems and len(planted) >= 8
    marker = tmp_path / "PWNED"
    for f in planted:
        _plant(f, marker, "torch")
    for done in (tmp_path / "run").rglob("done"):
        done.unlink()
    again = run()
    assert not marker.exists()
    pd.testing.assert_frame_equal(again, clean, check_exact=True)
