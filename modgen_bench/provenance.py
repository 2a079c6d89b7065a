"""Provenance for every number: versions, git commit, device, seeds, and stable sub-seeds."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import platform
import secrets
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = [
    "stable_seed",
    "config_hash",
    "versions",
    "distributions",
    "git_commit",
    "provenance",
    "machine_key_path",
    "seal",
    "sealed_here",
]

_PACKAGES = (
    "numpy",
    "scipy",
    "cvxpy",
    "torch",
    "pandas",
    "matplotlib",
    "hypothesis",
    "modgen-bench",
)


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
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(**extra) -> dict:
    """Everything needed to say where a number came from; ``extra`` adds config, seed, device."""
    return {
        "versions": versions(),
        "distributions": distributions(),
        "git_commit": git_commit(),
        "argv": sys.argv,
        **extra,
    }


def machine_key_path() -> Path:
    """Where this machine's run-record key lives: ``$MODGEN_BENCH_STATE/machine.key``, else
    ``$XDG_STATE_HOME/modgen-bench/machine.key``, else under ``~/.local/state/modgen-bench/``."""
    base = os.environ.get("MODGEN_BENCH_STATE")
    if base:
        return Path(base) / "machine.key"
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "modgen-bench" / "machine.key"


def _machine_key() -> bytes:
    """32 random bytes made once per machine (mode 0600, never through a symlink)."""
    path = machine_key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    flags = os.O_RDONLY | nofollow
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    with os.fdopen(os.open(path, flags), "r") as f:
        text = f.read().strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        from .errors import UserError

        raise UserError(
            f"{path}: not a machine key (hex digits); delete it and a new one is made"
        ) from None


def seal(record: dict) -> str | None:
    """HMAC-SHA256 of the sorted JSON of ``record`` under this machine's key: a run folder's
    key.json carries it, so ``--resume`` can tell the folders this machine's runs wrote from
    folders that arrived from elsewhere (whose stage files it then leaves alone). None, with a
    warning, where the key cannot be kept (a read-only home): such runs are adopted only when
    named (``--resume-from``)."""
    blob = json.dumps(record, sort_keys=True, default=str).encode()
    try:
        key = _machine_key()
    except OSError as exc:
        logging.getLogger(__name__).warning(
            "cannot keep this machine's run key at %s (%s); runs are not sealed",
            machine_key_path(),
            exc.strerror or exc,
        )
        return None
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def sealed_here(record: dict, mark) -> bool:
    """True when ``mark`` is `seal` of ``record`` on this machine."""
    mine = seal(record) if isinstance(mark, str) else None
    return mine is not None and hmac.compare_digest(mine, mark)
