"""Suites are folders (the benchopt pattern): TOML configs plus the plug-in modules they name.

A suite folder (``synthetic/``, ``real_world/``) holds ``*.toml`` experiment files (``_*`` and
``template_*`` skipped). Each TOML has::

    [experiment]
    module = "convergence"          # the plug-in: <suite>/convergence.py
    description = "..."
    [preset.quick]                  # presets change sizes, never code
    ...
    [preset.full]
    ...

The plug-in defines ``run(ctx: RunContext) -> None`` (it calls ``ctx.add(...)`` per measurement)
and may define ``report(df: DataFrame, fig_dir: Path) -> list[Section]`` to turn its own rows
into tables and figures. A plug-in that fails to import is reported by file and error.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import re
import sys
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .resources import bundled, bundled_suites

__all__ = [
    "Experiment",
    "suite_root",
    "discover",
    "installed_suite_dir",
    "installed_name",
    "PRESETS",
    "suite_package",
    "load_plugin",
    "plugin_module",
    "SUITE_PREFIX",
]

PRESETS = ("quick", "full")
#: the prefix of a suite folder's package name (`suite_package`): such modules are not
#: importable by name alone, a launcher job carries their file (`launch.Job`)
SUITE_PREFIX = "modgen_suite_"


@dataclass
class Experiment:
    suite: str
    name: str  # the TOML's stem
    path: Path  # the TOML file
    module_name: str
    description: str
    presets: dict

    def config(self, preset: str) -> dict:
        if preset not in self.presets:
            raise UserError(
                f"experiment '{self.name}' ({self.path}) has no preset '{preset}'; "
                f"it has {', '.join(sorted(self.presets))}"
            )
        return dict(self.presets[preset])

    def load(self):
        """Import the plug-in module from the suite folder (`load_plugin`); errors name the file."""
        module = load_plugin(self.path.parent / f"{self.module_name}.py")
        if not hasattr(module, "run"):
            raise ImportError(f"{module.__file__} defines no run(ctx) function")
        return module


def suite_package(folder) -> str:
    """The name of the package a suite folder's modules import under, registered on first use.

    A suite is a folder of plain modules, not an installed package, so the folder is made a
    package of its own (its ``__path__`` is the folder): a plug-in can import its siblings
    (``from .cell import run_cell``), and a launcher worker in a fresh process re-imports them
    by the same names (`plugin_module`). The name is derived from the resolved folder, so two
    folders never share one and one folder always gets the same one.
    """
    folder = Path(folder).resolve()
    tag = re.sub(r"\W", "_", folder.name)
    name = f"{SUITE_PREFIX}{tag}_{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
    return name


def load_plugin(file):
    """The module of plug-in ``file``, imported once per process as a module of its folder's
    package (`suite_package`). A symbolic link is followed first, so a plug-in shared by two
    suite folders is one module whose siblings are those of its real folder."""
    file = Path(file)
    if not file.is_file():
        raise ImportError(f"plug-in module '{file}' does not exist")
    file = file.resolve()
    name = f"{suite_package(file.parent)}.{file.stem}"
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except Exception as exc:  # report any plug-in failure by file, never crash discovery
        tb = traceback.format_exc(limit=3)
        raise ImportError(f"{file} failed to import: {exc!r}\n{tb}") from exc


def plugin_module(name: str, file: str):
    """Module ``name`` of a suite plug-in, importing it from ``file`` when this process has not
    (a launcher worker unpickling a job, `launch.Job`)."""
    if name in sys.modules:
        return sys.modules[name]
    module = load_plugin(file)
    if module.__name__ != name:
        raise ImportError(f"{file} imports as {module.__name__}, not {name}")
    return module


def suite_root(suite: str) -> Path:
    """The folder of a suite: a path, a name in the working directory, or a shipped suite
    (`modgen_bench.resources`: the checkout's folder, or the installed package's copy)."""
    cand = [Path(suite), Path.cwd() / suite]
    for c in cand:
        if c.is_dir():
            return c.resolve()
    shipped = bundled(suite)
    if shipped is not None and shipped.is_dir():
        return shipped
    raise FileNotFoundError(
        f"suite '{suite}' not found (looked in {', '.join(str(c) for c in cand)} "
        f"and the shipped suites: {', '.join(bundled_suites())})"
    )


def discover(suite: str) -> list[Experiment]:
    root = suite_root(suite)
    out = []
    for path in sorted(root.glob("*.toml")):
        if path.name.startswith(("_", "template_")):
            continue
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"{path}: invalid TOML ({exc})") from None
        unknown = set(data) - {"experiment", "preset"}
        if unknown:
            raise UserError(
                f"{path}: unknown top-level table(s) {sorted(unknown)}; "
                "expected [experiment] and [preset.*]"
            )
        exp = data.get("experiment", {})
        if "module" not in exp:
            raise UserError(f"{path}: [experiment] needs a 'module' key naming the plug-in file")
        out.append(
            Experiment(
                suite=root.name,
                name=path.stem,
                path=path,
                module_name=exp["module"],
                description=exp.get("description", ""),
                presets=data.get("preset", {}),
            )
        )
    if not out:
        raise FileNotFoundError(f"suite folder '{root}' holds no experiment TOML files")
    return out


def installed_suite_dir(name: str) -> Path | None:
    """The folder of suite ``name`` shipped with the installed package ("synthetic",
    "real_world/cpu_medium"), or None.

    Only these folders (and folders the user names with ``report --trust-plugins``) may supply
    plug-in code to `modgen-bench report`: a path read from a results bundle (run.json's
    ``suite_dir``) is never imported, so opening someone's results runs none of their code.
    """
    rel = Path(str(name or ""))
    if not rel.parts or rel.is_absolute() or ".." in rel.parts:
        return None
    shipped = bundled(rel)
    return (
        shipped
        if shipped is not None and shipped.is_dir() and any(shipped.glob("*.toml"))
        else None
    )


def installed_name(folder) -> str | None:
    """The shipped-suite name of ``folder`` ("real_world/cpu_medium"), or None when it is not
    one of the installed package's suite folders."""
    folder = Path(folder).resolve()
    for top in ("synthetic", "real_world"):
        root = bundled(top)
        if root is not None and folder.is_relative_to(root):
            return "/".join((top, *folder.relative_to(root).parts))
    return None
