"""`modgen-bench run SUITE`: run every experiment of a suite folder, then report.

A run is an identity (issue 11, item 1): its folder ``out/<suite>-<preset>/<experiment>-<key>/``
is keyed by `run_key`, a hash of the experiment, preset, config (after ``--set`` overrides),
device and `code_version` (a hash of the library's and the suite's source). A second config or a
code change therefore gets a new folder and recomputes everything; stage checkpoints inside a
folder are reused only under the identical key. ``--resume`` skips folders already ``done`` and,
after a code change, starts the new folder from the stage checkpoints of the newest run with the
same config (run.json records ``resumed_from``); ``--force`` deletes the folder first and
recomputes every stage.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
import tomllib
from pathlib import Path

from .atomic import write_json
from .provenance import config_hash, git_commit, provenance
from .reporting import build_report
from .results import RunContext, is_done, write_results
from .suites import discover, installed_name

__all__ = ["resolve_device", "code_version", "run_key", "parse_overrides", "apply_overrides",
           "run_suite"]

_PACKAGE = Path(__file__).resolve().parent


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device '{device}'; choose one of auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    import torch
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device auto or cpu")
    return "cpu"


def code_version(suite_dir=None) -> dict:
    """What the code of a run was: ``source`` (16 hex digits of the sha256 over every ``.py`` of
    the library and every ``.py``/``.toml`` of the suite folder, path and bytes), the git commit
    (informational: '+dirty' says nothing about *which* edit) and the package version."""
    h = hashlib.sha256()
    files = [(f.relative_to(_PACKAGE).as_posix(), f) for f in sorted(_PACKAGE.rglob("*.py"))]
    if suite_dir is not None:
        files += [(f"suite/{f.name}", f) for f in
                  sorted([*Path(suite_dir).glob("*.py"), *Path(suite_dir).glob("*.toml")])]
    for name, f in files:
        h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    from importlib import metadata
    try:
        pkg = metadata.version("modgen-bench")
    except metadata.PackageNotFoundError:
        pkg = None
    return {"source": h.hexdigest()[:16], "git_commit": git_commit(), "package": pkg}


def run_key(experiment: str, preset: str, config: dict, device: str, code: dict) -> str:
    """The identity of a run: 12 hex digits over (experiment, preset, config, device, code source)."""
    return config_hash({"experiment": experiment, "preset": preset, "config": config,
                        "device": device, "code": code["source"]})


def config_key(experiment: str, preset: str, config: dict, device: str) -> str:
    """`run_key` without the code version: runs with equal config keys differ only in code."""
    return config_hash({"experiment": experiment, "preset": preset, "config": config, "device": device})


def _writer() -> bool:
    try:
        from .distributed import is_writer
    except ImportError:
        return True
    return is_writer()


def adopt_stages(root: Path, experiment: str, ckey: str, key: str, run_dir: Path) -> str | None:
    """``--resume`` across a code change: copy the stage checkpoints of the newest earlier run of
    ``experiment`` with the same config key (same config, preset and device; other code) into
    ``run_dir``; returns that folder's name (recorded as ``resumed_from``), or None."""
    cands = []
    for kj in root.glob(f"{experiment}-*/key.json"):
        try:
            k = json.loads(kj.read_text())
        except (OSError, ValueError):
            continue
        if k.get("config_key") == ckey and k.get("run_key") != key:
            cands.append((kj.stat().st_mtime, kj.parent))
    if not cands:
        return None
    prev = max(cands)[1]
    skip = shutil.ignore_patterns("done", "results.csv", "results.parquet", "run.json", "key.json",
                                  "figures", ".*.tmp*")
    shutil.copytree(prev, run_dir, ignore=skip, dirs_exist_ok=True)
    return prev.name


def parse_overrides(items) -> dict:
    """``["lm_steps=50", "expert.lr=1e-3", "cases=['clean']"]`` -> {dotted key: value}; values are
    TOML (numbers, booleans, arrays, quoted strings), else taken as a bare string."""
    out = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set '{item}': expected key=value (e.g. --set lm_steps=50)")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        except RecursionError:
            raise ValueError(f"--set {key}: the value is nested too deeply") from None
        out[key] = value
    return out


def apply_overrides(config: dict, overrides: dict, where: str) -> dict:
    """A copy of ``config`` with each dotted key replaced; a key the config lacks is an error
    naming the keys it has (a typo never silently runs the default)."""
    import copy
    config = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node, parts = config, dotted.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                have = ", ".join(sorted(node)) if isinstance(node, dict) else "none (not a table)"
                raise ValueError(f"--set {dotted}: {where} has no key '{'.'.join(parts[:i + 1])}'; "
                                 f"keys there: {have}")
            if i == len(parts) - 1:
                node[part] = _same_kind(value, node[part], dotted)
            else:
                node = node[part]
    return config


