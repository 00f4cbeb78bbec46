"""Tests of xdownscale.diagnostics.temporal (ACF/PACF of the regional mean, lag metrics)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes
from scipy.linalg import solve_toeplitz
from statsmodels.tsa.stattools import acf as sm_acf
from statsmodels.tsa.stattools import pacf as sm_pacf

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale.diagnostics import acf, lag_metrics, pacf
from xdownscale.errors import ConfigError, TimeAxisError


def _ar1(n, phi=0.7, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.normal()
    return x


def _cube(times, ny=6, nx=7, seed=0):
    """Daily fields whose regional mean of log10 follows an AR(1) process, with NaN pixels."""
    rng = np.random.default_rng(seed)
    level = _ar1(len(times), seed=seed)
    logs = -1.0 + 0.2 * level[:, None, None] + 0.05 * rng.normal(size=(len(times), ny, nx))
    x = 10.0**logs
    x[:, 0, :2] = np.nan
    return xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), x)},
                      coords={"time": pd.DatetimeIndex(times), "lat": 20.0 + np.arange(ny),
                              "lon": 40.0 + np.arange(nx)})


def _series(ds):
    z = np.log10(np.maximum(ds["DUEXTTAU"].values, 1e-6))
    with warnings.catch_warnings():  # an all-NaN day has a NaN mean, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(z.reshape(z.shape[0], -1), axis=1)


def test_single_segment_equals_statsmodels():
    ds = _cube(pd.date_range("2005-06-01", periods=80))
    x = _series(ds)
    ref, ci = sm_acf(x, nlags=12, alpha=0.05, fft=False, result_object=False)
    res = acf(ds, nlags=12)
    np.testing.assert_allclose(res["acf"], ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res["lower"], ci[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res["upper"], ci[:, 1], rtol=1e-10, atol=1e-12)
    assert int(res["n_obs"]) == 80 and int(res["n_segments"]) == 1
    pref, pci = sm_pacf(x, nlags=12, method="ldb", alpha=0.05, result_object=False)
    pres = pacf(ds, nlags=12)
    np.testing.assert_allclose(pres["pacf"], pref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pres["lower"], pci[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pres["upper"], pci[:, 1], rtol=1e-10, atol=1e-12)


def _pooled_acf_brute(segments, nlags):
    num = np.zeros(nlags + 1)
    for seg in segments:
        d = seg - seg.mean()
        for k in range(min(nlags, d.size - 1) + 1):
            num[k] += sum(d[t] * d[t - k] for t in range(k, d.size))
    return num / num[0]


def test_segments_never_span_gaps_or_nan_days():
    times = pd.date_range("2005-06-01", periods=30).append(pd.date_range("2006-06-01",
                                                                         periods=25))
    ds = _cube(times, seed=3)
    ds["DUEXTTAU"][40] = np.nan  # a missing day splits the second season
    x = _series(ds)
    segments = [x[:30], x[30:40], x[41:]]
    res = acf(ds, nlags=8)
    ref = _pooled_acf_brute(segments, 8)
    np.testing.assert_allclose(res["acf"], ref, rtol=1e-10)
    assert int(res["n_obs"]) == 54 and int(res["n_segments"]) == 3
    # The PACF is the last Yule-Walker coefficient at each order, from the pooled ACF.
    pres = pacf(ds, nlags=8)
    expected = [1.0] + [solve_toeplitz(ref[:k], ref[1 : k + 1])[-1] for k in range(1, 9)]
    np.testing.assert_allclose(pres["pacf"], expected, rtol=1e-8, atol=1e-12)
    # Gluing the series instead would give a different answer.
    glued, _ = sm_acf(np.r_[x[:40], x[41:]], nlags=8, alpha=0.05, result_object=False)
    assert not np.allclose(res["acf"], glued)


def test_lazy_and_equal_on_dask():
    ds = _cube(pd.date_range("2005-06-01", periods=50))
    with raise_if_dask_computes():
        lazy_a = acf(ds.chunk({"time": 7}), nlags=5)
        lazy_p = ds.chunk({"time": 7}).dustdiag.pacf(nlags=5)
        lazy_l = lag_metrics(ds.chunk({"time": 7}), max_lag=3)
    xr.testing.assert_allclose(lazy_a.compute(), acf(ds, nlags=5))
    xr.testing.assert_allclose(lazy_p.compute(), pacf(ds, nlags=5))
    xr.testing.assert_allclose(lazy_l.compute(), lag_metrics(ds, max_lag=3))


def test_data_units_and_degenerate_series():
    ds = _cube(pd.date_range("2005-06-01", periods=40))
    raw = ds["DUEXTTAU"].values
    x = np.nanmean(raw.reshape(40, -1), axis=1)
    ref = sm_acf(x, nlags=4, fft=False, result_object=False)
    np.testing.assert_allclose(acf(ds, nlags=4, log10=False)["acf"], ref, rtol=1e-10)
    const = ds.copy(data={"DUEXTTAU": np.ones_like(raw)})
    assert np.isnan(acf(const, nlags=3)["acf"]).all()


def _lag_brute(z, times, max_lag):
    rmse = np.full((len(times), max_lag), np.nan)
    r2 = np.full((len(times), max_lag), np.nan)
    pos = {t: i for i, t in enumerate(times)}
    for i, t in enumerate(times):
        for lag in range(1, max_lag + 1):
            j = pos.get(t - pd.Timedelta(days=lag))
            if j is None:
                continue
            ok = np.isfinite(z[i]) & np.isfinite(z[j])
            a, b = z[i][ok], z[j][ok]
            rmse[i, lag - 1] = np.sqrt(np.mean((a - b) ** 2))
            r2[i, lag - 1] = 1 - np.sum((a - b) ** 2) / np.sum((a - a.mean()) ** 2)
    return rmse, r2


def test_lag_metrics_match_a_brute_force_loop_on_the_calendar():
    times = pd.date_range("2005-06-01", periods=20).delete([5, 6, 12])
    ds = _cube(times, seed=2)
    ds["DUEXTTAU"][3, 2, 2] = np.nan  # a pixel missing on one day only
    z = np.log10(np.maximum(ds["DUEXTTAU"].values, 1e-6))
    rmse, r2 = _lag_brute(z, times, 4)
    res = lag_metrics(ds, max_lag=4)
    np.testing.assert_allclose(res["rmse_daily"], rmse, rtol=1e-12)
    np.testing.assert_allclose(res["r2_daily"], r2, rtol=1e-12)
    np.testing.assert_allclose(res["rmse"], np.nanmean(rmse, axis=0), rtol=1e-12)
    np.testing.assert_allclose(res["r2"], np.nanmean(r2, axis=0), rtol=1e-12)
    np.testing.assert_allclose(res["r2_std"], np.nanstd(r2, axis=0, ddof=1), rtol=1e-10)
    np.testing.assert_array_equal(res["n_days"], np.isfinite(rmse).sum(axis=0))
    assert list(res["lag"].values) == [1, 2, 3, 4]
    xr.testing.assert_identical(ds.dustdiag.lag_metrics(max_lag=4), res)


def test_errors():
    ds = _cube(pd.date_range("2005-06-01", periods=10))
    with pytest.raises(ConfigError):
        acf(ds, nlags=0)
    with pytest.raises(ConfigError):
        pacf(ds, alpha=1.5)
    with pytest.raises(ConfigError):
        lag_metrics(ds, max_lag=0)
    with pytest.raises(TimeAxisError, match="increasing"):
        lag_metrics(ds.isel(time=slice(None, None, -1)))
    with pytest.raises(TimeAxisError, match="increasing"):
        acf(ds.isel(time=slice(None, None, -1)))
