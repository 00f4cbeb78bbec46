"""The package's boundaries, checked on every import statement (lazy ones too).

* each layer (a folder: data, tiling, models, diagnostics, estimator, predict, app) imports
  only the layers listed for it in ``MAY_IMPORT``: the data side and the diagnostics never
  import the models or the estimator, the models never import the data side;
* the models take tensors: no xarray, pandas or dask; the diagnostics never import torch;
* nothing below the face (accessors, command line) imports it;
* ``import xdownscale`` stays light: no torch, matplotlib, statsmodels, skgstat or diffusers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import xdownscale

ROOT = Path(xdownscale.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the xdownscale modules and third-party packages ``path`` imports."""
    tree = ast.parse(path.read_text())
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{alias.name}" for alias in node.names)
    return out


MODULES = {_module_name(p): _imports(p) for p in ROOT.rglob("*.py")}

# The layers, each a folder (or a few shared top-level modules), and what each may import.
# Data flows one way: data -> tiling -> models -> estimator -> predict -> app; the diagnostics
# judge arrays beside that flow (the estimator and prediction use them to score and calibrate).
SHARED = ("xdownscale.errors", "xdownscale._coords", "xdownscale._progress", "xdownscale._lock",
          "xdownscale._digest")
LAYERS = {
    "shared": SHARED,
    "data": ("xdownscale.data", "xdownscale.datasets"),
    "tiling": ("xdownscale.tiling",),
    "models": ("xdownscale.models",),
    "diagnostics": ("xdownscale.diagnostics",),
    "estimator": ("xdownscale.estimator",),
    "predict": ("xdownscale.predict",),
    "app": ("xdownscale.app",),
    "face": ("xdownscale.accessors", "xdownscale.app.cli"),
}
MAY_IMPORT = {
    "shared": ("shared",),
    "data": ("shared", "data"),
    "tiling": ("shared", "tiling"),
    "models": ("shared", "models"),
    "diagnostics": ("shared", "data", "diagnostics"),
    "estimator": ("shared", "data", "tiling", "models", "diagnostics", "estimator"),
    "predict": ("shared", "data", "tiling", "models", "diagnostics", "estimator", "predict"),
    "app": ("shared", "data", "tiling", "models", "diagnostics", "estimator", "predict", "app"),
}
ROOT_MODULES = ("xdownscale", "xdownscale._moved")  # the package face: lazy names, old paths
# The one module allowed past its layer, and why: Downscaler is the estimator's face, and its
# predict / rollout / evaluate_rollout methods forward (lazily) to the predict layer.
ALSO_MAY_IMPORT = {"xdownscale.estimator.downscaler": ("predict",)}


def _within(name: str, prefixes) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _layer(name: str) -> str | None:
    """The most specific layer holding module ``name`` (``app.cli`` is the face, not the app)."""
    best = None
    for layer, prefixes in LAYERS.items():
        for p in prefixes:
            if _within(name, p) and (best is None or len(p) > len(best[1])):
                best = (layer, p)
    return None if best is None else best[0]


def _offences(sources, forbidden) -> list[str]:
    return sorted(f"{mod} imports {imp}" for mod, imps in MODULES.items() if _within(mod, sources)
                  for imp in imps if _within(imp, forbidden))


def test_every_module_is_in_a_layer():
    unplaced = [m for m in MODULES if _layer(m) is None and m not in ROOT_MODULES]
    assert not unplaced, f"modules outside every layer (add them to LAYERS): {unplaced}"


def test_layers_import_only_what_they_may():
    offences = []
    for mod, imps in MODULES.items():
        layer = _layer(mod)
        if layer in (None, "face"):
            continue
        for imp in imps:
            target = _layer(imp) if imp.startswith("xdownscale.") else None
            allowed = MAY_IMPORT[layer] + ALSO_MAY_IMPORT.get(mod, ())
            if target is not None and target not in allowed:
                offences.append(f"{mod} ({layer}) imports {imp} ({target})")
    assert not offences, "\n".join(offences)


def test_models_take_tensors_only():
    assert not _offences(LAYERS["models"], ("xarray", "pandas", "dask"))


def test_diagnostics_import_no_torch():
    # the diagnostics judge arrays (NumPy, xarray, dask) and never need torch
    assert not _offences(LAYERS["diagnostics"], ("torch",))


def test_nothing_below_the_face_imports_it():
    below = tuple(m for m in MODULES if _layer(m) not in (None, "face"))
    assert not _offences(below, LAYERS["face"])


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    f = ROOT / "models" / "diffusion.py"
    assert "xdownscale.errors.ConfigError" in _imports(f)  # from ..errors import ConfigError
    assert "diffusers" in _imports(f)  # imported inside a method


def test_import_xdownscale_stays_light():
    heavy = ["torch", "matplotlib", "statsmodels", "skgstat", "diffusers"]
    code = f"import sys, xdownscale; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import xdownscale imported {out.stdout.strip()}"


def test_old_flat_module_paths_still_import_the_moved_modules():
    code = """
import importlib, sys, xdownscale
from xdownscale._moved import MOVED
for old, new in MOVED.items():
    if old == "cli":
        continue  # imports matplotlib-free argparse only, but keep the check light
    a = importlib.import_module(f"xdownscale.{old}")
    b = importlib.import_module(f"xdownscale.{new}")
    assert a is b, old
    assert a.__spec__.name == f"xdownscale.{new}", a.__spec__.name
from xdownscale.seasons import split
from xdownscale.data.seasons import split as split2
assert split is split2
assert callable(xdownscale.stitch) and not isinstance(xdownscale.stitch, type(sys))
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_every_module_opens_with_one_line_saying_what_it_is_for():
    missing = []
    for path in ROOT.rglob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        first = (doc or "").split("\n")[0]
        if not first or not first.rstrip().endswith((".", ")")):
            missing.append(f"{path.relative_to(ROOT)}: {first!r}")
    assert not missing, "\n".join(missing)
