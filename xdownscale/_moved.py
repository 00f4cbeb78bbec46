"""Old module paths (``xdownscale.seasons``, ``xdownscale.regrid``...) kept importable.

The modules now live in subpackages (``data/``, ``tiling/``, ``estimator/``, ``predict/``,
``diagnostics/``, ``app/``). Code written against the flat layout of version 0.1 keeps working:
``import xdownscale.seasons`` and ``from xdownscale.regrid import regrid_like`` give the moved
module itself (the same object, so monkeypatching either name patches both). Written here rather
than as one stub file per old name so that the package's folders show its layers, not its history.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# old public module name -> where it lives now. Not ``stitch``: ``xdownscale.stitch`` is the
# stitching function of the API, and importing a module of that name would replace it on the
# package; the module is ``xdownscale.tiling.stitch``.
MOVED = {
    "io": "data.io",
    "regions": "data.regions",
    "regrid": "data.regrid",
    "transforms": "data.transforms",
    "seasons": "data.seasons",
    "covariates": "data.covariates",
    "windows": "data.lags",
    "patches": "tiling.patches",
    "config": "estimator.config",
    "training": "estimator.training",
    "checkpoint": "estimator.checkpoint",
    "baselines": "diagnostics.baselines",
    "prediction": "predict.labelled",
    "rollout": "predict.rollout",
    "drift": "predict.drift",
    "evaluation": "predict.evaluation",
    "job": "app.job",
    "runconfig": "app.runconfig",
    "report": "app.report",
    "cli": "app.cli",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``xdownscale.<old>`` and hands back the module at its new path."""

    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        head, _, old = fullname.rpartition(".")
        if head != self.package or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        old = spec.name.rpartition(".")[2]
        module = importlib.import_module(f"{self.package}.{MOVED[old]}")
        spec.loader_state = module.__spec__  # the import system overwrites __spec__: put it back
        return module

    def exec_module(self, module):  # already executed at its new path
        module.__spec__ = module.__spec__.loader_state


def install(package: str) -> None:
    if not any(isinstance(f, _Alias) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_Alias(package))
