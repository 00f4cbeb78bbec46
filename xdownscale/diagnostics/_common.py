"""Helpers shared by the diagnostics modules (not public)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Hashable, Iterable, Iterator

import numpy as np
import xarray as xr

from .._coords import day_numbers as _day_numbers
from .._coords import ensure_dataarray, standardize_dims
from ..errors import DimensionError, GridMismatchError

#: Floor applied before ``log10``: the paper's value (eq. 10). The kernels that transform
#: one day at a time write ``np.log10(np.maximum(x, eps))`` themselves, the same formula as
#: :func:`xdownscale.data.transforms.log10_transform`.
LOG_EPS = 1e-6

#: ``attrs`` key naming which diagnostic produced a result Dataset; the plotting functions
#: use it to accept precomputed results as well as raw fields.
DIAG_KEY = "xdownscale_diagnostic"


def product_label(obj, role: str) -> str:
    """A short name of a product from its own metadata: ``"fine (G5NR)"``, else ``role``.

    The readers record the product they read (``xdownscale_product``); data from elsewhere
    may say it in ``short_name`` or ``product``. Nothing is assumed: data that do not say
    what they are are called by their role only.
    """
    attrs = getattr(obj, "attrs", {})
    name = attrs.get("xdownscale_product") or attrs.get("short_name") or attrs.get("product")
    return f"{role} ({name})" if name else role


def field(obj: xr.Dataset | xr.DataArray, var: Hashable | None = None) -> xr.DataArray:
    """The data variable with its spatial dims renamed to ``lat``/``lon``.

    Raises
    ------
    MissingVariableError
        ``var`` is not in the Dataset.
    DimensionError
        No latitude/longitude dimension can be found.
    """
    da = standardize_dims(ensure_dataarray(obj, var))
    for dim in ("lat", "lon"):
        if da[dim].ndim != 1:
            raise DimensionError(f"expected a 1-D {dim!r} coordinate, found {da[dim].ndim}-D")
    return da


def log10(da: xr.DataArray, eps: float = LOG_EPS) -> xr.DataArray:
    """``log10(max(x, eps))`` via :func:`xdownscale.data.transforms.log10_transform` (lazy)."""
    from ..data.transforms import log10_transform

    return log10_transform(da, eps)


def maybe_log10(da: xr.DataArray, use_log10: bool, eps: float = LOG_EPS) -> xr.DataArray:
    """:func:`log10` when ``use_log10`` is true, else ``da`` unchanged."""
    return log10(da, eps) if use_log10 else da


def check_core_unchunked(da: xr.DataArray, dims: Iterable[Hashable], func: str) -> None:
    """Raise with advice when a core dimension of a dask-backed array is split into chunks.

    Raises
    ------
    DimensionError
        One of ``dims`` spans several chunks.
    """
    if da.chunks is None:
        return
    for dim in dims:
        if dim in da.dims and len(da.chunksizes[dim]) > 1:
            raise DimensionError(
                f"{func} needs whole {dim!r} rows per task, but {dim!r} is split into "
                f"{len(da.chunksizes[dim])} chunks. Rechunk first, e.g. "
                f".chunk({{{dim!r}: -1}}) (chunk along 'time' instead)."
            )


def check_same_grid(a: xr.DataArray, b: xr.DataArray, what: str) -> None:
    """Raise unless ``a`` and ``b`` have the same lat/lon pixel centres.

    Raises
    ------
    GridMismatchError
        Sizes or coordinates differ by more than 1e-6 degrees.
    """
    for dim in ("lat", "lon"):
        ca, cb = np.asarray(a[dim]), np.asarray(b[dim])
        if ca.shape != cb.shape or not np.allclose(ca, cb, rtol=0, atol=1e-6):
            raise GridMismatchError(
                f"{what} needs both fields on the same grid, but their {dim!r} coordinates "
                f"differ ({ca.size} vs {cb.size} values). Regrid one onto the other first, "
                "e.g. coarse.downscale.regrid_like(fine)."
            )


def day_numbers(da: xr.DataArray, dim: Hashable = "time") -> np.ndarray:
    """Integer day numbers (days since 1970-01-01) of the time coordinate."""
    return _day_numbers(da[dim].values)


def target_days(da: xr.DataArray, dim: Hashable = "time") -> xr.DataArray:
    """Drop buffer days (``target == False``) added by :func:`xdownscale.data.seasons.seasons`."""
    if "target" in da.coords and da["target"].dims == (dim,):
        keep = np.asarray(da["target"], dtype=bool)
        if not keep.all():
            return da.isel({dim: np.flatnonzero(keep)})
    return da


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence numpy's empty-slice / divide warnings inside kernels (NaN is the answer)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def tag(ds: xr.Dataset, kind: str, **attrs) -> xr.Dataset:
    """Mark a result Dataset with the diagnostic that produced it."""
    ds.attrs.update({DIAG_KEY: kind, **{k: v for k, v in attrs.items() if v is not None}})
    return ds


def is_result(obj, *kinds: str) -> bool:
    """True when ``obj`` is a Dataset produced by one of the diagnostics ``kinds``."""
    return isinstance(obj, xr.Dataset) and obj.attrs.get(DIAG_KEY) in kinds


def single_chunk(da: xr.DataArray, dim: Hashable) -> xr.DataArray:
    """``da`` with its *data* in one chunk along ``dim`` (coordinates stay in memory).

    Only for small derived arrays (a daily series): ``DataArray.chunk`` would also turn
    numpy coordinates into dask arrays, which later merges must compute to compare.
    """
    if da.chunks is None:
        return da
    return da.copy(data=da.data.rechunk({da.get_axis_num(dim): -1}))


def describe(ds: xr.Dataset, attrs: dict[Hashable, dict]) -> xr.Dataset:
    """Set each data variable's attrs to ``attrs[name]`` (CF ``long_name``/``units``).

    Whatever the inputs carried (their ``long_name``, ``source``, ``log10_eps``) describes the
    field, not a statistic of it, so every variable loses it, listed or not.
    """
    for name in ds.data_vars:
        ds[name].attrs = dict(attrs.get(name, {}))
    return ds


def squared_units(units: str | None, use_log10: bool) -> str | None:
    """UDUNITS units of a squared difference of the field (a semivariance)."""
    if use_log10 or units in (None, "", "1"):
        return "1" if use_log10 or units is not None else None
    return f"({units})^2"


def field_units(units: str | None, use_log10: bool) -> str | None:
    """UDUNITS units of the field after the optional ``log10``: a log is dimensionless ("1")."""
    return "1" if use_log10 else units
