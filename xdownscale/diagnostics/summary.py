"""Table 1 of the paper: per-season summary statistics in data units."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from .._coords import check_daily_time
from ..data.seasons import SEASONS
from ..errors import ConfigError, TimeAxisError
from ._common import field, tag, target_days


def _stat_name(q: float) -> str:
    return f"q{round(q * 100):02d}"


def summary(
    obj: xr.Dataset | xr.DataArray,
    *,
    var: Hashable | None = None,
    by: str | None = "season",
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
) -> xr.Dataset:
    """Summary statistics per season, pooled over all pixels and days (the paper's Table 1).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Daily fields with dims ``time, lat, lon`` (data units, not transformed).
    var : hashable, optional
        Variable to use; default ``"DUEXTTAU"``.
    by : {"season", None}
        ``"season"`` groups days by meteorological season (DJF, MAM, JJA, SON; only the
        seasons present are returned, in that order). ``None`` pools the whole record under
        the single season label ``"all"``.
    quantiles : sequence of float
        Quantile levels in [0, 1]; each becomes a variable ``qNN`` (e.g. ``q05``).

    Returns
    -------
    xarray.Dataset
        Variables ``n_days``, ``mean``, ``std`` and one per quantile, each with dim
        ``season``; ``ds.to_dataframe()`` gives one row per season (transpose it for the
        paper's layout). Statistics pool every valid (non-NaN) pixel of every day of the
        season; ``std`` is the population standard deviation (ddof=0) of that pool;
        ``n_days`` counts days with at least one valid pixel. Days marked
        ``target == False`` (the lag buffers added by ``seasons()``) are left out. Lazy on
        dask input; the quantiles are exact, so computing them holds one season's valid
        values in memory.

    Raises
    ------
    ConfigError
        ``by`` is not ``"season"`` or ``None``, or a quantile is outside [0, 1].
    DimensionError, MissingVariableError
        The input has no time/lat/lon dims or lacks ``var``.
    TimeAxisError
        The time axis is empty, not datetime-like, unsorted or has duplicates.
    """
    if by not in ("season", None):
        raise ConfigError(f"by must be 'season' or None, got {by!r}")
    qs = [float(q) for q in quantiles]
    if any(not 0.0 <= q <= 1.0 for q in qs):
        raise ConfigError(f"quantiles must lie in [0, 1], got {qs}")
    da = target_days(field(obj, var))
    check_daily_time(da)
    if da.sizes["time"] == 0:
        raise TimeAxisError("summary needs at least one day; the time axis is empty")

    if by is None:
        groups = {"all": da}
    else:
        labels = np.asarray(da["time"].dt.season)
        groups = {s: da.isel(time=np.flatnonzero(labels == s))
                  for s in SEASONS if (labels == s).any()}

    dims = ["time", "lat", "lon"]
    rows = []
    for sub in groups.values():
        stats = {
            "n_days": sub.notnull().any(["lat", "lon"]).sum("time"),
            "mean": sub.mean(dims, skipna=True),
            "std": sub.std(dims, skipna=True),
        }
        quant = sub.quantile(qs, dim=dims, skipna=True)
        for q in qs:
            stats[_stat_name(q)] = quant.sel(quantile=q, drop=True)
        rows.append(xr.Dataset(stats))
    out = xr.concat(rows, dim="season", coords="minimal", compat="override", join="outer")
    out = out.assign_coords(season=list(groups))
    out = out.drop_vars([c for c in out.coords if c != "season"])
    for name in out.data_vars:
        out[name].attrs = {"units": da.attrs.get("units", "")} if name != "n_days" else {}
    out["n_days"].attrs["long_name"] = "days with at least one valid pixel"
    return tag(out, "summary", variable=str(da.name), by=str(by))
