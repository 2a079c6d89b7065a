"""Combiners: every rival of the SPD gate as a registered plug-in (`base.COMBINERS`).

One module per method family: `fixed` (the best fixed-weight gate), `gates` (the ML gate),
`monoliths` (Group DRO and DoReMi monoliths), `token` (per-token routers, log-linear pooling),
`prefix` (top-1 prefix router), `merge` (weight merging). A user's combiner is one more module
that subclasses `Combiner` and decorates it with ``@register("name")``; a preset names the ones
to run in its ``combiners`` table (name -> settings). `stage.add_combiners` is the real-text
pipeline's hook; `modgen_bench.leaderboard` ranks their rows.
"""

from . import fixed, gates, merge, monoliths, prefix, token  # noqa: F401  (they register)
from .base import (
    COMBINERS,
    GRADINGS,
    Combiner,
    CombinerContext,
    CombinerResult,
    Cost,
    register,
    run_combiners,
)

__all__ = [
    "COMBINERS",
    "GRADINGS",
    "Combiner",
    "CombinerContext",
    "CombinerResult",
    "Cost",
    "register",
    "run_combiners",
]
