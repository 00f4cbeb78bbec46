"""Per-pixel conditioning maps of the large model: elevation, position and calendar.

The paper feeds the large model elevation, latitude, longitude, a season index, the number
of days since the first day of the data and the normalised year (section 2.3). The scripts
only passed patch-corner values; we give every pixel its own value (docs: the method page). The
constants that turn these into model-friendly numbers are fitted once on the training data
(:class:`CovariateSpec`) and travel with the estimator, so prediction days outside the
training years get consistent values (a year after ``year_max`` maps above 1, not clipped).
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import get_latlon_names
from ..errors import ConfigError, GridMismatchError, TimeAxisError
from .seasons import SEASONS, season_of

__all__ = ["COVARIATE_NAMES", "CovariateSpec", "covariate_maps", "covariate_stack", "covariates_like"]

#: Names of the covariate channels, in the order of :func:`covariate_maps`.
COVARIATE_NAMES = ("elevation", "lat", "lon", "season", "days", "year")


def _day(value) -> pd.Timestamp:
    try:
        return pd.Timestamp(value).normalize()
    except (TypeError, ValueError) as err:
        raise ConfigError(f"origin must be a date, got {value!r}: {err}") from None


def _finite(name: str, value, *, positive: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        kind = "a positive finite" if positive else "a finite"
        raise ConfigError(f"{name} must be {kind} number, got {value!r}")
    return value


@dataclass(frozen=True)
class CovariateSpec:
    """Constants that scale the covariate maps, fitted on the training record.

    Parameters
    ----------
    origin : str or datetime-like
        Day 0 of the ``days`` covariate (the first day of the training record); stored as an
        ISO date string.
    year_min, year_max : int
        Calendar years mapped to 0 and 1 by the ``year`` covariate.
    elev_offset, elev_scale : float
        Elevation z-score constants (mean and standard deviation over the training grid,
        metres); ``elev_scale`` must be positive.
    lat_min, lat_max, lon_min, lon_max : float, optional
        Bounds mapped to -1 and 1 by the ``lat``/``lon`` maps. None: the bounds of the grid
        passed to :func:`covariate_maps` (then a sub-grid gets different values).
    days_scale : float, default 365.25
        Divisor of the days since ``origin``, so the ``days`` covariate reads in years.

    Raises
    ------
    ConfigError
        If a value is missing, non-finite or inconsistent (``year_max < year_min``,
        one bound of a pair given without the other, ``min > max``).
    """

    origin: str
    year_min: int
    year_max: int
    elev_offset: float = 0.0
    elev_scale: float = 1.0
    lat_min: float | None = None
    lat_max: float | None = None
    lon_min: float | None = None
    lon_max: float | None = None
    days_scale: float = 365.25

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__ so to_dict() is JSON-able
        set_ = object.__setattr__
        set_(self, "origin", str(_day(self.origin).date()))
        set_(self, "year_min", int(self.year_min))
        set_(self, "year_max", int(self.year_max))
        if self.year_max < self.year_min:
            raise ConfigError(f"year_max ({self.year_max}) < year_min ({self.year_min})")
        set_(self, "elev_offset", _finite("elev_offset", self.elev_offset))
        set_(self, "elev_scale", _finite("elev_scale", self.elev_scale, positive=True))
        set_(self, "days_scale", _finite("days_scale", self.days_scale, positive=True))
        for axis in ("lat", "lon"):
            lo, hi = getattr(self, f"{axis}_min"), getattr(self, f"{axis}_max")
            if (lo is None) != (hi is None):
                raise ConfigError(f"give both {axis}_min and {axis}_max, or neither")
            if lo is not None:
                lo, hi = _finite(f"{axis}_min", lo), _finite(f"{axis}_max", hi)
                if lo > hi:
                    raise ConfigError(f"{axis}_min ({lo}) > {axis}_max ({hi})")
                set_(self, f"{axis}_min", lo)
                set_(self, f"{axis}_max", hi)

    @classmethod
    def from_data(cls, times, elevation, lat=None, lon=None) -> CovariateSpec:
        """Fit the constants on the training record and grid.

        Parameters
        ----------
        times : array-like of datetimes
            Days of the training record (origin = first day; years span min..max).
        elevation : numpy.ndarray or xarray.DataArray, shape (ny, nx)
            Elevation on the training grid (metres); NaN ignored. A constant (e.g. all-zero
            "no DEM") field gets ``elev_scale = 1`` so its maps are 0, not NaN.
        lat, lon : array-like, optional
            Grid coordinates whose bounds fix the lat/lon scaling; taken from a DataArray
            ``elevation`` when omitted.

        Returns
        -------
        CovariateSpec

        Raises
        ------
        ConfigError
            If ``times`` is empty.
        TimeAxisError
            If ``times`` are not datetimes.
        """
        index = _as_index(times)
        if index.size == 0:
            raise ConfigError("CovariateSpec.from_data needs at least one training day")
        if isinstance(elevation, xr.DataArray) and (lat is None or lon is None):
            lat_name, lon_name = get_latlon_names(elevation)
            lat = elevation[lat_name].values if lat is None else lat
            lon = elevation[lon_name].values if lon is None else lon
        elev = np.asarray(elevation, dtype=np.float64)
        with np.errstate(all="ignore"):
            finite = elev[np.isfinite(elev)]
        offset = float(finite.mean()) if finite.size else 0.0
        scale = float(finite.std()) if finite.size else 0.0
        bounds: dict[str, Any] = {}
        for axis, values in (("lat", lat), ("lon", lon)):
            if values is not None:
                values = np.asarray(values, dtype=np.float64)
                bounds[f"{axis}_min"], bounds[f"{axis}_max"] = values.min(), values.max()
        return cls(
            origin=index.min(),
            year_min=int(index.year.min()),
            year_max=int(index.year.max()),
            elev_offset=offset,
            elev_scale=scale if scale > 0 else 1.0,
            **bounds,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields (origin as ``"YYYY-MM-DD"``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CovariateSpec:
        """Rebuild from :meth:`to_dict` output.

        Raises
        ------
        ConfigError
            On unknown or missing keys or invalid values.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown CovariateSpec keys {sorted(unknown)}; expected {sorted(known)}")
        try:
            return cls(**d)
        except TypeError as err:
            raise ConfigError(f"incomplete CovariateSpec {d!r}: {err}") from None


