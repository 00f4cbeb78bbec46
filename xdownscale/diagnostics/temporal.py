"""Temporal structure: ACF/PACF of the regional-mean series and lagged image metrics.

Paper §2.5.3 (Figures 3, 5 and 9).

Segments (why and how)
----------------------
A season split glues several years' seasons together, and the record can have missing days.
The ACF/PACF are therefore computed on *contiguous daily segments*: a segment ends where the
calendar skips a day or where a day's regional mean is NaN (a day whose every pixel is
missing), so no lag product ever spans a gap. Each segment is demeaned by its own mean (the
seasons of different years sit at different levels; a common mean would turn that
inter-annual offset into spurious persistence). The segments' biased autocovariances
(``statsmodels.tsa.stattools.acovf``, ``adjusted=False``) are pooled weighted by segment
length, i.e. the lag products of all segments are summed and divided by the total number of
days, and the ACF is that pooled autocovariance over its lag-0 value. For one segment this
is exactly ``statsmodels.tsa.stattools.acf``; the pooled sequence stays positive
semi-definite, so the PACF follows from it by Durbin-Levinson
(``statsmodels.tsa.stattools.levinson_durbin``) -- exactly ``pacf(method="ldb")`` for one
segment. Bands are statsmodels' 1 - alpha intervals with n = the number of valid days:
Bartlett's formula around the ACF, +- z / sqrt(n) around the PACF.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import check_daily_time
from ..errors import ConfigError
from ._common import (
    DIAG_KEY,
    LOG_EPS,
    check_core_unchunked,
    day_numbers,
    describe,
    field,
    field_units,
    maybe_log10,
    quiet,
    single_chunk,
    tag,
)


def _segments(values: np.ndarray, days: np.ndarray) -> list[np.ndarray]:
    """Runs of consecutive calendar days with finite values."""
    ok = np.isfinite(values)
    breaks = np.flatnonzero(~ok | np.r_[True, np.diff(days) != 1])
    out = []
    for start, stop in zip(breaks, np.r_[breaks[1:], values.size], strict=True):
        seg = values[start:stop]
        seg = seg[np.isfinite(seg)]  # the break day itself may be the NaN that ended a run
        if seg.size:
            out.append(seg)
    return out


def _pooled_acov(values: np.ndarray, days: np.ndarray, nlags: int):
    """Length-weighted sum of per-segment biased autocovariances, lags 0..nlags."""
    from statsmodels.tsa.stattools import acovf

    total = np.zeros(nlags + 1)
    segs = _segments(values, days)
    for seg in segs:
        nlag = min(nlags, seg.size - 1)
        total[: nlag + 1] += seg.size * acovf(seg, adjusted=False, demean=True, fft=False,
                                              nlag=nlag)
    return total, sum(s.size for s in segs), len(segs)


def _acf_kernel(values: np.ndarray, days: np.ndarray, *, nlags: int, alpha: float,
                partial: bool):
    """ACF (or PACF) with its band for one series -> ``(r, lower, upper, n_obs, n_seg)``."""
    from scipy.stats import norm
    from statsmodels.tsa.stattools import levinson_durbin

    nan = np.full(nlags + 1, np.nan)
    acov, n, nseg = _pooled_acov(np.asarray(values, float), np.asarray(days), nlags)
    if n < 2 or not acov[0] > 0:
        return nan, nan, nan, n, nseg
    r = acov / acov[0]
    z = norm.ppf(1 - alpha / 2)
    if partial:
        with quiet():
            r = np.r_[1.0, levinson_durbin(r, nlags=nlags, isacov=True)[2][1:]]
        var = np.r_[0.0, np.full(nlags, 1.0 / n)]
    else:
        # Bartlett's variance of r_k: (1 + 2 sum_{j<k} r_j^2) / n.
        var = np.r_[0.0, 1.0, 1.0 + 2 * np.cumsum(r[1:-1] ** 2)] / n
        var = var[: nlags + 1]
    half = z * np.sqrt(var)
    return r, r - half, r + half, n, nseg


def regional_mean(obj: xr.Dataset | xr.DataArray, *, var: Hashable | None = None,
                  log10: bool = True, eps: float = LOG_EPS) -> xr.DataArray:
    """Daily NaN-skipping mean over all pixels, unweighted as in the paper (§2.5.3).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Daily fields with dims ``time, lat, lon``.
    var : hashable, optional
        Variable to use; default ``"DUEXTTAU"``.
    log10 : bool
        Average ``log10(max(x, eps))`` instead of data units.
    eps : float
        Floor before ``log10``.

    Returns
    -------
    xarray.DataArray
        The series over ``time`` (NaN on days without a valid pixel); lazy on dask input.

    Raises
    ------
    DimensionError, MissingVariableError
        No lat/lon dims, or ``var`` is missing.
    """
    da = maybe_log10(field(obj, var), log10, eps)
    return da.mean(["lat", "lon"], skipna=True)


def _correlogram(obj, nlags: int, *, var, log10: bool, eps: float, alpha: float,
                 partial: bool) -> xr.Dataset:
    if int(nlags) < 1:
        raise ConfigError(f"nlags must be a positive integer, got {nlags!r}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha!r}")
    nlags = int(nlags)
    series = regional_mean(obj, var=var, log10=log10, eps=eps)
    check_daily_time(series)
    series = single_chunk(series, "time")  # a derived daily series: small
    days = xr.DataArray(day_numbers(series), dims="time", coords={"time": series["time"]})
    name = "pacf" if partial else "acf"
    r, lower, upper, n_obs, n_seg = xr.apply_ufunc(
        _acf_kernel, series, days, input_core_dims=[["time"], ["time"]],
        output_core_dims=[["lag"], ["lag"], ["lag"], [], []],
        kwargs={"nlags": nlags, "alpha": float(alpha), "partial": partial},
        vectorize=True, dask="parallelized",
        output_dtypes=[np.float64, np.float64, np.float64, np.int64, np.int64],
        dask_gufunc_kwargs={"output_sizes": {"lag": nlags + 1}},
    )
    out = xr.Dataset({name: r, "lower": lower, "upper": upper, "n_obs": n_obs,
                      "n_segments": n_seg})
    what = "partial autocorrelation" if partial else "autocorrelation"
    describe(out, {
        name: {"long_name": f"{what} of the regional-mean daily series", "units": "1"},
        "lower": {"long_name": f"lower bound of the {1 - alpha:.0%} band", "units": "1"},
        "upper": {"long_name": f"upper bound of the {1 - alpha:.0%} band", "units": "1"},
        "n_obs": {"long_name": "number of valid days used", "units": "1"},
        "n_segments": {"long_name": "number of contiguous daily segments", "units": "1"},
    })
    out = out.assign_coords(lag=("lag", np.arange(nlags + 1),
                                 {"units": "days", "long_name": "lag"}))
    out = out.drop_vars([c for c in out.coords if c != "lag"])
    return tag(out, name, alpha=float(alpha), transform=f"log10(max(x, {eps:g}))" if log10
               else "none", variable=str(series.name))


_CORR_DOC = """
    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Daily fields with dims ``time, lat, lon``.
    nlags : int
        Largest lag in days.
    var : hashable, optional
        Variable to use; default ``"DUEXTTAU"``.
    log10 : bool
        Average ``log10(max(x, eps))`` rather than data units (the paper's §3.1 choice).
    eps : float
        Floor before ``log10``.
    alpha : float
        The bands are 1 - alpha intervals.

    Returns
    -------
    xarray.Dataset
        ``{name}(lag)`` for lags 0..nlags, its band ``lower(lag)``/``upper(lag)``,
        ``n_obs`` (valid days used) and ``n_segments``. Extra dims (e.g. ``member``) are
        kept. NaN when fewer than 2 valid days or a constant series. Lazy on dask input.

    Raises
    ------
    ConfigError
        ``nlags`` < 1 or ``alpha`` outside (0, 1).
    TimeAxisError
        Times are not datetimes, unsorted or duplicated.
"""


def acf(obj: xr.Dataset | xr.DataArray, nlags: int = 30, *, var: Hashable | None = None,
        log10: bool = True, eps: float = LOG_EPS, alpha: float = 0.05) -> xr.Dataset:
    return _correlogram(obj, nlags, var=var, log10=log10, eps=eps, alpha=alpha, partial=False)


def pacf(obj: xr.Dataset | xr.DataArray, nlags: int = 30, *, var: Hashable | None = None,
         log10: bool = True, eps: float = LOG_EPS, alpha: float = 0.05) -> xr.Dataset:
    return _correlogram(obj, nlags, var=var, log10=log10, eps=eps, alpha=alpha, partial=True)


acf.__doc__ = ("Autocorrelation of the regional-mean daily series, segment-aware (see the "
               "module notes).\n" + _CORR_DOC.format(name="acf"))
pacf.__doc__ = ("Partial autocorrelation of the regional-mean daily series, by "
                "Durbin-Levinson on the segment-pooled ACF (see the module notes).\n"
                + _CORR_DOC.format(name="pacf"))


def _lag_scores(z: np.ndarray, zp: np.ndarray):
    """Image-wise RMSE and R^2 of ``z`` against ``zp`` over pixels valid in both."""
    ok = np.isfinite(z) & np.isfinite(zp)
    n = ok.sum(axis=(-2, -1))
    z0 = np.where(ok, z, 0.0)
    d2 = np.where(ok, (z - zp) ** 2, 0.0).sum(axis=(-2, -1))
    with quiet():
        mean = z0.sum(axis=(-2, -1)) / n
        sst = np.where(ok, (z - mean[..., None, None]) ** 2, 0.0).sum(axis=(-2, -1))
        rmse = np.sqrt(d2 / n)
        r2 = np.where(sst > 0, 1.0 - d2 / sst, np.nan)
    return np.where(n > 0, rmse, np.nan), np.where(n > 0, r2, np.nan)


def lag_metrics(obj: xr.Dataset | xr.DataArray, max_lag: int = 10, *,
                var: Hashable | None = None, log10: bool = True,
                eps: float = LOG_EPS) -> xr.Dataset:
    """Image-wise RMSE and R^2 between day t and day t - lag (the paper's Figure 3).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Daily fields with dims ``time, lat, lon``.
    max_lag : int
        Lags 1..max_lag in calendar days.
    var : hashable, optional
        Variable to use; default ``"DUEXTTAU"``.
    log10 : bool
        Compare ``log10(max(x, eps))`` fields rather than data units.
    eps : float
        Floor before ``log10``.

    Returns
    -------
    xarray.Dataset
        ``rmse_daily(time, lag)`` = sqrt(mean (z_t - z_{t-l})^2) and ``r2_daily(time, lag)``
        = 1 - sum (z_t - z_{t-l})^2 / sum (z_t - mean z_t)^2 over the pixels valid on both
        days; NaN where day t - l is not in the record (lags are on the calendar, never
        on rows) or the image is constant. ``rmse(lag)``, ``r2(lag)``: their NaN-skipping
        means over days; ``rmse_std``/``r2_std`` (ddof=1); ``n_days(lag)``: days averaged.
        Lazy on dask input.

    Raises
    ------
    ConfigError
        ``max_lag`` < 1.
    TimeAxisError
        Times are not datetimes, unsorted or duplicated.
    DimensionError
        ``lat``/``lon`` of a dask-backed input are split into several chunks.
    """
    if int(max_lag) < 1:
        raise ConfigError(f"max_lag must be a positive integer, got {max_lag!r}")
    da = maybe_log10(field(obj, var), log10, eps)
    times = check_daily_time(da)
    check_core_unchunked(da, ("lat", "lon"), "lag_metrics")
    rmse, r2 = [], []
    for lag in range(1, int(max_lag) + 1):
        # Reindexing on the shifted calendar puts NaN maps where day t - lag is missing.
        prev = da.reindex(time=times - pd.Timedelta(days=lag)).assign_coords(time=da["time"])
        a, b = xr.apply_ufunc(
            _lag_scores, da, prev, input_core_dims=[["lat", "lon"]] * 2,
            output_core_dims=[[], []], dask="parallelized",
            output_dtypes=[np.float64, np.float64],
        )
        rmse.append(a)
        r2.append(b)
    lags = pd.Index(np.arange(1, int(max_lag) + 1), name="lag")
    rmse_d = xr.concat(rmse, dim=lags).transpose("time", "lag", ...)
    r2_d = xr.concat(r2, dim=lags).transpose("time", "lag", ...)
    out = xr.Dataset({
        "rmse_daily": rmse_d, "r2_daily": r2_d,
        "rmse": rmse_d.mean("time", skipna=True), "r2": r2_d.mean("time", skipna=True),
        "rmse_std": rmse_d.std("time", skipna=True, ddof=1),
        "r2_std": r2_d.std("time", skipna=True, ddof=1),
        "n_days": rmse_d.notnull().sum("time"),
    })
    out = out.drop_vars([c for c in out.coords if c not in ("time", "lag")])
    units = field_units(field(obj, var).attrs.get("units"), log10)
    err = {"units": units} if units is not None else {}
    space = "log10 " if log10 else ""
    describe(out, {
        "rmse_daily": {"long_name": f"image-wise {space}RMSE against the day lag days earlier",
                       **err},
        "r2_daily": {"long_name": f"image-wise {space}R2 against the day lag days earlier",
                     "units": "1"},
        "rmse": {"long_name": f"mean over days of the image-wise {space}RMSE", **err},
        "r2": {"long_name": f"mean over days of the image-wise {space}R2", "units": "1"},
        "rmse_std": {"long_name": f"standard deviation over days of the {space}RMSE", **err},
        "r2_std": {"long_name": f"standard deviation over days of the {space}R2", "units": "1"},
        "n_days": {"long_name": "number of days averaged", "units": "1"},
    })
    out["lag"].attrs.update(units="days", long_name="lag")
    return tag(out, "lag_metrics", transform=f"log10(max(x, {eps:g}))" if log10 else "none",
               variable=str(da.name))


def correlogram(obj: xr.Dataset | xr.DataArray, nlags: int = 30, *,
                var: Hashable | None = None, log10: bool = True, eps: float = LOG_EPS,
                alpha: float = 0.05) -> xr.Dataset:
    """:func:`acf` and :func:`pacf` in one Dataset, as :func:`plots.plot_acf` draws them.

    Parameters
    ----------
    obj, nlags, var, log10, eps, alpha
        As for :func:`acf`.

    Returns
    -------
    xarray.Dataset
        ``acf``, ``acf_lower``, ``acf_upper``, ``pacf``, ``pacf_lower``, ``pacf_upper`` over
        ``lag``, and ``n_obs``, ``n_segments``. Lazy on dask input.

    Raises
    ------
    ConfigError, TimeAxisError
        As for :func:`acf`.
    """
    kw = {"var": var, "log10": log10, "eps": eps, "alpha": alpha}
    a, p = acf(obj, nlags, **kw), pacf(obj, nlags, **kw)
    out = xr.Dataset({
        "acf": a["acf"], "acf_lower": a["lower"], "acf_upper": a["upper"],
        "pacf": p["pacf"], "pacf_lower": p["lower"], "pacf_upper": p["upper"],
        "n_obs": a["n_obs"], "n_segments": a["n_segments"],
    })
    for key in ("acf", "pacf"):
        src = a if key == "acf" else p
        out[key].attrs = dict(src[key].attrs)
        for side in ("lower", "upper"):
            out[f"{key}_{side}"].attrs = dict(src[side].attrs)
    attrs = {k: v for k, v in a.attrs.items() if k != DIAG_KEY}
    return tag(out, "correlogram", **attrs)
