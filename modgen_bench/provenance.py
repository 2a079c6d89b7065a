"""Provenance for every number: versions, git commit, device, seeds, and stable sub-seeds."""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["stable_seed", "config_hash", "versions", "distributions", "git_commit", "provenance"]

_PACKAGES = ("numpy", "scipy", "cvxpy", "torch", "pandas", "matplotlib", "hypothesis", "modgen-bench")


def stable_seed(*parts) -> int:
    """A 31-bit seed from a stable hash of ``parts`` (never Python's salted ``hash()``)."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def config_hash(config: dict) -> str:
    """12 hex digits of the sha256 of the sorted JSON config: the key of a run folder."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def distributions() -> dict:
    """``{name: version}`` of every distribution installed in this environment (importlib.metadata),
    sorted by lower-case name: the solvers behind cvxpy (clarabel, scs, osqp, ...) and every
    transitive dependency, not a hand-picked list."""
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name not in out:
            out[name] = dist.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def git_commit(path=None) -> str | None:
    """HEAD of the repository holding ``path`` (this package by default), '+dirty' if modified."""
    cwd = Path(path) if path else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(**extra) -> dict:
    """Everything needed to say where a number came from; ``extra`` adds config, seed, device."""
    return {"versions": versions(), "distributions": distributions(), "git_commit": git_commit(),
            "argv": sys.argv, **extra}
