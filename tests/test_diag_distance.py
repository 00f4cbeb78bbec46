"""Tests of xdownscale.diagnostics.wasserstein (paper eq. 10-13, Table 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes
from scipy.stats import wasserstein_distance

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale.diagnostics import wasserstein
from xdownscale.errors import ConfigError, GridMismatchError

EPS = 1e-6


def _pair(n_days=6, ny=9, nx=11, seed=0, start="2005-06-01"):
    rng = np.random.default_rng(seed)
    coords = {"time": pd.date_range(start, periods=n_days), "lat": 20.0 + 0.5 * np.arange(ny),
              "lon": 40.0 + 0.5 * np.arange(nx)}
    x = np.exp(rng.normal(-2.0, 1.0, (n_days, ny, nx)))
    y = np.exp(rng.normal(-1.8, 1.2, (n_days, ny, nx)))
    x[:, 0, :] = np.nan  # outside the region in x only: leaves Omega_t in both
    y[:, :, -1] = np.nan
    x[1, 3, 3] = 0.0  # below eps
    dims = ("time", "lat", "lon")
    return (xr.Dataset({"DUEXTTAU": (dims, x)}, coords=coords),
            xr.Dataset({"DUEXTTAU": (dims, y)}, coords=coords))


def _normalise(a, b):
    ok = np.isfinite(a) & np.isfinite(b)
    la, lb = np.log10(np.maximum(a[ok], EPS)), np.log10(np.maximum(b[ok], EPS))
    lo, hi = min(la.min(), lb.min()), max(la.max(), lb.max())
    return (la - lo) / (hi - lo), (lb - lo) / (hi - lo)


def test_daily_w1_matches_scipy_and_eq13_by_hand():
    x, y = _pair()
    res = wasserstein(x, y, bins=50)
    for t in range(x.sizes["time"]):
        u, v = _normalise(x["DUEXTTAU"].values[t], y["DUEXTTAU"].values[t])
        assert float(res["w1"][t]) == pytest.approx(wasserstein_distance(u, v), rel=1e-12)
        grid = np.arange(1, 51) / 50
        fu = (u[:, None] <= grid).mean(0)
        fv = (v[:, None] <= grid).mean(0)
        assert float(res["w1_hist"][t]) == pytest.approx(np.abs(fu - fv).mean(), abs=1e-12)
        assert int(res["n_pixels"][t]) == u.size == 8 * 10
    w = res["w1"].values
    assert float(res["daily_mean"]) == pytest.approx(w.mean())
    assert float(res["p10"]) == pytest.approx(np.quantile(w, 0.1))
    assert float(res["p90"]) == pytest.approx(np.quantile(w, 0.9))
    assert ((w >= 0) & (w <= 1)).all()
    # The histogram rule approximates the exact distance within about one bin width.
    np.testing.assert_allclose(res["w1_hist"], w, atol=2 / 50)


def test_properties_symmetry_identity_and_empty_days():
    x, y = _pair(n_days=3)
    a, b = wasserstein(x, y), wasserstein(y, x)
    xr.testing.assert_allclose(a, b)
    same = wasserstein(x, x)
    np.testing.assert_allclose(same["w1"], 0.0)
    assert float(same["pooled"]) == 0.0
    const = x.where(x.isnull(), 0.5)
    np.testing.assert_allclose(wasserstein(const, const)["w1"], 0.0)
    y2 = y.copy(deep=True)
    y2["DUEXTTAU"][2] = np.nan
    res = wasserstein(x, y2)
    assert np.isnan(res["w1"][2]) and int(res["n_pixels"][2]) == 0
    assert float(res["daily_mean"]) == pytest.approx(float(res["w1"][:2].mean()))


def test_pooled_uses_each_records_own_days():
    x, _ = _pair(n_days=5, seed=1)
    _, y = _pair(n_days=8, seed=2, start="2005-06-03")  # overlaps x on 3 days only
    res = wasserstein(x, y, bins=40)
    assert res.sizes["time"] == 3
    bx = np.log10(np.maximum(x["DUEXTTAU"].values, EPS))
    by = np.log10(np.maximum(y["DUEXTTAU"].values, EPS))
    bx, by = bx[np.isfinite(bx)], by[np.isfinite(by)]
    lo, hi = min(bx.min(), by.min()), max(bx.max(), by.max())
    u, v = (bx - lo) / (hi - lo), (by - lo) / (hi - lo)
    grid = np.arange(1, 41) / 40
    ref = np.abs((u[:, None] <= grid).mean(0) - (v[:, None] <= grid).mean(0)).mean()
    assert float(res["pooled"]) == pytest.approx(ref, abs=1e-12)
    assert float(res["pooled"]) == pytest.approx(wasserstein_distance(u, v), abs=2 / 40)


def test_dask_is_lazy_and_equals_numpy():
    x, y = _pair()
    ref = wasserstein(x, y, bins=30)
    with raise_if_dask_computes():
        lazy = x.chunk({"time": 4}).dustdiag.wasserstein(y.chunk({"time": 3}), bins=30)
    assert lazy["pooled"].chunks is not None
    xr.testing.assert_allclose(lazy.compute(), ref)


def test_errors():
    x, y = _pair(n_days=2)
    with pytest.raises(GridMismatchError, match="regrid"):
        wasserstein(x, y.isel(lat=slice(1, None)))
    with pytest.raises(ConfigError):
        wasserstein(x, y, bins=0)
    with pytest.raises(ConfigError):
        wasserstein(x, y, eps=0)
