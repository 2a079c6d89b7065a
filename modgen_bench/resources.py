"""Files that ship inside the package: the suite folders and the example problems.

In a checkout, ``modgen_bench/_bundled/{synthetic,real_world,examples}`` are symlinks to the
top-level folders (DESIGN.md layout); in an installed wheel they are copies (pyproject.toml,
package-data). Either way `importlib.resources` finds them, so `modgen-bench run synthetic`,
`check` and `solve examples/three_domains.json` work from any directory once installed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["BUNDLED", "bundled", "bundled_suites", "resolve_example"]

#: folders shipped under modgen_bench/_bundled
BUNDLED = ("synthetic", "real_world", "examples")


def bundled(relative: str | Path) -> Path | None:
    """The shipped file or folder at ``relative`` (e.g. "synthetic", "examples/x.json"), or None.

    Installed packages live on disk (a wheel unpacked into site-packages), so the traversable is
    a real path: suite plug-ins are imported from it by file location.
    """
    rel = Path(relative)
    if rel.is_absolute() or not rel.parts or rel.parts[0] not in BUNDLED:
        return None
    node = resources.files("modgen_bench").joinpath("_bundled", *rel.parts)
    path = Path(str(node))
    return path.resolve() if path.exists() else None


def bundled_suites() -> list[str]:
    """Names of the shipped suite folders (every folder under a suite root holding a *.toml)."""
    names = []
    for top in BUNDLED[:2]:
        root = bundled(top)
        if root is None:
            continue
        for toml in sorted(root.rglob("*.toml")):
            if toml.name.startswith(("_", "template_")):
                continue
            name = "/".join((top, *toml.parent.relative_to(root).parts))
            names.append(name)
    return sorted(set(names))


def resolve_example(path: str | Path) -> Path:
    """``path`` itself when it exists, else the shipped file it names (``examples/...``).

    So the README's ``modgen-bench solve examples/three_domains.json`` works outside a checkout;
    any other path comes back unchanged (the loader names it when it is missing).
    """
    p = Path(path)
    if p.exists():
        return p
    shipped = bundled(p)
    if shipped is not None and shipped.is_file():
        return shipped
    return p
