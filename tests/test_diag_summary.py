"""Tests of xdownscale.diagnostics.summary (paper Table 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale.diagnostics import summary
from xdownscale.errors import ConfigError, TimeAxisError


def _record(seed=0):
    rng = np.random.default_rng(seed)
    times = pd.date_range("2005-05-15", "2005-09-10")  # MAM, JJA and SON days
    x = np.exp(rng.normal(-1.5, 0.8, (times.size, 5, 6)))
    x[:, 0, :2] = np.nan
    x[20] = np.nan  # a day without data
    return xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), x, {"units": "1"})},
                      coords={"time": times, "lat": 20.0 + np.arange(5),
                              "lon": 40.0 + np.arange(6)})


def _expected(values):
    v = values[np.isfinite(values)]
    return {"mean": v.mean(), "std": v.std(), "q05": np.quantile(v, 0.05),
            "q50": np.quantile(v, 0.5), "q95": np.quantile(v, 0.95)}


def test_per_season_statistics_pool_pixels_and_days():
    ds = _record()
    res = summary(ds)
    assert list(res["season"].values) == ["MAM", "JJA", "SON"]
    months = ds["time"].dt.month.values
    for season, sel in (("MAM", months <= 5), ("JJA", (months >= 6) & (months <= 8)),
                        ("SON", months >= 9)):
        vals = ds["DUEXTTAU"].values[sel]
        row = res.sel(season=season)
        for key, value in _expected(vals).items():
            assert float(row[key]) == pytest.approx(value, rel=1e-12), (season, key)
        n_valid = int(np.isfinite(vals).any(axis=(1, 2)).sum())
        assert int(row["n_days"]) == n_valid
    assert int(res["n_days"].sel(season="MAM")) == 17  # May 15-31; the NaN day (June 4) is in JJA
    assert int(res["n_days"].sel(season="JJA")) == 91
    df = res.to_dataframe()
    assert list(df.index) == ["MAM", "JJA", "SON"]
    assert list(df.columns) == ["n_days", "mean", "std", "q05", "q50", "q95"]
    assert res["mean"].attrs["units"] == "1"


def test_whole_record_quantile_names_and_target_days():
    ds = _record()
    res = summary(ds, by=None, quantiles=(0.1, 0.9))
    assert list(res["season"].values) == ["all"]
    exp = ds["DUEXTTAU"].values
    assert float(res["q10"][0]) == pytest.approx(np.nanquantile(exp, 0.1))
    assert float(res["q90"][0]) == pytest.approx(np.nanquantile(exp, 0.9))
    target = xr.DataArray(np.arange(ds.sizes["time"]) >= 30, dims="time")
    only = summary(ds.assign_coords(target=target), by=None)
    ref = summary(ds.isel(time=slice(30, None)), by=None)
    xr.testing.assert_allclose(only, ref)


def test_dask_is_lazy_and_equals_numpy():
    ds = _record()
    with raise_if_dask_computes():
        lazy = ds.chunk({"time": 25}).dustdiag.summary()
    xr.testing.assert_allclose(lazy.compute(), summary(ds))


def test_errors():
    ds = _record()
    with pytest.raises(ConfigError):
        summary(ds, by="month")
    with pytest.raises(ConfigError):
        summary(ds, quantiles=(1.5,))
    with pytest.raises(TimeAxisError):
        summary(ds.isel(time=slice(0, 0)))
