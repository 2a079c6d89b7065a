"""Dataclass configs from TOML tables: unknown keys are errors that list the valid ones."""

from __future__ import annotations

from dataclasses import fields

from .errors import UserError

__all__ = ["build"]


def build(cls, data: dict, where: str):
    """``cls(**data)``; a key of ``data`` that is no field of ``cls`` raises a `UserError`
    naming ``where`` (the table or config), the unknown keys and the valid ones."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"{where}: unknown keys {unknown}; valid keys: {sorted(names)}")
    return cls(**data)
