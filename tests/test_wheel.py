"""The wheel is a working install: built from the sources, installed into a fresh venv
with no access to the checkout, it runs `check lemma1`, `solve examples/...` and a tiny suite.

Offline and fast: the wheel is built without build isolation (the project venv's setuptools),
installed with ``--no-deps``, and the fresh venv reaches the dependencies (numpy, torch, ...)
through a ``.pth`` line naming the project venv's site-packages -- a directory added that way has
its own ``.pth`` files ignored, so the checkout's editable install stays invisible.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (
    "pyproject.toml",
    "README.md",
    "modgen_bench",
    "theory_checks",
    "synthetic",
    "real_world",
    "examples",
)
TINY = [
    "--set",
    "n_random=1",
    "--set",
    "structured=[]",
    "--set",
    "steps=20",
    "--set",
    "log_every=10",
    "--set",
    'methods=["alg1"]',
    "--set",
    "structured_methods=[]",
    "--set",
    "per_domain_sweep=[]",
    "--set",
    "sweep_cases=0",
]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in SOURCES:  # a copy, so the build's build/ and egg-info never touch the checkout
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(
                path,
                src / name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        pip
        + [
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("modgen_bench-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        pip + ["--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    work = tmp / "work"  # not the checkout: nothing found by path
    work.mkdir()
    return {"wheel": wheel, "bin": env_dir / "bin", "work": work, "site": Path(site)}


def _run(installed, *args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(
        [str(installed["bin"] / "modgen-bench"), *args],
        cwd=installed["work"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_the_wheel_ships_checks_suites_and_examples(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    for path in (
        "theory_checks/__init__.py",
        "theory_checks/expected.json",
        "modgen_bench/_bundled/synthetic/convergence.toml",
        "modgen_bench/_bundled/synthetic/convergence.py",
        "modgen_bench/_bundled/synthetic/convergence.md.j2",  # its report's prose
        "modgen_bench/reporting/templates/real_text.md.j2",
        "modgen_bench/_bundled/real_world/text3.toml",
        "modgen_bench/_bundled/real_world/cpu_medium/modular_text.py",
        "modgen_bench/_bundled/examples/three_domains.json",
    ):
        assert path in names, path
    for init in ROOT.glob("modgen_bench/**/__init__.py"):  # every subpackage of the checkout
        assert str(init.relative_to(ROOT)) in names, init
    where = subprocess.run(
        [
            str(installed["bin"] / "python"),
            "-c",
            "import modgen_bench, theory_checks; print(modgen_bench.__file__); "
            "print(theory_checks.__file__)",
        ],
        cwd=installed["work"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(w).is_relative_to(installed["site"]) for w in where), where


def test_installed_check_and_solve_work_outside_the_checkout(installed):
    out = _run(installed, "check", "lemma1", "--instances", "20", "--out", "checks")
    assert out.returncode == 0, out.stderr
    verdicts = json.loads((installed["work"] / "checks" / "verdicts.json").read_text())["verdicts"]
    status = {v["reading"]: v["status"] for v in verdicts}
    assert status["support=domains"] == "fails" and status["support=union"] == "holds"
    out = _run(installed, "solve", "examples/three_domains.json", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "optimal"


def test_installed_run_finds_the_shipped_suite(installed):
    out = _run(
        installed,
        "run",
        "synthetic",
        "--only",
        "convergence",
        "--device",
        "cpu",
        "--out",
        "reports",
        *TINY,
    )
    assert out.returncode == 0, out.stderr
    (run_dir,) = (installed["work"] / "reports" / "synthetic-quick").glob("convergence-*")
    assert (run_dir / "done").exists()
    # the plug-in's report, its prose from the shipped template (not a generic fallback)
    assert "Mean below 1e-2:" in (run_dir.parent / "report.md").read_text()
    run = json.loads((run_dir / "run.json").read_text())
    assert Path(run["suite_dir"]).is_relative_to(installed["site"])  # the package's copy
    assert run["distributions"]["modgen-bench"] == run["versions"]["modgen-bench"]