def _as_index(times) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(np.atleast_1d(np.asarray(times))).normalize()
    except (TypeError, ValueError) as err:
        raise TimeAxisError(f"times must be datetimes: {err}") from None


def _to_unit_interval(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """Map ``[lo, hi]`` linearly to ``[-1, 1]`` (0 when the span is a single value)."""
    lo = float(values.min()) if lo is None else lo
    hi = float(values.max()) if hi is None else hi
    if hi == lo:
        return np.zeros_like(values)
    return 2.0 * (values - lo) / (hi - lo) - 1.0


def covariate_stack(spec: CovariateSpec, times, lat, lon, elevation) -> np.ndarray:
    """Covariate maps of many days at once.

    Channels (:data:`COVARIATE_NAMES`):

    0. ``elevation``: ``(z - elev_offset) / elev_scale``; NaN stays NaN.
    1. ``lat``, 2. ``lon``: each pixel's coordinate mapped linearly from the spec's bounds
       to [-1, 1] (constant along the other axis).
    3. ``season``: index into :data:`SEASONS` (DJF = 0 ... SON = 3), not scaled.
    4. ``days``: calendar days since ``spec.origin`` divided by ``spec.days_scale``
       (years by default; negative before the origin).
    5. ``year``: ``(year - year_min) / (year_max - year_min)``, 0 when they are equal.

    Parameters
    ----------
    spec : CovariateSpec
    times : array-like of datetimes, shape (n,)
    lat : array-like, shape (ny,)
    lon : array-like, shape (nx,)
    elevation : array-like, shape (ny, nx)
        Metres on the (lat, lon) grid.

    Returns
    -------
    numpy.ndarray of float32, shape (n, 6, ny, nx)

    Raises
    ------
    GridMismatchError
        If ``elevation`` is not (len(lat), len(lon)).
    TimeAxisError
        If ``times`` are not datetimes.
    """
    index = _as_index(times)
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    elev = np.asarray(elevation, dtype=np.float64)
    if lat.ndim != 1 or lon.ndim != 1 or elev.shape != (lat.size, lon.size):
        raise GridMismatchError(
            f"elevation must have shape (len(lat), len(lon)) = ({lat.size}, {lon.size}) with 1-D "
            f"lat/lon; got elevation {elev.shape}, lat {lat.shape}, lon {lon.shape}"
        )
    origin = pd.Timestamp(spec.origin)
    years = index.year.to_numpy()
    span = spec.year_max - spec.year_min
    per_day = np.stack([
        pd.Index(SEASONS).get_indexer(season_of(index)).astype(np.float64),
        (index - origin).days.to_numpy() / spec.days_scale,
        (years - spec.year_min) / span if span else np.zeros(years.size),
    ], axis=1)  # (n, 3)
    out = np.empty((index.size, len(COVARIATE_NAMES), lat.size, lon.size), dtype=np.float32)
    out[:, 0] = (elev - spec.elev_offset) / spec.elev_scale
    out[:, 1] = _to_unit_interval(lat, spec.lat_min, spec.lat_max)[:, None]
    out[:, 2] = _to_unit_interval(lon, spec.lon_min, spec.lon_max)[None, :]
    out[:, 3:] = per_day[:, :, None, None]
    return out


def covariate_maps(spec: CovariateSpec, time, lat, lon, elevation) -> np.ndarray:
    """The six covariate maps of one day, see :func:`covariate_stack`.

    Returns
    -------
    numpy.ndarray of float32, shape (6, ny, nx)
    """
    return covariate_stack(spec, [time], lat, lon, elevation)[0]


def covariates_like(
    obj: xr.Dataset | xr.DataArray,
    spec: CovariateSpec,
    elevation,
    *,
    time: Hashable = "time",
) -> xr.DataArray:
    """Covariate maps for every day and pixel of ``obj``, labelled.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Gives the time, lat and lon coordinates (its data is not read). When its data is
        dask-backed, the result is chunked along time the same way and stays lazy.
    spec : CovariateSpec
    elevation : numpy.ndarray or xarray.DataArray, shape (ny, nx)
        Elevation on ``obj``'s grid (metres).
    time : hashable, default "time"

    Returns
    -------
    xarray.DataArray, dims (time, covariate, lat, lon), float32
    """
    lat_name, lon_name = get_latlon_names(obj)
    lat, lon = obj[lat_name].values, obj[lon_name].values
    elev = np.asarray(elevation, dtype=np.float64)
    times = obj[time].variable.to_base_variable()
    chunks = obj.chunksizes.get(time) if obj.chunks else None
    times_da = xr.DataArray(times)
    if chunks:
        times_da = times_da.chunk({time: chunks})
    out = xr.apply_ufunc(
        lambda t: covariate_stack(spec, t, lat, lon, elev),
        times_da,
        output_core_dims=[["covariate", lat_name, lon_name]],
        dask="parallelized",
        output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"covariate": len(COVARIATE_NAMES),
                                             lat_name: lat.size, lon_name: lon.size}},
    )
    return out.assign_coords(
        {time: obj[time], "covariate": list(COVARIATE_NAMES), lat_name: obj[lat_name],
         lon_name: obj[lon_name]}
    ).rename("covariates")
