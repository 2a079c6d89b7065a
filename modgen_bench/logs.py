"""Messages and progress bars: `logging` for what happened, tqdm for how far along it is.

`configure` is called once per command (from ``--quiet`` / ``--log-file``): messages of the
``modgen_bench`` loggers (and the suites' and checks') go to stderr as plain lines, and with a
log file also there with timestamps. `progress` is the one way to make a bar: it is drawn only
on a terminal (tqdm's ``disable=None``), redrawn at most every few seconds, and named by what it
trains (``train_lm expert=code seed=0 rep=1``), so a log without a TTY holds no bar redraws.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["configure", "progress", "progress_enabled", "label", "MININTERVAL"]

#: seconds between two redraws of a bar on a terminal
MININTERVAL = 2.0
#: loggers shown at INFO (the library, the checks; suite plug-ins log under "modgen_bench.suite");
#: every other library's loggers only from WARNING up
ROOTS = ("modgen_bench", "theory_checks")

_state = {"progress": True}
_HANDLER_TAG = "_modgen_bench_handler"


class _StderrHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when a message is emitted, not when the handler was made
    (a caller that swaps stderr, such as pytest's capture, never leaves it writing to a closed
    stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(quiet: bool = False, log_file: str | None = None, level: int = logging.INFO) -> None:
    """Route messages to stderr (warnings only when ``quiet``) and optionally to ``log_file``.

    Calling it again replaces the handlers it installed before (tests call `main` many times).
    ``quiet`` also turns progress bars off.
    """
    _state["progress"] = not quiet
    console = _StderrHandler()
    console.setLevel(logging.WARNING if quiet else level)
    console.setFormatter(logging.Formatter("%(message)s"))
    handlers = [console]
    if log_file:
        file = logging.FileHandler(log_file, encoding="utf-8")
        file.setLevel(logging.DEBUG)
        file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(file)
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, _HANDLER_TAG, False)]:
        root.removeHandler(h)
        h.close()
    for h in handlers:
        setattr(h, _HANDLER_TAG, True)
        root.addHandler(h)
    root.setLevel(logging.WARNING)
    for name in ROOTS:
        logging.getLogger(name).setLevel(logging.DEBUG if log_file else level)


def progress_enabled() -> bool:
    """False after ``configure(quiet=True)``."""
    return _state["progress"]


def label(what: str, **parts) -> str:
    """A bar's name: ``what`` then ``key=value`` for every part given (None parts left out)."""
    return " ".join([what] + [f"{k}={v}" for k, v in parts.items() if v is not None])


def progress(iterable=None, desc: str = "", enabled: bool = True, **kw):
    """A tqdm bar over ``iterable`` named ``desc``: off when not ``enabled``, after --quiet, or
    when stderr is not a terminal (``disable=None``); at most one redraw per `MININTERVAL` s.

    Use ``bar.set_postfix(..., refresh=False)`` inside the loop: a forced refresh per step
    bypasses the throttle.
    """
    from tqdm.auto import tqdm

    disable = None if enabled and progress_enabled() else True
    kw.setdefault("mininterval", MININTERVAL)
    return tqdm(iterable, desc=desc, disable=disable, dynamic_ncols=True, **kw)
