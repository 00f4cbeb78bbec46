"""Tests of xdownscale.diagnostics.skill and crps (paper Tables 3 and A1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes
from scipy.stats import pearsonr

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale.diagnostics import crps, skill
from xdownscale.errors import ConfigError, DimensionError, GridMismatchError, TimeAxisError

DIMS = ("time", "lat", "lon")


def _coords(n_days, ny, nx, start="2006-07-01"):
    return {"time": pd.date_range(start, periods=n_days), "lat": 30.0 + np.arange(ny),
            "lon": 50.0 + np.arange(nx)}


def _pair(n_days=5, ny=6, nx=7, seed=0, members=0):
    rng = np.random.default_rng(seed)
    truth = np.exp(rng.normal(-1.5, 0.7, (n_days, ny, nx)))
    truth[:, 0, 0] = np.nan
    coords = _coords(n_days, ny, nx)
    t = xr.Dataset({"DUEXTTAU": (DIMS, truth)}, coords=coords)
    if members:
        ens = truth[:, None] * np.exp(rng.normal(0.1, 0.3, (n_days, members, ny, nx)))
        ens[2, 1, 3, 3] = np.nan
        p = xr.Dataset({"DUEXTTAU": (("time", "member", "lat", "lon"), ens)}, coords=coords)
    else:
        pred = truth * np.exp(rng.normal(0.1, 0.3, truth.shape))
        pred[:, 2, 4] = np.nan  # missing in the prediction only
        p = xr.Dataset({"DUEXTTAU": (DIMS, pred)}, coords=coords)
    return p, t


def test_scores_match_numpy_and_scipy_per_day():
    p, t = _pair()
    res = skill(p, t)
    assert res["mae"].dims == ("space", "time")
    assert list(res["space"].values) == ["log10", "data"]
    for space, f in (("data", lambda a: a), ("log10", lambda a: np.log10(np.maximum(a, 1e-6)))):
        for d in range(p.sizes["time"]):
            a, b = f(p["DUEXTTAU"].values[d].ravel()), f(t["DUEXTTAU"].values[d].ravel())
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            row = res.sel(space=space).isel(time=d)
            assert int(row["n_pixels"]) == ok.sum() == 6 * 7 - 2
            assert float(row["mae"]) == pytest.approx(np.mean(np.abs(a - b)))
            assert float(row["rmse"]) == pytest.approx(np.sqrt(np.mean((a - b) ** 2)))
            r = pearsonr(a, b).statistic
            assert float(row["r2_corr"]) == pytest.approx(r**2)
            r2 = 1 - np.sum((a - b) ** 2) / np.sum((b - b.mean()) ** 2)
            assert float(row["r2"]) == pytest.approx(r2)
            assert float(row["nse"]) == pytest.approx(r2)
            assert float(row["bias"]) == pytest.approx(a.mean() - b.mean())
    for name in ("mae", "kge", "rmse"):
        np.testing.assert_allclose(res[f"{name}_mean"], res[name].mean("time"))
        np.testing.assert_allclose(res[f"{name}_std"], res[name].std("time", ddof=1))


@pytest.mark.parametrize("weighted", [False, True])
def test_mae_rmse_correlation_match_xskillscore(weighted):
    # our kernel computes every score from one pass of shared sums; xskillscore is the
    # independent implementation of the three it also has (pairwise NaN skipping, weights)
    xs = pytest.importorskip("xskillscore")
    p, t = _pair(n_days=4, ny=6, nx=7, seed=3)
    w = np.cos(np.deg2rad(t["lat"])).broadcast_like(t["DUEXTTAU"].isel(time=0)) if weighted \
        else None
    res = skill(p, t, weights=w, spaces=["data"]).sel(space="data")
    a, b = p["DUEXTTAU"], t["DUEXTTAU"]
    ok = a.notnull() & b.notnull()  # xskillscore skips pairwise only for the pair it is given
    a, b = a.where(ok), b.where(ok)
    kw = dict(dim=["lat", "lon"], weights=w, skipna=True)
    np.testing.assert_allclose(res["mae"], xs.mae(a, b, **kw), rtol=1e-10)
    np.testing.assert_allclose(res["rmse"], xs.rmse(a, b, **kw), rtol=1e-10)
    np.testing.assert_allclose(res["r2_corr"], xs.pearson_r(a, b, **kw) ** 2, rtol=1e-10)


def test_kge_hand_worked():
    # pred = 2 * truth: r = 1, mean ratio 2, std ratio 2, CV ratio 1.
    coords = _coords(1, 2, 2)
    t = xr.DataArray(np.array([[[1.0, 2.0], [3.0, 4.0]]]), dims=DIMS, coords=coords)
    out = skill(2 * t, t, spaces=["data"]).sel(space="data").isel(time=0)
    assert float(out["kge"]) == pytest.approx(1 - np.sqrt(2))
    assert float(out["kge2012"]) == pytest.approx(0.0, abs=1e-12)
    assert float(out["r2_corr"]) == pytest.approx(1.0)
    # 1 - SSE/SST = 1 - 30 / 5
    assert float(out["r2"]) == pytest.approx(-5.0)


def _crps_brute(ens, obs, fair):
    m = ens.size
    pair = sum(abs(a - b) for a in ens for b in ens)
    return np.mean(np.abs(ens - obs)) - pair / (2 * m * (m - 1) if fair else 2 * m * m)


def test_crps_and_spread_skill_against_brute_force():
    p, t = _pair(n_days=3, ny=4, nx=5, members=6)
    res = skill(p, t, spaces=["data"]).sel(space="data")
    std_res = skill(p, t, spaces=["data"], crps="standard").sel(space="data")
    assert res["crps"].attrs["kind"] == "fair" and std_res["crps"].attrs["kind"] == "standard"
    ens, obs = p["DUEXTTAU"].values, t["DUEXTTAU"].values
    for d in range(3):
        ok = np.isfinite(obs[d]) & np.isfinite(ens[d]).all(0)
        fair = [_crps_brute(ens[d][:, i, j], obs[d][i, j], True) for i, j in zip(*np.nonzero(ok),
                                                                                 strict=True)]
        std = [_crps_brute(ens[d][:, i, j], obs[d][i, j], False)
               for i, j in zip(*np.nonzero(ok), strict=True)]
        assert float(res["crps"][d]) == pytest.approx(np.mean(fair))
        assert float(std_res["crps"][d]) == pytest.approx(np.mean(std))
        mean = ens[d].mean(0)
        rmse = np.sqrt(np.mean((mean[ok] - obs[d][ok]) ** 2))
        spread = np.sqrt(np.mean(ens[d].var(0, ddof=1)[ok]))
        assert float(res["spread"][d]) == pytest.approx(spread)
        assert float(res["ssr"][d]) == pytest.approx(np.sqrt(7 / 6) * spread / rmse)
        assert float(res["rmse"][d]) == pytest.approx(rmse)


def test_standard_crps_is_the_integral_definition():
    # CRPS = integral of (F_ens(x) - 1{x >= y})^2 dx, evaluated on a fine grid.
    ens = np.array([0.3, 0.1, 0.7, 0.45])
    obs = 0.5
    grid = np.linspace(-1, 2, 300_001)
    cdf = (ens[:, None] <= grid).mean(0)
    integral = np.trapezoid((cdf - (grid >= obs)) ** 2, grid)
    coords = _coords(1, 1, 1)
    p = xr.DataArray(ens.reshape(1, 4, 1, 1), dims=("time", "member", "lat", "lon"),
                     coords=coords)
    t = xr.DataArray(np.full((1, 1, 1), obs), dims=DIMS, coords=coords)
    out = crps(p, t, spaces=["data"], crps="standard")
    assert float(out["crps"].squeeze()) == pytest.approx(integral, abs=1e-4)


def test_std_variable_gives_data_space_spread():
    p, t = _pair(n_days=2)
    std = xr.full_like(p["DUEXTTAU"], 0.05)
    res = skill(p.assign(DUEXTTAU_std=std), t)
    np.testing.assert_allclose(res["spread"].sel(space="data"), 0.05)
    np.testing.assert_allclose(res["ssr"].sel(space="data"),
                               0.05 / res["rmse"].sel(space="data"))
    assert np.isnan(res["spread"].sel(space="log10")).all()


def test_dask_is_lazy_and_equals_numpy():
    p, t = _pair(members=3)
    ref = skill(p, t)
    with raise_if_dask_computes():
        lazy = p.chunk({"time": 2}).dustdiag.skill(t.chunk({"time": 3}))
    xr.testing.assert_allclose(lazy.compute(), ref)


def test_alignment_and_errors():
    p, t = _pair(n_days=5)
    res = skill(p.isel(time=slice(1, None)), t.isel(time=slice(None, 3)))
    assert res.sizes["time"] == 2
    with pytest.raises(TimeAxisError, match="share no day"):
        skill(p.isel(time=[0]), t.isel(time=[1]))
    with pytest.raises(GridMismatchError):
        skill(p, t.isel(lon=slice(1, None)))
    with pytest.raises(ConfigError):
        skill(p, t, crps="approx")
    with pytest.raises(ConfigError):
        skill(p, t, spaces=["ln"])
    with pytest.raises(DimensionError, match="member"):
        crps(p, t)


def test_keep_members_dataset_gives_crps_and_keeps_the_mean_scores():
    p, t = _pair(n_days=3, ny=4, nx=5, members=4)
    ens = p["DUEXTTAU"].transpose("member", "time", "lat", "lon")
    as_written = xr.Dataset({"DUEXTTAU": ens.mean("member"), "DUEXTTAU_members": ens,
                             "DUEXTTAU_std": ens.std("member", ddof=1)})
    res = as_written.dustdiag.skill(t)
    assert {"crps", "crps_mean", "ssr", "spread"} <= set(res.data_vars)
    assert np.isfinite(res["ssr"].sel(space="log10")).all()
    # CRPS from the members equals scoring the member dim directly
    direct = skill(p, t)
    xr.testing.assert_allclose(res["crps"], direct["crps"])
    # the deterministic scores judge the written mean, as without the members
    plain = skill(as_written[["DUEXTTAU"]], t)
    xr.testing.assert_allclose(res["rmse"], plain["rmse"])


def test_dim_time_gives_a_skill_map():
    p, t = _pair(n_days=6, ny=3, nx=5)
    res = skill(p, t, dim="time", spaces=["data"]).sel(space="data")
    assert res["rmse"].dims == ("lat", "lon") and "rmse_mean" not in res
    a, b = p["DUEXTTAU"].values[:, 1, 2], t["DUEXTTAU"].values[:, 1, 2]
    assert float(res["rmse"][1, 2]) == pytest.approx(np.sqrt(np.mean((a - b) ** 2)))
    assert np.isnan(res["rmse"][0, 0])  # truth missing on every day there


def test_weights_are_a_weighted_mean_and_skipna():
    p, t = _pair(n_days=2, ny=5, nx=5)
    w = np.cos(np.deg2rad(t["lat"]))
    res = skill(p, t, weights=w, spaces=["data"]).sel(space="data").isel(time=0)
    a, b = p["DUEXTTAU"].values[0], t["DUEXTTAU"].values[0]
    ww = np.broadcast_to(w.values[:, None], a.shape)
    ok = np.isfinite(a) & np.isfinite(b)
    assert float(res["mae"]) == pytest.approx(np.average(np.abs(a - b)[ok], weights=ww[ok]))
    assert float(res["bias"]) == pytest.approx(
        np.average(a[ok], weights=ww[ok]) - np.average(b[ok], weights=ww[ok]))
    strict = skill(p, t, skipna=False)
    assert strict["rmse"].isnull().all()  # every day has a missing pixel
    with pytest.raises(ConfigError, match="non-negative"):
        skill(p, t, weights=-w)


def test_scores_carry_cf_attributes():
    p, t = _pair(n_days=2)
    t["DUEXTTAU"].attrs.update(units="1", long_name="dust AOD", source="G5NR")
    res = skill(p, t)
    for v in res.data_vars:
        assert "long_name" in res[v].attrs, v
        assert res[v].attrs.get("units") == "1", v
        assert "source" not in res[v].attrs