def _same_kind(value, old, dotted: str):
    """``value`` checked against the preset's ``old`` value: same TOML kind (an integer may stand
    for a float), integers within 64 bits, so an override can never crash the experiment later."""
    def kind(v):
        return ("a bool" if isinstance(v, bool) else "a number" if isinstance(v, (int, float))
                else "an array" if isinstance(v, list) else "a table" if isinstance(v, dict)
                else "a string" if isinstance(v, str) else type(v).__name__)
    if kind(value) != kind(old):
        raise ValueError(f"--set {dotted}={value!r}: expected {kind(old)} like the preset's {old!r}")
    if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
        raise ValueError(f"--set {dotted}: {value} is outside the 64-bit integer range")
    if isinstance(old, int) and not isinstance(old, bool) and isinstance(value, float):
        raise ValueError(f"--set {dotted}={value!r}: expected an integer like the preset's {old!r}")
    return float(value) if isinstance(old, float) and isinstance(value, int) else value


def run_suite(suite: str, preset: str = "quick", device: str = "auto", out: str = "reports",
              resume: bool = False, only=None, log=print, overrides=None, force: bool = False,
              launch=None) -> Path:
    """Run each experiment into ``out/<suite>-<preset>/<experiment>-<run key>/``; returns the suite folder.

    ``overrides`` ({dotted key: value}, from ``--set``) change the config and hence the key.
    ``resume``: a folder holding ``done`` is skipped. ``force``: the folder is deleted first.
    ``launch`` (`launch.LaunchSpec`): how a plug-in's independent jobs run (serial, joblib -j N,
    submitit). Under torchrun every rank runs this function (DDP inside the training stages) and
    only rank 0 writes (`distributed.is_writer`).
    """
    if resume and force:
        raise ValueError("--resume and --force contradict each other; give one")
    device = resolve_device(device)
    from . import distributed as dist
    if dist.init_from_env(device) and not dist.is_writer():
        log = lambda *a, **k: None          # noqa: E731  (rank 0 speaks for all ranks)
    experiments = discover(suite)
    if only:
        names = {e.name for e in experiments}
        unknown = sorted(set(only) - names)
        if unknown:
            raise ValueError(f"--only: no experiment {', '.join(map(repr, unknown))} in suite "
                             f"'{suite}'; it has {', '.join(sorted(names))}")
        experiments = [e for e in experiments if e.name in set(only)]
    overrides = dict(overrides or {})
    root = Path(out) / f"{experiments[0].suite}-{preset}"
    root.mkdir(parents=True, exist_ok=True)
    plan = []
    for exp in experiments:   # validate every override before any work starts
        config = apply_overrides(exp.config(preset), overrides, f"experiment '{exp.name}' preset '{preset}'")
        code = code_version(exp.path.parent)
        key = run_key(exp.name, preset, config, device, code)
        plan.append((exp, config, code, key))
    for exp, config, code, key in plan:
        seed = int(config.get("seed", 0))
        run_dir = root / f"{exp.name}-{key}"
        if resume and is_done(run_dir):
            log(f"[{exp.name}] run {key} done already in {run_dir}, skipped (--resume)")
            continue
        if force and run_dir.exists() and dist.is_writer():
            shutil.rmtree(run_dir)
            log(f"[{exp.name}] --force: removed {run_dir}, every stage recomputes")
        ckey = config_key(exp.name, preset, config, device)
        resumed_from = None
        if resume and not run_dir.exists() and _writer():
            resumed_from = adopt_stages(root, exp.name, ckey, key, run_dir)
        others = sorted(p.name for p in root.glob(f"{exp.name}-*") if p.is_dir() and p != run_dir)
        if resumed_from:
            log(f"[{exp.name}] --resume: run {key} reuses the stage checkpoints of {resumed_from} "
                "(same config, other code); run.json records resumed_from")
        elif others:
            log(f"[{exp.name}] run {key} is new or partial (config, device or code differ from "
                f"{', '.join(others)}); nothing is reused from those (--resume reuses the stages "
                "of a run with the same config after a code change)")
        module = exp.load()
        ctx = RunContext(suite=exp.suite, config=config, out_dir=run_dir, device=device, seed=seed)
        ctx.launch, ctx.plugin = launch, (module.__name__, module.__file__)
        dist.barrier()
        run_dir.mkdir(parents=True, exist_ok=True)
        if _writer():
            write_json(run_dir / "key.json", {"run_key": key, "config_key": ckey, "code_version": code,
                                              "resumed_from": resumed_from})
        log(f"[{exp.name}] running preset '{preset}' on {device} -> {run_dir}")
        t0 = time.perf_counter()
        module.run(ctx)
        rows = ctx.frame()
        rows.insert(0, "experiment", exp.name)
        info = provenance(suite=exp.suite, experiment=exp.name, preset=preset, config=config,
                          overrides=overrides, run_key=key, code_version=code, resumed_from=resumed_from, seed=seed,
                          device=device, suite_dir=str(exp.path.parent),
                          installed_suite=installed_name(exp.path.parent),
                          finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                          wall_seconds=time.perf_counter() - t0, **ctx.info)
        if dist.is_writer():
            write_results(run_dir, rows, info)
        dist.barrier()
        log(f"[{exp.name}] {len(rows)} rows in {info['wall_seconds']:.1f} s")
    if dist.is_writer():
        md, html = build_report(root)
        log(f"report: {md} and {html}")
    return root
