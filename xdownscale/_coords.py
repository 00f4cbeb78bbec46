"""Conventions every layer shares: the default variable, lat/lon dims, daily time, day numbers."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
import xarray as xr

from .errors import DimensionError, MissingVariableError, TimeAxisError

DEFAULT_VAR = "DUEXTTAU"

_LAT_NAMES = ("lat", "latitude", "y", "nav_lat")
_LON_NAMES = ("lon", "longitude", "x", "nav_lon")


def ensure_dataarray(obj: xr.Dataset | xr.DataArray, var: Hashable | None = None) -> xr.DataArray:
    """Return the data variable ``var`` of a Dataset, or the DataArray itself."""
    if isinstance(obj, xr.DataArray):
        return obj
    if not isinstance(obj, xr.Dataset):
        raise TypeError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")
    name = DEFAULT_VAR if var is None else var
    if name not in obj.data_vars:
        if var is None and len(obj.data_vars) == 1:
            return obj[next(iter(obj.data_vars))]
        raise MissingVariableError(
            f"variable {name!r} not found; the Dataset has {sorted(map(str, obj.data_vars))}. "
            "Pass var= to name the variable to use."
        )
    return obj[name]


def _find_coord(obj: xr.Dataset | xr.DataArray, names, key: str, units: str) -> Hashable:
    for name in obj.dims:  # the usual names first: no attributes needed, no import
        if str(name).lower() in names:
            return name
    # Otherwise the CF conventions (standard_name, units such as degrees_north, axis types),
    # as cf_xarray reads them; a 1-D coordinate named apart from its dim gives the dim.
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    for name in obj.cf.coordinates.get(key, []):
        if obj[name].ndim == 1:
            return obj[name].dims[0]
    raise DimensionError(
        f"no {key} dimension found: looked for a dim named one of {list(names)} or a 1-D "
        f"coordinate that the CF conventions mark as {key} (standard_name={key!r} or units "
        f"{units!r}). Found dims {list(map(str, obj.dims))}."
    )


def get_latlon_names(obj: xr.Dataset | xr.DataArray) -> tuple[Hashable, Hashable]:
    """Names of the latitude and longitude dims, by name or by CF attributes."""
    return (
        _find_coord(obj, _LAT_NAMES, "latitude", "degrees_north"),
        _find_coord(obj, _LON_NAMES, "longitude", "degrees_east"),
    )


def standardize_dims(obj):
    """Rename CF-identified lat/lon dims to ``lat``/``lon``."""
    lat, lon = get_latlon_names(obj)
    rename = {k: v for k, v in ((lat, "lat"), (lon, "lon")) if k != v}
    return obj.rename(rename) if rename else obj


def check_daily_time(obj: xr.Dataset | xr.DataArray, *, dim: Hashable = "time") -> pd.DatetimeIndex:
    """Check that ``dim`` exists, holds daily datetimes (one per day, any time of day), strictly
    increasing and without duplicates. Sub-daily and cftime axes are refused."""
    if dim not in obj.dims:
        raise DimensionError(f"expected a {dim!r} dimension, found dims {list(map(str, obj.dims))}")
    index = obj.indexes.get(dim)
    if type(index).__name__ == "CFTimeIndex":
        raise TimeAxisError(
            f"the {dim!r} coordinate uses cftime dates (calendar {index.calendar!r}); convert to "
            "the standard calendar first, e.g. obj.convert_calendar('standard', align_on='date', "
            "use_cftime=False)"
        )
    if index is None or not isinstance(index, pd.DatetimeIndex):
        raise TimeAxisError(f"the {dim!r} coordinate must hold datetimes (got {type(index).__name__})")
    if index.has_duplicates:
        dups = index[index.duplicated()].unique()[:5]
        raise TimeAxisError(f"duplicated times on {dim!r}: {[str(d) for d in dups]}")
    if not index.is_monotonic_increasing:
        raise TimeAxisError(f"times on {dim!r} are not increasing; sort with .sortby({dim!r}) first")
    days = index.normalize()
    if days.has_duplicates:
        raise TimeAxisError(
            f"the {dim!r} axis is sub-daily ({len(index)} time stamps on {days.nunique()} days); "
            f"this function needs daily data: resample first, e.g. .resample({dim}='1D').mean()"
        )
    return index


def day_numbers(times) -> np.ndarray:
    """Integer calendar-day numbers (days since 1970-01-01) of datetime-like input: the one
    conversion every module that compares days uses."""
    return pd.DatetimeIndex(np.atleast_1d(np.asarray(times))).to_numpy().astype(
        "datetime64[D]").astype(np.int64)
