"""`modgen-bench run SUITE`: run every experiment of a suite folder, then report.

A run is an identity: its folder ``out/<suite>-<preset>/<experiment>-<key>/``
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

from .atomic import confined, ensure_dir, refuse_links, write_json
from .errors import UserError
from .provenance import config_hash, git_commit, provenance, seal, sealed_here
from .reporting import build_report
from .results import RunContext, is_done, write_results
from .suites import discover, installed_name

__all__ = [
    "resolve_device",
    "code_version",
    "run_key",
    "parse_overrides",
    "apply_overrides",
    "run_suite",
]

_PACKAGE = Path(__file__).resolve().parent


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"unknown device '{device}'; choose one of auto, cpu, cuda")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise UserError(
            "--device cuda was asked for but torch sees no CUDA device; use --device auto or cpu"
        )
    return "cpu"


def code_version(suite_dir=None) -> dict:
    """What the code of a run was: ``source`` (16 hex digits of the sha256 over every ``.py`` of
    the library and every ``.py``/``.toml`` of the suite folder, path and bytes), the git commit
    (informational: '+dirty' says nothing about *which* edit) and the package version."""
    h = hashlib.sha256()
    files = [(f.relative_to(_PACKAGE).as_posix(), f) for f in sorted(_PACKAGE.rglob("*.py"))]
    if suite_dir is not None:
        files += [
            (f"suite/{f.name}", f)
            for f in sorted([*Path(suite_dir).glob("*.py"), *Path(suite_dir).glob("*.toml")])
        ]
    for name, f in files:
        h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    from importlib import metadata

    try:
        pkg = metadata.version("modgen-bench")
    except metadata.PackageNotFoundError:
        pkg = None
    return {"source": h.hexdigest()[:16], "git_commit": git_commit(), "package": pkg}


def run_key(experiment: str, preset: str, config: dict, device: str, code: dict) -> str:
    """The identity of a run: 12 hex digits over (experiment, preset, config, device, source)."""
    return config_hash(
        {
            "experiment": experiment,
            "preset": preset,
            "config": config,
            "device": device,
            "code": code["source"],
        }
    )


def config_key(experiment: str, preset: str, config: dict, device: str) -> str:
    """`run_key` without the code version: runs with equal config keys differ only in code."""
    return config_hash(
        {"experiment": experiment, "preset": preset, "config": config, "device": device}
    )


def _writer() -> bool:
    try:
        from .distributed import is_writer
    except ImportError:
        return True
    return is_writer()


#: files of a run folder that are results or bookkeeping, never stage checkpoints
_NOT_STAGES = {
    "done",
    "results.csv",
    "results.parquet",
    "run.json",
    "key.json",
    "rows.json",
    "info.json",
    "report.md",
    "index.html",
    "headline.json",
}


def key_record(run_key: str, ckey: str, folder: str) -> dict:
    """What key.json's ``seal`` signs (`provenance.seal`): the run, its config and its folder."""
    return {"run_key": run_key, "config_key": ckey, "folder": folder}


def _copy_stage_files(src: Path, dst: Path) -> None:
    """Copy the regular files of ``src`` (stage checkpoints) into ``dst``: never a symlink, nor
    a folder reached through one, nor results, figures or bookkeeping."""
    import os
    import stat

    for here, dirs, files in os.walk(src):  # followlinks=False: linked folders skipped
        dirs[:] = [
            d
            for d in dirs
            if d not in ("figures", "submitit") and not os.path.islink(os.path.join(here, d))
        ]
        for name in files:
            f = Path(here, name)
            if name in _NOT_STAGES or name.startswith(".") or not stat.S_ISREG(f.lstat().st_mode):
                continue
            target = dst / f.relative_to(src)
            ensure_dir(target.parent)
            shutil.copyfile(f, target, follow_symlinks=False)


