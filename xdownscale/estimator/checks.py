"""Checks on user input shared by ``fit``, ``predict`` and ``rollout``.

Each check either returns the input made regular (daily stamps moved to 00:00, size-1 extra
dims dropped) or raises an :mod:`xdownscale.errors` exception that names the record, what was
expected, what was found and how to fix it. Nothing here computes dask-backed data except
:func:`check_coarse_values` on in-memory input; on dask input that check travels in the graph.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import get_latlon_names
from ..errors import (
    ConfigError,
    DimensionError,
    GridMismatchError,
    TimeAxisError,
    UnitsError,
    XDownscaleError,
)

__all__ = ["regular_daily", "regular_dims", "check_units", "check_coarse", "check_history",
           "check_members", "check_seed", "check_steps", "errors_about"]

_LENGTH_UNITS = {"m", "metre", "meter", "metres", "meters", "km", "kilometre", "kilometer"}


@contextlib.contextmanager
def errors_about(what: str):
    """Prefix the message of any xdownscale error raised inside with ``what``."""
    try:
        yield
    except XDownscaleError as err:
        raise type(err)(f"{what}: {err}") from None


def _index(da: xr.DataArray, what: str) -> pd.DatetimeIndex:
    index = da.indexes.get("time")
    if index is None:
        raise DimensionError(f"{what} needs a 'time' dimension; found {list(map(str, da.dims))}")
    if type(index).__name__ == "CFTimeIndex":
        cal = getattr(index, "calendar", "?")
        raise TimeAxisError(
            f"{what} uses cftime dates (calendar {cal!r}); xdownscale works on the standard "
            "calendar: convert first, e.g. da.convert_calendar('standard', align_on='date', "
            "use_cftime=False)"
        )
    if not isinstance(index, pd.DatetimeIndex):
        raise TimeAxisError(f"the time coordinate of {what} must hold datetimes "
                            f"(got {index.dtype})")
    if index.tz is not None:
        if str(index.tz) not in ("UTC", "utc"):
            raise TimeAxisError(
                f"{what} has timezone-aware times (tz={index.tz}); xdownscale works on naive UTC "
                "days: convert first with da.assign_coords(time=da.indexes['time']"
                ".tz_convert('UTC').tz_localize(None))"
            )
        index = index.tz_localize(None)
    return index


def regular_daily(da: xr.DataArray, what: str) -> xr.DataArray:
    """``da`` with its daily time stamps moved to 00:00 of their day.

    Daily data stamped at 12:00 (common in CF files), or with mixed stamps, is the same day;
    more than one stamp on a day is sub-daily data, which is refused: the method is daily.
    """
    index = _index(da, what)
    if index.has_duplicates:
        dups = index[index.duplicated()].unique()[:5]
        raise TimeAxisError(f"{what} has duplicated times: {[str(d) for d in dups]}; drop them, "
                            "e.g. da.drop_duplicates('time')")
    if not index.is_monotonic_increasing:
        raise TimeAxisError(f"the times of {what} are not increasing; sort with .sortby('time')")
    days = index.normalize()
    if days.has_duplicates:
        counts = pd.Series(1, index=days).groupby(level=0).size()
        worst = counts.idxmax()
        raise TimeAxisError(
            f"{what} is sub-daily ({len(index)} time stamps on {len(counts)} days; "
            f"{worst.date()} has {counts.max()}); xdownscale needs one map per day: make daily "
            "means first, e.g. da.resample(time='1D').mean()"
        )
    if not days.equals(pd.DatetimeIndex(da.indexes["time"])):
        da = da.assign_coords(time=da["time"].copy(data=days.as_unit("ns").to_numpy()))
    return da


def regular_dims(da: xr.DataArray, what: str) -> xr.DataArray:
    """Drop size-1 extra dims, refuse larger ones and coordinates that are not degrees."""
    lat, lon = get_latlon_names(da)
    extra = {str(d): n for d, n in da.sizes.items() if d not in ("time", lat, lon)}
    big = {d: n for d, n in extra.items() if n > 1}
    if big:
        name, n = next(iter(big.items()))
        raise DimensionError(
            f"{what} has extra dimension(s) {big} besides (time, lat, lon); select one first, "
            f"e.g. .isel({name}=0) or .sel({name}=...)"
        )
    if extra:
        da = da.squeeze(list(extra), drop=True)
    for name, axis, limit in ((lat, "latitude", 90.0), (lon, "longitude", 360.0)):
        coord = da[name]
        units = str(coord.attrs.get("units", "")).strip().lower()
        values = np.asarray(coord.values, np.float64)
        if units in _LENGTH_UNITS or (values.size and np.nanmax(np.abs(values)) > limit):
            raise DimensionError(
                f"the {axis} coordinate {str(name)!r} of {what} is not in degrees "
                f"(units {units or 'none'!r}, values {values.min():.6g}..{values.max():.6g}): "
                "projected x/y grids are not supported; reproject to latitude/longitude "
                "(EPSG:4326) first, e.g. with rioxarray's .rio.reproject('EPSG:4326')"
            )
    return da


def _dimensionless(units) -> bool:
    return str(units).strip().lower() in {"1", "", "none", "dimensionless", "unitless", "-"}


def check_units(da: xr.DataArray, fitted_units, what: str) -> None:
    """Refuse input whose ``units`` attribute differs from the fitted record's."""
    units = da.attrs.get("units")
    if units is None or fitted_units is None:
        return
    if str(units).strip() == str(fitted_units).strip() or (
            _dimensionless(units) and _dimensionless(fitted_units)):
        return
    hint = " (divide by 100 and set units='1')" if str(units).strip() == "%" else ""
    raise UnitsError(
        f"{what} is in units {units!r} but the model was fitted on units {fitted_units!r}; "
        f"convert it first{hint}"
    )


