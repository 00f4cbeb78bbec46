"""Readers: MERRA-2 and G5NR dust AOD files to lazy daily means, and elevation models.

The AOD readers open many files lazily (:func:`xarray.open_mfdataset`), check the variable,
dims, units and time axis from metadata only, clip to a region and average each UTC day, all
without reading the data. Reading happens when the caller computes.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Hashable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import DEFAULT_VAR, get_latlon_names
from ..errors import (
    DimensionError,
    GridMismatchError,
    MissingDependencyError,
    MissingVariableError,
    TimeAxisError,
    UnitsError,
)
from .regions import clip, normalize_lonlat
from .transforms import NEGATIVE_TOL, negative_value_error

__all__ = ["open_merra2", "open_g5nr", "open_elevation", "DIMENSIONLESS"]

#: Unit strings accepted for AOD (CF writes "1"; files in the wild use the others).
DIMENSIONLESS = ("1", "", "unitless", "dimensionless")
#: Variable names taken for the elevation in a DEM file or Dataset (lower-cased).
ELEVATION_NAMES = ("elevation", "z", "elev", "band1", "topo")
PathsLike = str | os.PathLike | Sequence[str | os.PathLike]


def _resolve_paths(paths: PathsLike) -> list[str]:
    """Sorted list of files from a path, a glob pattern, or a list of either."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files: list[str] = []
    for item in items:
        text = os.fspath(item)
        if glob.has_magic(text):
            matched = sorted(glob.glob(os.path.expanduser(text)))
            if not matched:
                raise FileNotFoundError(f"no file matches the pattern {text!r}")
            files.extend(matched)
        elif not Path(text).expanduser().exists():
            raise FileNotFoundError(f"no such file: {text!r}")
        else:
            files.append(str(Path(text).expanduser()))
    if not files:
        raise FileNotFoundError("no input files were given")
    return files


class _KeepVar:
    """open_mfdataset preprocess: keep only ``var`` (so the other variables are never combined)
    and remember each file's times, to name the files when times collide."""

    def __init__(self, var: Hashable, product: str) -> None:
        self.var, self.product = var, product
        self.times: list[tuple[str, pd.Index]] = []

    def __call__(self, ds: xr.Dataset) -> xr.Dataset:
        source = ds.encoding.get("source", "?")
        if self.var not in ds.data_vars:
            raise MissingVariableError(
                f"variable {self.var!r} not in {source}; it has "
                f"{sorted(map(str, ds.data_vars))}. Pass var= to name the dust AOD variable."
            )
        if "time" in ds.indexes:
            self.times.append((source, ds.indexes["time"]))
        return ds[[self.var]]

    def check_overlaps(self) -> None:
        """Raise TimeAxisError if a time occurs in two files (by_coords would keep one)."""
        seen: dict = {}
        for source, index in self.times:
            for t in index.unique():
                if t in seen and seen[t] != source:
                    raise TimeAxisError(
                        f"{self.product}: time {t} is in both {seen[t]} and {source}; the same "
                        "period was given twice (e.g. a file and its reprocessed copy)"
                    )
                seen[t] = source


def _check_units(da: xr.DataArray, what: str) -> None:
    units = da.attrs.get("units")
    if units is None:
        return  # CF: no units attribute means dimensionless
    if str(units).strip().lower() not in DIMENSIONLESS:
        raise UnitsError(
            f"{what} variable {da.name!r} has units {units!r}; aerosol optical depth is "
            f"dimensionless (expected one of {list(DIMENSIONLESS)}). Check that var= names an "
            "optical depth, or fix the attribute with .assign_attrs(units='1')."
        )


def _check_time_axis(index: pd.Index, what: str) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex):
        raise TimeAxisError(f"{what}: the time coordinate must decode to datetimes, got "
                            f"{type(index).__name__}; check its units/calendar attributes")
    if index.has_duplicates:
        dups = index[index.duplicated()].unique()[:5]
        raise TimeAxisError(
            f"{what}: duplicated times after combining the files, e.g. "
            f"{[str(t) for t in dups]}; the same file (or period) was probably given twice"
        )
    if not index.is_monotonic_increasing:
        step = np.flatnonzero(np.diff(index.asi8) < 0)[0]
        raise TimeAxisError(f"{what}: times are not increasing ({index[step]} is followed by "
                            f"{index[step + 1]}); fix or sort the input files")
    return index


