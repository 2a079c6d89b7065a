"""Sweep launcher: independent jobs through joblib (one machine) or submitit (SLURM), or in series.

A job is an importable function and its keyword arguments (`Job`); it runs in its own folder
``root/<job.name>/`` (where it may keep checkpoints) and returns ``(rows, info)``: a list of tidy
row dicts and a JSON-able dict of provenance. `run_job` writes ``rows.json``, ``info.json`` and
finally ``done`` (DomainBed's pattern), which records the number of rows and the sha256 of
``rows.json``: a job whose ``done`` matches its rows (and, when the job says how many it makes,
``Job.expected_rows``) is loaded, not rerun, so a killed sweep resumes job by job, whatever
launcher ran it; a job whose rows are missing, empty, short or altered is run again. `launch`
returns the results in the order of ``jobs`` whatever order they finished in, so rows from
``serial``, ``joblib -j N`` and ``submitit`` are identical (each job seeds everything itself).

Launchers (engines users already run; no home-made scheduler):
- ``serial``: in this process, one after another;
- ``joblib``: ``joblib.Parallel(n_jobs=N)`` worker processes (loky) on this machine;
- ``submitit``: ``submitit.AutoExecutor``: SLURM when ``sbatch`` is there (partition, time, GPUs
  and CPUs per job from `SlurmSpec`; at most N array jobs at once), otherwise submitit's local
  executor (N job processes at a time); ``cluster="debug"`` runs them in this process.
A job's function may be the library's or a suite plug-in's: a worker in a fresh process imports
the plug-in from its file before it unpickles the function (`Job`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .atomic import ensure_dir, read_bytes_nofollow, refuse_links, write_text
from .errors import UserError
from .suites import SUITE_PREFIX, plugin_module

_log = logging.getLogger(__name__)

__all__ = [
    "LAUNCHERS",
    "Job",
    "SlurmSpec",
    "LaunchSpec",
    "run_job",
    "launch",
    "launch_into",
    "is_job_done",
]

LAUNCHERS = ("serial", "joblib", "submitit")


@dataclass
class Job:
    """``fn(out_dir=root/name, **kwargs) -> (rows, info)``; ``name``: a folder name unique per
    sweep.

    ``plugin`` ((module name, file), set by `launch_into` from the run's context) is the suite
    plug-in that made the job: a worker in a fresh process imports it before it runs ``fn``, so
    what the plug-in registers on import (a corpus, a method) exists there too. ``fn`` itself may
    live in the plug-in or a sibling module of its suite folder: it travels as a reference
    (module, name, file) and is imported again on the other side (`suites.plugin_module`).
    """

    name: str
    fn: Callable
    kwargs: dict = field(default_factory=dict)
    plugin: tuple | None = None
    expected_rows: int | None = None  # rows the job's plan makes (None: at least one)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        module = sys.modules.get(self.fn.__module__)
        if self.fn.__module__.startswith(SUITE_PREFIX) and module is not None:
            state["fn"] = (self.fn.__module__, self.fn.__qualname__, module.__file__)
        return state

    def __setstate__(self, state: dict) -> None:
        if state.get("plugin"):
            plugin_module(*state["plugin"])
        if isinstance(state["fn"], tuple):
            module, qualname, file = state["fn"]
            owner = plugin_module(module, file)
            state["fn"] = functools.reduce(getattr, qualname.split("."), owner)
        self.__dict__.update(state)


@dataclass
class SlurmSpec:
    """submitit parameters for a SLURM job (None: the cluster's default)."""

    partition: str | None = None
    time_min: int = 240
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    cluster: str | None = None  # None: auto (slurm if available, else local); "local"; "debug"


@dataclass
class LaunchSpec:
    launcher: str = "serial"
    n_jobs: int = 1
    slurm: SlurmSpec = field(default_factory=SlurmSpec)

    def __post_init__(self):
        if self.launcher not in LAUNCHERS:
            raise UserError(
                f"unknown launcher '{self.launcher}'; choose one of {', '.join(LAUNCHERS)}"
            )
        if self.n_jobs < 1:
            raise UserError(f"-j must be >= 1 (got {self.n_jobs})")


def _read_json(path: Path):
    return json.loads(read_bytes_nofollow(path))


def _load(folder: Path):
    return _read_json(folder / "rows.json"), _read_json(folder / "info.json")


def _why_not_done(folder: Path, expected: int | None) -> str:
    """'' when ``folder`` holds a finished job: ``done`` and ``info.json`` readable, ``rows.json``
    a non-empty list of row objects whose count and sha256 ``done`` records, and as many rows as
    the plan ``expected``; else why not."""
    if not (folder / "done").exists():
        return "no done marker"
    try:
        raw = read_bytes_nofollow(folder / "rows.json")
        rows, info = json.loads(raw), _read_json(folder / "info.json")
        mark = json.loads(read_bytes_nofollow(folder / "done"))
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if (
        not isinstance(rows, list)
        or not all(isinstance(r, dict) for r in rows)
        or not isinstance(info, dict)
    ):
        return "rows.json is not a list of rows, or info.json not an object"
    if not rows or (expected is not None and len(rows) != expected):
        return f"rows.json holds {len(rows)} rows" + (
            f", the plan makes {expected}" if expected is not None else ""
        )
    if (
        not isinstance(mark, dict)
        or mark.get("rows") != len(rows)
        or mark.get("sha256") != hashlib.sha256(raw).hexdigest()
    ):
        return "rows.json differs from what done records"
    return ""


def is_job_done(root, name: str, expected: int | None = None) -> bool:
    return not _why_not_done(Path(root) / name, expected)


def run_job(job: Job, root) -> tuple[list, dict]:
    """Run ``job`` in ``root/job.name`` unless it is done there; write rows, info, then ``done``
    (the row count and the sha256 of rows.json). A job whose rows are empty or fewer than its
    ``expected_rows`` is an error: `done` is never written over lost rows."""
    from . import distributed as dist

    folder = Path(root) / job.name
    why = _why_not_done(folder, job.expected_rows)
    if not why:
        return _load(folder)
    if why != "no done marker":
        _log.warning("job %s: %s; it runs again", folder, why)
    ensure_dir(folder)
    rows, info = job.fn(out_dir=str(folder), **job.kwargs)
    if not rows or (job.expected_rows is not None and len(rows) != job.expected_rows):
        raise RuntimeError(
            f"job {job.name} made {len(rows)} rows; its plan makes "
            f"{job.expected_rows or 'at least one'}"
        )
    if dist.is_writer():
        raw = json.dumps(rows)
        write_text(folder / "rows.json", raw)
        write_text(folder / "info.json", json.dumps(info, default=str))
        write_text(
            folder / "done",
            json.dumps(
                {
                    "rows": len(rows),
                    "sha256": hashlib.sha256(raw.encode()).hexdigest(),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }
            )
            + "\n",
        )
    return rows, info


def _submitit(jobs, root, spec: LaunchSpec):
    import submitit

    s = spec.slurm
    ex = submitit.AutoExecutor(folder=Path(root) / "submitit", cluster=s.cluster)
    params = dict(timeout_min=s.time_min, cpus_per_task=s.cpus_per_task)
    if s.gpus_per_node:
        params["gpus_per_node"] = s.gpus_per_node
    if ex.cluster == "slurm":
        params["slurm_array_parallelism"] = spec.n_jobs
        if s.partition:
            params["slurm_partition"] = s.partition
    ex.update_parameters(**params)
    if ex.cluster == "slurm":  # one array, at most N running
        return [j.result() for j in ex.map_array(run_job, jobs, [str(root)] * len(jobs))]
    out = []
    for i in range(0, len(jobs), spec.n_jobs):  # local: N processes at a time
        chunk = [ex.submit(run_job, job, str(root)) for job in jobs[i : i + spec.n_jobs]]
        out += [j.result() for j in chunk]
    return out


def launch(
    jobs: list[Job], root, spec: LaunchSpec | None = None, log=print
) -> list[tuple[list, dict]]:
    """Run every job (finished ones are loaded from their folders); results in ``jobs``' order."""
    spec = spec or LaunchSpec()
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"job names must be unique (got {names})")
    root = Path(root)
    refuse_links(root)
    pending = [j for j in jobs if not is_job_done(root, j.name, j.expected_rows)]
    if len(pending) < len(jobs):
        log(f"{len(jobs) - len(pending)} of {len(jobs)} jobs done already, loaded from {root}")
    from . import distributed as dist

    results = {}
    if pending and spec.launcher == "joblib" and spec.n_jobs > 1 and not dist.is_distributed():
        from joblib import Parallel, delayed

        Parallel(n_jobs=min(spec.n_jobs, len(pending)))(delayed(run_job)(j, root) for j in pending)
    elif pending and spec.launcher == "submitit" and not dist.is_distributed():
        _submitit(pending, root, spec)
    else:  # serial (and always under torchrun: ranks in step)
        for j in pending:
            out = run_job(j, root)
            if not dist.is_writer():  # rank 0 reads back what it wrote, as below
                results[j.name] = out
            dist.barrier()
    # every launcher's rows come back through the same JSON files: the same Python values
    return [results[j.name] if j.name in results else _load(root / j.name) for j in jobs]


def launch_into(ctx, jobs: list[Job], spec: LaunchSpec) -> None:
    """A suite plug-in's sweep: `launch` the jobs under ``ctx.out_dir/ckpt``, add their rows to
    ``ctx`` in job order, and merge each job's ``info["corpora"]`` (corpus -> {"resample<r>":
    provenance}) into ``ctx.info["corpora"]`` (run.json)."""
    prov = ctx.info.setdefault("corpora", {})
    plugin = getattr(ctx, "plugin", None)
    for job in jobs:
        job.plugin = job.plugin or plugin
    for rows, info in launch(jobs, Path(ctx.out_dir) / "ckpt", spec):
        for row in rows:
            ctx.add(**row)
        for name, per_resample in info["corpora"].items():
            prov.setdefault(name, {}).update(per_resample)
