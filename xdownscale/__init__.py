"""xdownscale: generative, transfer-learning downscaling of gridded fields, on xarray.

``import xdownscale`` registers the ``.downscale`` and ``.dustdiag`` accessors on
:class:`xarray.Dataset` and :class:`xarray.DataArray`. Torch, matplotlib and the statistics
stack are imported only when a function that needs them is called.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from . import errors
from .accessors import register as _register
from .errors import NotFittedError, XDownscaleError
from .regions import REGIONS, Region

try:
    __version__ = version("xdownscale")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

_register()

# Public names resolved on first use, so that importing the package does not import torch
# (estimator) or the readers' back ends.
_LAZY = {
    "open_merra2": ".io",
    "open_g5nr": ".io",
    "open_elevation": ".io",
    "regrid_like": ".regrid",
    "Regridder": ".regrid",
    "patch_starts": ".patches",
    "stitch": ".stitch",
    "DownscaleConfig": ".config",
    "Downscaler": ".estimator",
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
    if name in _LAZY:
        module = import_module(_LAZY[name], __name__)
        value = module if name in ("datasets", "diagnostics") else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xdownscale' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