def _daily_mean(da: xr.DataArray, index: pd.DatetimeIndex, per_day: int, what: str,
                require_full_days: bool) -> xr.DataArray:
    """Lazy UTC-day means; days without samples are not invented."""
    counts = pd.Series(1, index=index).groupby(index.floor("D")).sum()
    short = counts[counts < per_day]
    if require_full_days and len(short):
        raise TimeAxisError(
            f"{what}: {len(short)} day(s) have fewer than the {per_day} samples of a full day, "
            f"e.g. {[f'{d.date()} ({n})' for d, n in short.iloc[:5].items()]}; a daily mean of a "
            "partial day is biased. Add the missing files or pass require_full_days=False "
            "(in the YAML of xdownscale run: require_full_days: false)."
        )
    # skipna=False: a missing sample makes the day missing rather than silently biased.
    daily = da.resample(time="1D").mean(skipna=False, keep_attrs=True)
    if len(counts) != daily.sizes["time"]:  # resample fills gaps between files with empty days
        daily = daily.sel(time=counts.index.to_numpy())
    daily["time"] = daily["time"].copy(data=daily["time"].values.astype("datetime64[ns]"))
    old = da.attrs.get("cell_methods", "").strip()
    daily.attrs["cell_methods"] = f"{old} time: mean (daily)".strip()
    return daily


def _open_aod(paths: PathsLike, region, var: Hashable, chunks, pad: float, *, product: str,
              per_day: int, engine: str | None, check_values: bool,
              require_full_days: bool) -> xr.Dataset:
    files = _resolve_paths(paths)
    twice = sorted({f for f in files if files.count(f) > 1})
    if twice:
        raise TimeAxisError(f"{product}: {twice} given twice; each file may appear once")
    keep = _KeepVar(var, product)
    try:
        ds = xr.open_mfdataset(
            files, engine=engine, chunks=chunks, parallel=False, combine="by_coords",
            preprocess=keep, data_vars="minimal", coords="minimal", compat="override",
            join="exact",
        )
    except ValueError as exc:
        keep.check_overlaps()
        if "join='exact'" in str(exc) or "cannot align" in str(exc):
            raise GridMismatchError(
                f"{product}: the files do not share one latitude/longitude grid ({exc}); open "
                "files of one collection and resolution together"
            ) from exc
        if "monoton" in str(exc):
            raise TimeAxisError(f"{product}: the files' time axes are out of order ({exc})"
                                ) from exc
        raise
    keep.check_overlaps()
    da = ds[var]
    if "time" not in da.dims:
        raise DimensionError(f"{product} variable {var!r} has no 'time' dimension "
                             f"(dims {list(map(str, da.dims))}); expected (time, lat, lon)")
    lat, lon = get_latlon_names(da)
    extra = set(da.dims) - {"time", lat, lon}
    if extra:
        raise DimensionError(f"{product} variable {var!r} has dims {list(map(str, da.dims))}; "
                             f"expected (time, lat, lon). Select a level first for {sorted(extra)}")
    _check_units(da, product)
    index = _check_time_axis(ds.indexes["time"], product)
    if region is not None:
        da = clip(da, region, pad=pad)
    else:
        da = normalize_lonlat(da)
    if check_values:
        # One reduction over the (clipped) samples, before averaging can hide a negative
        # sample; off by default so that opening stays free.
        vmin = float(da.min().compute())
        if vmin < -NEGATIVE_TOL:
            raise negative_value_error(f"{product} {var!r}", vmin)
    daily = _daily_mean(da.transpose("time", "lat", "lon"), index, per_day, product,
                        require_full_days)
    out = daily.to_dataset(name=var)
    out.attrs = {**ds.attrs, "xdownscale_product": product,
                 "xdownscale_region": da.attrs.get("xdownscale_region", "none")}
    return out