def _adoptable(folder: Path, ckey: str, key: str, named: set) -> str | None:
    """Why the earlier run ``folder`` may lend its stages ('sealed', 'named'), '' when it holds
    the same config but no record of this machine's runs, None when it is no candidate."""
    kj = folder / "key.json"
    if folder.is_symlink() or kj.is_symlink() or not kj.is_file():
        return None
    try:
        k = json.loads(kj.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(k, dict) or k.get("config_key") != ckey or k.get("run_key") == key:
        return None
    if folder.resolve() in named:
        return "named"
    record = key_record(str(k.get("run_key")), ckey, folder.name)
    return "sealed" if sealed_here(record, k.get("seal")) else ""


def adopt_stages(
    root: Path, experiment: str, ckey: str, key: str, run_dir: Path, named=(), log=print
) -> str | None:
    """``--resume`` across a code change: copy the stage checkpoints of the newest earlier run of
    ``experiment`` with the same config key (same config, preset and device; other code) into
    ``run_dir``; returns that folder's name (recorded as ``resumed_from``), or None.

    Only folders whose key.json carries this machine's seal (`provenance.seal`: written by a run
    on this machine) or that the user names (``--resume-from DIR``) are candidates: a folder
    that arrived from elsewhere lends nothing, and the log says so."""
    named = {Path(d).resolve() for d in named}
    folders = {p for p in root.glob(f"{experiment}-*") if p.is_dir()} | {Path(d) for d in named}
    cands, foreign = [], []
    for folder in sorted(folders):
        why = _adoptable(folder, ckey, key, named)
        if why:
            cands.append(((folder / "key.json").lstat().st_mtime, folder, why))
        elif why == "":
            foreign.append(folder.name)
    if foreign:
        log(
            f"[{experiment}] --resume: {', '.join(foreign)} hold(s) this config but no record of "
            "this machine's runs: their stage files are not reused (name a folder you trust "
            "with --resume-from DIR)"
        )
    if not cands:
        return None
    _, prev, why = max(cands)
    _copy_stage_files(prev, run_dir)
    log(
        f"[{experiment}] --resume: reusing the stage files of {prev} "
        f"({'named by --resume-from' if why == 'named' else 'written by a run on this machine'})"
    )
    return prev.name


def parse_overrides(items) -> dict:
    """``["lm_steps=50", "expert.lr=1e-3", "cases=['clean']"]`` -> {dotted key: value}; values are
    TOML (numbers, booleans, arrays, quoted strings), else taken as a bare string."""
    out = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set '{item}': expected key=value (e.g. --set lm_steps=50)")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        except RecursionError:
            raise UserError(f"--set {key}: the value is nested too deeply") from None
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
                raise UserError(
                    f"--set {dotted}: {where} has no key '{'.'.join(parts[: i + 1])}'; "
                    f"keys there: {have}"
                )
            if i == len(parts) - 1:
                node[part] = _same_kind(value, node[part], dotted)
            else:
                node = node[part]
    return config


def _same_kind(value, old, dotted: str):
    """``value`` checked against the preset's ``old`` value: same TOML kind (an integer may stand
    for a float), integers within 64 bits, so an override can never crash the experiment later."""

    def kind(v):
        return (
            "a bool"
            if isinstance(v, bool)
            else "a number"
            if isinstance(v, (int, float))
            else "an array"
            if isinstance(v, list)
            else "a table"
            if isinstance(v, dict)
            else "a string"
            if isinstance(v, str)
            else type(v).__name__
        )

    if kind(value) != kind(old):
        raise UserError(f"--set {dotted}={value!r}: expected {kind(old)} like the preset's {old!r}")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise UserError(f"--set {dotted}: {value} is outside the 64-bit integer range")
    if isinstance(old, int) and not isinstance(old, bool) and isinstance(value, float):
        raise UserError(f"--set {dotted}={value!r}: expected an integer like the preset's {old!r}")
    return float(value) if isinstance(old, float) and isinstance(value, int) else value


def _plan(suite: str, preset: str, device: str, only, overrides: dict) -> list:
    """(experiment, config, code, run key) of each experiment to run; every ``--only`` name and
    ``--set`` override is checked before any work starts."""
    experiments = discover(suite)
    if only is not None:
        names = {e.name for e in experiments}
        if not only:
            raise UserError(
                f"--only: no experiment named; suite '{suite}' has {', '.join(sorted(names))}"
            )
        unknown = sorted(set(only) - names)
        if unknown:
            raise UserError(
                f"--only: no experiment {', '.join(map(repr, unknown))} in suite "
                f"'{suite}'; it has {', '.join(sorted(names))}"
            )
        experiments = [e for e in experiments if e.name in set(only)]
    plan = []
    for exp in experiments:
        where = f"experiment '{exp.name}' preset '{preset}'"
        config = apply_overrides(exp.config(preset), overrides, where)
        seed = config.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise UserError(
                f"{exp.path}: preset '{preset}' key 'seed' = {seed!r}: expected an integer"
            )
        code = code_version(exp.path.parent)
        plan.append((exp, config, code, run_key(exp.name, preset, config, device, code)))
    return plan


def _prepare(
    root: Path, exp, ckey: str, key: str, code: dict, resume: bool, force: bool, resume_from, log
) -> tuple[Path, str | None]:
    """The run folder of one experiment (emptied under ``--force``, seeded from an earlier run
    under ``--resume``; never a symlink) and the folder its stages were adopted from."""
    from . import distributed as dist

    run_dir = root / f"{exp.name}-{key}"
    refuse_links(run_dir)
    if force and run_dir.exists() and dist.is_writer():
        shutil.rmtree(run_dir)
        log(f"[{exp.name}] --force: removed {run_dir}, every stage recomputes")
    resumed_from = None
    if resume and not run_dir.exists() and _writer():
        resumed_from = adopt_stages(root, exp.name, ckey, key, run_dir, resume_from, log)
    others = sorted(p.name for p in root.glob(f"{exp.name}-*") if p.is_dir() and p != run_dir)
    if others and not resumed_from:
        log(
            f"[{exp.name}] run {key} is new or partial (config, device or code differ from "
            f"{', '.join(others)}); nothing is reused from those (--resume reuses the stages "
            "of a run with the same config after a code change)"
        )
    dist.barrier()
    ensure_dir(run_dir)
    if _writer():
        write_json(
            run_dir / "key.json",
            {
                "run_key": key,
                "config_key": ckey,
                "code_version": code,
                "resumed_from": resumed_from,
                "seal": seal(key_record(key, ckey, run_dir.name)),
            },
        )
    return run_dir, resumed_from


def run_suite(
    suite: str,
    preset: str = "quick",
    device: str = "auto",
    out: str = "reports",
    resume: bool = False,
    only=None,
    log=print,
    overrides=None,
    force: bool = False,
    launch=None,
    resume_from=(),
) -> Path:
    """Run each experiment into ``out/<suite>-<preset>/<experiment>-<run key>/``; returns the
    suite folder.

    ``overrides`` ({dotted key: value}, from ``--set``) change the config and hence the key.
    ``resume``: a folder holding ``done`` is skipped; a new folder starts from the stages of an
    earlier run of the same config that this machine wrote, or of a ``resume_from`` folder.
    ``force``: the folder is deleted first. ``launch`` (`launch.LaunchSpec`): how a plug-in's
    independent jobs run (serial, joblib -j N, submitit). Under torchrun every rank runs this
    function (DDP inside the training stages) and only rank 0 writes (`distributed.is_writer`).
    A symlink in the place of the suite or a run folder is an error naming it.
    """
    if resume and force:
        raise UserError("--resume and --force contradict each other; give one")
    if resume_from and not resume:
        raise UserError("--resume-from names a folder to resume from: give --resume too")
    for d in resume_from:
        if not (Path(d) / "key.json").is_file():
            raise UserError(f"--resume-from {d}: not a run folder (no key.json in it)")
    device = resolve_device(device)
    from . import distributed as dist

    if dist.init_from_env(device) and not dist.is_writer():
        log = lambda *a, **k: None  # noqa: E731  (rank 0 speaks for all ranks)
    plan = _plan(suite, preset, device, only, dict(overrides or {}))
    root = Path(out) / f"{plan[0][0].suite}-{preset}"
    refuse_links(root)
    ensure_dir(root)
    with confined(root):
        for exp, config, code, key in plan:
            _run_one(
                root,
                exp,
                config,
                code,
                key,
                preset,
                device,
                dict(overrides or {}),
                resume,
                force,
                resume_from,
                launch,
                log,
            )
        if dist.is_writer():
            md, html = build_report(root)
            log(f"report: {md} and {html}")
    return root


def _run_one(
    root, exp, config, code, key, preset, device, overrides, resume, force, resume_from, launch, log
) -> None:
    """Run one experiment of the plan into its folder and write its results (`run_suite`)."""
    from . import distributed as dist

    seed = int(config.get("seed", 0))
    if resume and is_done(root / f"{exp.name}-{key}"):
        log(f"[{exp.name}] run {key} done already in {root / exp.name}-{key}, skipped (--resume)")
        return
    ckey = config_key(exp.name, preset, config, device)
    run_dir, resumed_from = _prepare(root, exp, ckey, key, code, resume, force, resume_from, log)
    module = exp.load()
    ctx = RunContext(suite=exp.suite, config=config, out_dir=run_dir, device=device, seed=seed)
    ctx.launch, ctx.plugin = launch, (module.__name__, module.__file__)
    log(f"[{exp.name}] running preset '{preset}' on {device} -> {run_dir}")
    t0 = time.perf_counter()
    try:
        module.run(ctx)
    except UserError as exc:  # a config value the plug-in refused: say whose
        raise UserError(f"{exp.path.name} preset '{preset}': {exc}") from exc
    if not ctx.rows:
        raise UserError(
            f"{exp.path.name} preset '{preset}' made no rows (is a list of the "
            "config, such as seeds, empty?); nothing was written for it"
        )
    rows = ctx.frame()
    rows.insert(0, "experiment", exp.name)
    info = provenance(
        suite=exp.suite,
        experiment=exp.name,
        preset=preset,
        config=config,
        overrides=overrides,
        run_key=key,
        code_version=code,
        resumed_from=resumed_from,
        seed=seed,
        device=device,
        suite_dir=str(exp.path.parent),
        installed_suite=installed_name(exp.path.parent),
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        wall_seconds=time.perf_counter() - t0,
        **ctx.info,
    )
    if dist.is_writer():
        write_results(run_dir, rows, info)
    dist.barrier()
    log(f"[{exp.name}] {len(rows)} rows in {info['wall_seconds']:.1f} s")
