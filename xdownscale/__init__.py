"""xdownscale: generative, transfer-learning downscaling of gridded fields, on xarray.

``import xdownscale`` registers the ``.downscale`` and ``.dustdiag`` accessors on
:class:`xarray.Dataset` and :class:`xarray.DataArray`. Torch, matplotlib and the statistics
stack are imported only when a function that needs them is called.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from . import _moved, errors
from .accessors import register as _register
from .data.regions import REGIONS, Region
from .errors import NotFittedError, XDownscaleError

try:
    __version__ = version("xdownscale")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

_register()
_moved.install(__name__)

# Public names resolved on first use, so that importing the package does not import torch
# (estimator) or the readers' back ends.
_LAZY = {
    "open_merra2": ".data.io",
    "open_g5nr": ".data.io",
    "open_elevation": ".data.io",
    "regrid_like": ".data.regrid",
    "Regridder": ".data.regrid",
    "patch_starts": ".tiling.patches",
    "stitch": ".tiling.stitch",
    "DownscaleConfig": ".estimator.config",
    "Downscaler": ".estimator.downscaler",
    "datasets": ".datasets",
    "diagnostics": ".diagnostics",
}

__all__ = [
    "REGIONS",
    "Region",
    "NotFittedError",
    "XDownscaleError",
    "errors",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:  # first: xdownscale.stitch is the function, xdownscale.tiling.stitch its module
        module = import_module(_LAZY[name], __name__)
        value = module if name in ("datasets", "diagnostics") else getattr(module, name)
        globals()[name] = value
        return value
    if name in _moved.MOVED:  # the flat layout of 0.1: xdownscale.seasons is xdownscale.data.seasons
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'xdownscale' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