_OPEN_DOC = """
    Parameters
    ----------
    paths : str, path-like, or sequence of them
        A file, a glob pattern (``"MERRA2_*.nc4"``) or a list of files/patterns.
    region : str, Region, tuple or None, default "A1"
        Region to clip to (see :func:`xdownscale.data.regions.get_region`); None keeps the whole
        grid (still normalised to ascending latitude and longitudes in [-180, 180)).
    var : hashable, default "DUEXTTAU"
        The dust extinction AOD variable.
    chunks : dict, optional
        Dask chunks passed to :func:`xarray.open_mfdataset`; default one chunk per file.
    pad : float
        Degrees of margin added around the region.
    engine : str, optional
        ``"h5netcdf"`` or ``"netcdf4"``; default: xarray's choice.
    check_values : bool, default False
        Compute the minimum (reads all data once) and raise if it is negative.
    require_full_days : bool, default True
        Refuse days with fewer samples than a full day.

    Returns
    -------
    xarray.Dataset
        ``var`` with dims ``(time, lat, lon)``, dask-backed daily UTC means (time at 00:00,
        datetime64[ns]), dtype and CF attributes kept, ``cell_methods`` extended with
        ``"time: mean (daily)"``.

    Raises
    ------
    FileNotFoundError
        No file matches ``paths``.
    MissingVariableError
        ``var`` is not in a file.
    DimensionError
        ``var`` lacks time, latitude or longitude, or has other dims.
    TimeAxisError
        Duplicated, unordered or overlapping times after combining the files, or partial days.
    UnitsError
        The units are not dimensionless.
    RegionError
        The data do not reach the region.
    NegativeValueError
        ``check_values=True`` and the data have negative values.
"""


def open_merra2(paths: PathsLike, region="A1", var: Hashable = DEFAULT_VAR, *, chunks=None,
                pad: float = 1.0, engine: str | None = None, check_values: bool = False,
                require_full_days: bool = True) -> xr.Dataset:
    """Open MERRA-2 ``tavg1_2d_aer_Nx`` files (24 hourly means per file, at HH:30) as lazy
    daily UTC means on the native 0.5 x 0.625 degree grid, clipped to ``region`` plus a
    ``pad``-degree margin so that bicubic regridding to the region has support.
    """
    return _open_aod(paths, region, var, chunks, pad, product="MERRA-2", per_day=24,
                     engine=engine, check_values=check_values,
                     require_full_days=require_full_days)


def open_g5nr(paths: PathsLike, region="A1", var: Hashable = DEFAULT_VAR, *, chunks=None,
              pad: float = 0.0, engine: str | None = None, check_values: bool = False,
              require_full_days: bool = True) -> xr.Dataset:
    """Open G5NR files (30-minute instants at HH:00 and HH:30, 0.0625-degree grid) as lazy
    daily UTC means clipped to ``region``.
    """
    return _open_aod(paths, region, var, chunks, pad, product="G5NR", per_day=48,
                     engine=engine, check_values=check_values,
                     require_full_days=require_full_days)


open_merra2.__doc__ += _OPEN_DOC
open_g5nr.__doc__ += _OPEN_DOC


@lru_cache(maxsize=1)
def _unit_registry():
    import pint  # building a registry takes a moment; do it once, on first use

    return pint.UnitRegistry()


def _to_metres_factor(units: str) -> float:
    import pint

    ureg = _unit_registry()
    try:
        quantity = ureg.Quantity(1.0, units)
        return float(quantity.to("m").magnitude)
    except (pint.errors.UndefinedUnitError, pint.errors.DimensionalityError,
            pint.errors.DefinitionSyntaxError, AttributeError, TypeError, ValueError) as exc:
        raise UnitsError(
            f"elevation units {units!r} are not a length pint understands ({exc}); pass "
            "units='m' (or 'ft', 'km', ...) to open_elevation to say what they are"
        ) from None


