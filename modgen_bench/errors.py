"""The project's one user-error type.

`UserError` is what bad input raises: a file, option, key or value the user supplied that breaks
a stated rule. Its message is one line that names the thing and the rule. `cli.main` maps it to
``modgen-bench: error: ...`` and exit status 2. Every other exception is a bug of ours and exits 1
(one line, with the traceback under ``--debug``). Subclassing ValueError keeps
``except ValueError`` callers working.
"""

from __future__ import annotations

__all__ = ["UserError", "UnknownNameError"]


class UserError(ValueError):
    """Bad user input: one line naming the file, option or key and the rule it breaks."""


class UnknownNameError(UserError, KeyError):
    """A name (method, claim, corpus, ...) that no registry holds; the message lists the valid
    ones. A `KeyError` too, for callers that look names up."""

    __str__ = BaseException.__str__  # the message itself, not KeyError's quoted repr
