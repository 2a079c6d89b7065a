"""Name -> plug-in registries filled by a ``register("name")`` decorator (STYLE.md, "Registries").

An unknown name raises an `errors.UnknownNameError` (a user error and a `KeyError`) whose
message lists the valid names.
"""

from __future__ import annotations

from .errors import UnknownNameError

__all__ = ["Registry"]


class Registry(dict):
    """A dict of plug-ins of one kind (``ALGORITHMS``, ``LAM_RULES``, ``GATES``, ...)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str):
        def decorate(obj):
            if name in self:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self[name] = obj
            return obj

        return decorate

    def __missing__(self, name):
        raise UnknownNameError(
            f"unknown {self.kind} '{name}'; choose one of {', '.join(sorted(self))}"
        )