def _pick_elevation_var(ds: xr.Dataset, var: Hashable | None, path) -> xr.DataArray:
    if var is not None:
        if var not in ds.data_vars:
            raise MissingVariableError(f"variable {var!r} not in {path}; it has "
                                       f"{sorted(map(str, ds.data_vars))}")
        return ds[var]
    named = [v for v in ds.data_vars if str(v).lower() in ELEVATION_NAMES]
    if len(named) == 1:
        return ds[named[0]]
    if len(ds.data_vars) == 1:
        return ds[next(iter(ds.data_vars))]
    raise MissingVariableError(
        f"cannot tell which variable of {path} is the elevation: it has "
        f"{sorted(map(str, ds.data_vars))}, none or several named one of "
        f"{list(ELEVATION_NAMES)}. Pass var=."
    )


def _open_geotiff(path) -> xr.DataArray:
    try:
        import rioxarray
    except Exception as exc:
        raise MissingDependencyError(
            f"reading GeoTIFF elevation needs rioxarray, which could not be imported ({exc}); "
            "install it with `pip install rioxarray` (or conda-forge), or convert the file to "
            "NetCDF (e.g. `gdal_translate -of netCDF dem.tif dem.nc`)"
        ) from exc
    da = rioxarray.open_rasterio(path, masked=True, chunks={})
    if "band" in da.dims:
        da = da.isel(band=0, drop=True)
    crs = da.rio.crs
    if crs is not None and not crs.is_geographic:
        raise DimensionError(f"{path} is in a projected CRS ({crs}); reproject it to "
                             "latitude/longitude (EPSG:4326) first")
    return da.rename({"y": "lat", "x": "lon"}).rename("elevation")


def open_elevation(path: str | os.PathLike, region="A1", var: Hashable | None = None, *,
                   pad: float = 0.1, units: str | None = None) -> xr.DataArray:
    """Open a digital elevation model (e.g. GMTED2010 at 30 arc-seconds) in metres.

    Parameters
    ----------
    path : str or path-like
        A NetCDF file, or a GeoTIFF (``.tif``/``.tiff``, needs rioxarray).
    region : str, Region, tuple or None, default "A1"
        Region to clip to; None keeps the whole file.
    var : hashable, optional
        The elevation variable; by default the one named ``elevation``, ``z``, ``elev``,
        ``Band1`` or ``topo``, or the only variable.
    pad : float
        Degrees of margin around the region. The default 0.1 keeps every native sample of the
        fine pixels whose centres lie on the region's edge, so that averaging the DEM into
        those pixels (``regrid_like(..., method="mean")``) has its full support.
    units : str, optional
        Units of the values, overriding the file's ``units`` attribute. When neither says,
        metres are assumed (the convention of GMTED2010, GLOBE and SRTM).

    Returns
    -------
    xarray.DataArray
        ``elevation`` with dims ``(lat, lon)`` (ascending latitude, longitudes in
        [-180, 180)), in metres (``units="m"``), lazy for NetCDF input.

    Raises
    ------
    MissingVariableError
        The variable cannot be found or guessed.
    UnitsError
        The units are not a length pint knows.
    DimensionError
        The field is not 2-D in latitude/longitude.
    MissingDependencyError
        A GeoTIFF is given and rioxarray is not installed.
    """
    path = os.fspath(path)
    if not Path(path).expanduser().exists():
        raise FileNotFoundError(f"no such file: {path!r}")
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        da = _open_geotiff(path)
    else:
        da = _pick_elevation_var(xr.open_dataset(path, chunks={}), var, path)
    # Size-1 dims (a band, a single time) are dropped; anything else is an error.
    da = da.squeeze([d for d in da.dims if da.sizes[d] == 1 and d not in
                     get_latlon_names(da)], drop=True)
    if da.ndim != 2:
        raise DimensionError(f"elevation must be 2-D (lat, lon); {da.name!r} in {path} has "
                             f"dims {dict(da.sizes)}")
    file_units = units if units is not None else da.attrs.get("units")
    factor = 1.0 if file_units is None else _to_metres_factor(str(file_units))
    attrs = {**da.attrs, "units": "m", "long_name": da.attrs.get("long_name", "elevation")}
    if factor != 1.0:
        da = da * factor
        attrs["comment"] = f"converted from {file_units} to m"
    da = da.rename("elevation").assign_attrs(attrs)
    da = clip(da, region, pad=pad) if region is not None else normalize_lonlat(da)
    return da.transpose("lat", "lon")