def check_coarse_values(da: xr.DataArray, what: str) -> xr.DataArray:
    """Refuse negative values: at once for in-memory data, inside the graph for dask data."""
    from ..data.transforms import check_nonnegative

    return check_nonnegative(da, what=what)


def check_coarse_grid(da: xr.DataArray, grid: dict, what: str) -> None:
    """Every point of the fitted coarse grid must be a point of ``da`` (a larger grid is fine)."""
    for axis in ("lat", "lon"):
        fitted = np.asarray(grid[axis], np.float64)
        given = np.asarray(da[axis].values, np.float64)
        if fitted.size < 2:
            continue
        tol = 1e-3 * float(np.min(np.abs(np.diff(fitted))))
        gap = np.abs(given[:, None] - fitted[None, :]).min(axis=0) if given.size else np.inf
        off = np.asarray(gap > tol)
        if off.any():
            first = fitted[np.argmax(off)]
            raise GridMismatchError(
                f"{what} is not on the coarse grid the model was fitted on: {int(off.sum())} of "
                f"the {fitted.size} fitted {axis} points are missing (first {first:.6g}; fitted "
                f"{fitted[0]:.6g}..{fitted[-1]:.6g} every {np.diff(fitted).mean():.6g}, given "
                f"{given.min():.6g}..{given.max():.6g}). Give the same grid as in fit; shifted "
                "or regridded drivers are refused because the model learned the grid's offset."
            )


def check_coarse(est, coarse) -> xr.DataArray:
    """The coarse driver of ``predict``/``rollout``, checked against the fitted estimator."""
    from .._coords import ensure_dataarray
    from ..data.regions import normalize_lonlat

    what = "the coarse driver"
    da = regular_dims(ensure_dataarray(coarse, est.var_), what)
    da = normalize_lonlat(da)
    da = regular_daily(da, what)
    check_units(da, est.attrs_.get("units"), what)
    check_coarse_grid(da, est.coarse_grid_, what)
    return check_coarse_values(da, what)


def check_history(est, history) -> xr.DataArray:
    """The fine history of ``predict``/``rollout``: regular dims and daily stamps."""
    from .._coords import ensure_dataarray

    what = "the fine history"
    da = regular_dims(ensure_dataarray(history, est.var_), what)
    da = regular_daily(da, what)
    check_units(da, est.attrs_.get("units"), what)
    return da


def _integer(value, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{name} must be {rng}, got {value}")
    return value


def check_members(members) -> int:
    return _integer(members, "members", 1)


# The sampling noise is seeded from the low 32 bits of the seed (predict.day_seed): larger
# seeds would silently repeat smaller ones, so they are refused.
SEED_MAX = 2**32 - 1


def check_seed(seed) -> int | None:
    return None if seed is None else _integer(seed, "seed", 0, SEED_MAX)


def check_steps(steps) -> int | None:
    return None if steps is None else _integer(steps, "steps", 1)
