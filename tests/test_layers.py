"""The package's boundaries, checked on every import statement (lazy ones too).

* the models take tensors: no xarray, nothing of the data side or the estimator;
* the data side and the diagnostics judge and prepare arrays: no models, no estimator;
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

MODELS = "xdownscale.models"
ESTIMATOR = ("xdownscale.estimator", "xdownscale._fit", "xdownscale._modules",
             "xdownscale.training", "xdownscale.checkpoint", "xdownscale.baselines",
             "xdownscale.predict", "xdownscale.prediction", "xdownscale.rollout",
             "xdownscale.fitted", "xdownscale.drift", "xdownscale.evaluation")
DATA = ("xdownscale.io", "xdownscale.regions", "xdownscale.regrid", "xdownscale._regrid_kernels",
        "xdownscale.transforms", "xdownscale.seasons", "xdownscale.windows",
        "xdownscale.covariates", "xdownscale.patches", "xdownscale.stitch",
        "xdownscale.pipeline", "xdownscale._utils", "xdownscale._checks", "xdownscale._progress",
        "xdownscale.datasets")
DIAGNOSTICS = ("xdownscale.diagnostics",)
FACE = ("xdownscale.accessors", "xdownscale.cli")


def _within(name: str, prefixes) -> bool:
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _offences(sources, forbidden) -> list[str]:
    return sorted(f"{mod} imports {imp}" for mod, imps in MODULES.items() if _within(mod, sources)
                  for imp in imps if _within(imp, forbidden))


def test_every_layer_is_known():
    # a new module must be placed in a layer (or be the package's top level / the app)
    app = ("xdownscale", "xdownscale.errors", "xdownscale.config", "xdownscale.job",
           "xdownscale.report", "xdownscale.runconfig")
    unplaced = [m for m in MODULES if not any(_within(m, g) for g in (
        (MODELS,), ESTIMATOR, DATA, DIAGNOSTICS, FACE)) and m not in app]
    assert not unplaced, f"modules outside every layer: {unplaced}"


def test_models_take_tensors_only():
    assert not _offences(MODELS, ("xarray", "pandas", "dask") + DATA + ESTIMATOR + DIAGNOSTICS)


def test_data_and_diagnostics_import_no_models_or_estimator():
    # patches, stitching and transforms take torch tensors too; the diagnostics never do
    assert not _offences(DATA + DIAGNOSTICS, (MODELS,) + ESTIMATOR)
    assert not _offences(DIAGNOSTICS, ("torch",))


def test_nothing_below_the_face_imports_it():
    below = tuple(m for m in MODULES if not _within(m, FACE) and m != "xdownscale")
    assert not _offences(below, FACE)


def test_the_walker_sees_lazy_and_relative_imports(tmp_path):
    f = ROOT / "models" / "diffusion.py"
    assert "xdownscale.errors.ConfigError" in _imports(f)  # from ..errors import ConfigError
    assert "diffusers" in _imports(f)  # imported inside a method


def test_import_xdownscale_stays_light():
    heavy = ["torch", "matplotlib", "statsmodels", "skgstat", "diffusers"]
    code = f"import sys, xdownscale; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"import xdownscale imported {out.stdout.strip()}"
