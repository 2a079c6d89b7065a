"""Atomic writes: nothing half-written (DESIGN.md, Conventions).

Every writer here writes a temp file in the destination's folder, flushes and fsyncs it, then
``os.replace``s it over the destination and fsyncs the folder. A reader therefore sees either the
previous complete file or the new complete file, never a prefix, even after SIGKILL or a full disk.

A failure (read-only file system, permission denied, a parent that is a file, no space left)
removes the temp file, leaves the previous file untouched and raises `OutputError`, an `OSError`
whose message names the destination; the CLI turns it into one line and exit status 2.

    write_text(path, text)             str
    write_bytes(path, data)            bytes
    write_json(path, obj)              JSON (indent=2, default=str)
    write_frame(path, df)              pandas frame: .csv (no index) or .parquet by suffix
    write_with(path, fn)               fn(tmp_path) writes a path: torch.save, fig.savefig, np.save
    atomic_write(path, fn, binary)     fn(fileobj) writes to an open file object

Symbolic links are never written through: a destination that is a link is replaced by the new
file (its target untouched, its mode not copied), a folder on the way that is a link is an error
naming it (`OutputError`). Under `confined(root)` every folder between ``root`` and the
destination is checked, so a link planted anywhere inside a results folder cannot send a write
outside it; elsewhere the destination's own folder is.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

__all__ = [
    "OutputError",
    "atomic_write",
    "write_text",
    "write_bytes",
    "write_json",
    "write_frame",
    "write_with",
    "ensure_dir",
    "confined",
    "refuse_links",
    "read_bytes_nofollow",
]

#: folders whose insides are checked for links on every write (`confined`)
_ROOTS: list[Path] = []


class OutputError(OSError):
    """An output could not be written; ``str()`` names the destination and the OS reason."""

    def __init__(self, path, exc: BaseException, kept: bool = False):
        code = getattr(exc, "errno", None)
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        # kept: the destination was never touched (a write that failed mid-way went to a temp
        # file), so whatever complete file was there before is still there
        note = " (the previous file, if any, is unchanged)" if kept else ""
        super().__init__(code, f"cannot write '{path}': {reason}{note}")
        self.path = str(path)

    def __str__(self) -> str:
        return self.strerror


@contextlib.contextmanager
def confined(root):
    """Within the block, a write below ``root`` refuses any symlinked folder between ``root`` and
    the destination (``root`` itself included: the user names the folder above it)."""
    _ROOTS.append(Path(os.path.abspath(root)))
    try:
        yield
    finally:
        _ROOTS.pop()


def refuse_links(path, upto=None) -> None:
    """`OutputError` naming the first existing symlink among ``path`` and its folders up to (and
    including) ``upto`` (default: ``path`` alone)."""
    path = Path(os.path.abspath(path))
    stop = Path(os.path.abspath(upto)) if upto is not None else path
    chain = [path] + [p for p in path.parents if p == stop or stop in p.parents]
    for p in reversed(chain):
        if p.is_symlink():
            raise OutputError(
                p, OSError(errno.ELOOP, "is a symbolic link; outputs are never written through one")
            )


def _check_links(folder: Path) -> None:
    refuse_links(folder)
    folder = Path(os.path.abspath(folder))
    for root in _ROOTS:
        if folder == root or root in folder.parents:
            refuse_links(folder, root)


def read_bytes_nofollow(path) -> bytes:
    """The bytes of regular file ``path``, opened without following a symlink (`OSError` ELOOP)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read()


def ensure_dir(path) -> Path:
    """Create folder ``path`` (and parents); `OutputError` naming it when that is impossible or
    when it (or a folder above it, under `confined`) is a symlink."""
    path = Path(path)
    _check_links(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # a file sits where a folder should be
        raise OutputError(path, OSError(errno.ENOTDIR, "a file with that name exists")) from exc
    except OSError as exc:
        raise OutputError(path, exc) from exc
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms/file systems cannot open a directory: best effort
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_path(path: Path) -> str:
    # The temp name ends with the destination's suffix so that suffix-driven writers
    # (fig.savefig, np.save) pick the right format.
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
    )
    try:
        # mkstemp makes 0600 files; give the file the mode a plain open() would (or the mode of
        # the file it replaces), so outputs stay readable by the group and others as before
        try:
            st = os.lstat(path)
            mode = (
                stat.S_IMODE(st.st_mode) & 0o777 if stat.S_ISREG(st.st_mode) else 0o666 & ~_umask()
            )  # never a link's target's mode; no setuid bits
        except OSError:
            mode = 0o666 & ~_umask()
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return tmp


def _disk_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


def write_with(path, fn: Callable[[str], object]) -> Path:
    """Call ``fn(tmp_path)`` to write a temp file beside ``path``, fsync it, rename it in place."""
    path = Path(path)
    ensure_dir(path.parent)
    try:
        tmp = _temp_path(path)
    except OSError as exc:
        raise OutputError(path, exc, kept=True) from exc
    try:
        fn(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        # a writer that wraps the OS error in its own (torch.save: RuntimeError) on a full disk;
        # looked at before the temp file is removed, which frees its space again
        full = (
            isinstance(exc, Exception) and not isinstance(exc, OSError) and _disk_full(path.parent)
        )
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(path, exc, kept=True) from exc
        if full:
            raise OutputError(
                path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), kept=True
            ) from exc
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write(path, write: Callable, binary: bool = False) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path`` (text, or bytes when ``binary``)."""

    def fn(tmp):
        with open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            write(f)
            f.flush()

    return write_with(path, fn)


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text))


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data), binary=True)


def write_json(path, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (non-JSON values via ``str``) to ``path`` atomically."""
    return atomic_write(path, lambda f: json.dump(obj, f, indent=indent, default=str))


def write_frame(path, df, **kwargs) -> Path:
    """Write a pandas frame: ``.parquet`` via pyarrow, anything else as CSV without the index."""
    path = Path(path)
    if path.suffix == ".parquet":
        return write_with(path, lambda tmp: df.to_parquet(tmp, index=False, **kwargs))
    kwargs.setdefault("index", False)
    return atomic_write(path, lambda f: df.to_csv(f, **kwargs))
