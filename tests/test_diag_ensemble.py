"""Tests of xdownscale.diagnostics.ensemble (rank histogram, spread/skill) and their plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes
from scipy.stats import chi2

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale.diagnostics import rank_histogram, skill, spread_skill
from xdownscale.errors import ConfigError, DimensionError, GridMismatchError

ENS_DIMS = ("member", "time", "lat", "lon")


def _coords(n_days, ny, nx):
    return {"time": pd.date_range("2006-07-01", periods=n_days),
            "lat": 20.0 + 0.5 * np.arange(ny), "lon": 40.0 + 0.5 * np.arange(nx)}


def _calibrated(m=5, n_days=6, ny=30, nx=31, seed=0):
    """Truth and members exchangeable: one centre per pixel, iid noise of a pixel-varying sd."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(-1.0, 0.5, (n_days, ny, nx))
    sd = 0.05 + 0.3 * rng.random((ny, nx))
    draw = centre + sd * rng.normal(size=(m + 1, n_days, ny, nx))
    coords = _coords(n_days, ny, nx)
    truth = xr.DataArray(10.0 ** draw[0], coords, ("time", "lat", "lon"), name="DUEXTTAU")
    ens = xr.DataArray(10.0 ** draw[1:], coords, ENS_DIMS, name="DUEXTTAU")
    return ens, truth


def test_rank_counts_match_xskillscore_per_day():
    xs = pytest.importorskip("xskillscore")
    ens, truth = _calibrated(m=4, n_days=3, ny=9, nx=11, seed=1)
    ref = xs.rank_histogram(truth, ens, dim=["lat", "lon"], member_dim="member")
    res = rank_histogram(ens, truth)
    np.testing.assert_array_equal(res["rank"].values, ref["rank"].values)
    np.testing.assert_array_equal(res["counts"].transpose("time", "rank").values,
                                  ref.transpose("time", "rank").values)


def test_members_from_the_truths_distribution_give_a_flat_histogram():
    ens, truth = _calibrated(m=7)
    res = rank_histogram(ens, truth)
    counts = res["counts_total"].values
    assert counts.sum() == truth.size
    # pixels are independent here, so the chi-square test applies: flat at the 0.1 % level
    stat = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
    assert chi2.sf(stat, df=7) > 1e-3
    assert float(res["delta"]) == pytest.approx(stat / 7)
    assert float(res["extreme_ratio"]) == pytest.approx(1.0, abs=0.1)
    assert float(res["frequency"].sum()) == pytest.approx(1.0)


def test_zero_spread_ensemble_is_u_shaped_and_ties_are_spread_evenly():
    ens, truth = _calibrated(m=5)
    shifted = truth * 10 ** (0.2 * np.sign(np.random.default_rng(2).normal(size=truth.shape)))
    zero = shifted.expand_dims(member=5).transpose(*ENS_DIMS)
    res = rank_histogram(zero, truth)
    freq = res["frequency"].values
    assert freq[1:-1].sum() == 0 and freq[0] == pytest.approx(0.5, abs=0.02)
    assert float(res["extreme_ratio"]) == pytest.approx(3.0, abs=1e-9)  # 1 / (2 / 6)
    # members all equal to the truth: every rank is a tie, broken uniformly at random
    tied = rank_histogram(truth.expand_dims(member=5), truth)["frequency"].values
    np.testing.assert_allclose(tied, 1 / 6, atol=0.02)


def test_too_much_spread_fills_the_middle_ranks():
    ens, truth = _calibrated(m=5)
    wide = ens.mean("member") * (ens / ens.mean("member")) ** 3
    assert float(rank_histogram(wide, truth)["extreme_ratio"]) < 0.6


def test_spread_skill_of_a_calibrated_ensemble_is_one_with_the_correction():
    ens, truth = _calibrated(m=4, n_days=8)
    res = spread_skill(ens, truth)
    assert float(res["ssr_pooled"]) == pytest.approx(1.0, abs=0.03)
    # without sqrt((m + 1) / m) the same ensemble would read sqrt(4 / 5) = 0.89
    uncorrected = float(res["spread_pooled"] / res["rmse_pooled"])
    assert uncorrected == pytest.approx(np.sqrt(4 / 5), abs=0.03)
    under = spread_skill(ens.mean("member") * (ens / ens.mean("member")) ** 0.3, truth)
    assert float(under["ssr_pooled"]) < 0.5


def test_spread_skill_matches_numpy_and_skill_per_day():
    ens, truth = _calibrated(m=3, n_days=4, ny=5, nx=6, seed=3)
    e = np.log10(ens.values).copy()
    t = np.log10(truth.values).copy()
    e[1, 2, 0, 0] = np.nan  # a member missing at one pixel drops that pixel on that day
    ens = ens.copy(data=10.0**e)
    res = spread_skill(ens, truth)
    ok = np.isfinite(e).all(0)
    var = np.where(ok, np.var(e, axis=0, ddof=1), np.nan)
    se = np.where(ok, (np.mean(e, axis=0) - t) ** 2, np.nan)
    for d in range(4):
        assert float(res["spread"][d]) == pytest.approx(np.sqrt(np.nanmean(var[d])))
        assert float(res["rmse"][d]) == pytest.approx(np.sqrt(np.nanmean(se[d])))
    pooled = np.sqrt(4 / 3 * np.nansum(var) / np.nansum(se))
    assert float(res["ssr_pooled"]) == pytest.approx(pooled)
    ref = skill(ens, truth, spaces=("log10",)).sel(space="log10")
    np.testing.assert_allclose(res["ssr"].values, ref["ssr"].values, rtol=1e-10)
    data = spread_skill(ens, truth, log10=False)
    assert float(data["rmse"][0]) == pytest.approx(
        np.sqrt(np.mean((ens.values[:, 0].mean(0) - truth.values[0]) ** 2)))


def test_dask_input_stays_lazy_and_matches_numpy():
    ens, truth = _calibrated(m=4, n_days=5, ny=7, nx=8)
    with raise_if_dask_computes():
        lazy_rank = ens.chunk({"time": 2}).dustdiag.rank_histogram(truth.chunk({"time": 3}))
        lazy_ssr = ens.chunk({"time": 2}).dustdiag.spread_skill(truth.chunk({"time": 3}))
    xr.testing.assert_identical(lazy_rank.compute(), rank_histogram(ens, truth))
    xr.testing.assert_allclose(lazy_ssr.compute(), spread_skill(ens, truth))


def test_a_dataset_with_a_renamed_member_dim_and_partial_day_overlap():
    ens, truth = _calibrated(m=3, n_days=5, ny=6, nx=6)
    ds = ens.rename(member="realization").to_dataset()
    res = rank_histogram(ds, truth.isel(time=slice(2, None)).to_dataset(),
                         member_dim="realization")
    assert res.sizes["time"] == 3 and res.sizes["rank"] == 4


def test_errors_read_well():
    ens, truth = _calibrated(m=3, n_days=2, ny=5, nx=6)
    with pytest.raises(DimensionError, match="needs an ensemble"):
        rank_histogram(truth, truth)
    with pytest.raises(DimensionError, match="Rechunk"):
        spread_skill(ens.chunk({"lat": 2}), truth)
    with pytest.raises(GridMismatchError):
        rank_histogram(ens, truth.assign_coords(lat=truth["lat"] + 1))


def test_plot_rank_histogram_from_fields_and_from_a_result():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xdownscale.diagnostics.plots_ensemble import plot_rank_histogram

    ens, truth = _calibrated(m=4, n_days=2, ny=6, nx=6)
    ax = ens.dustdiag.plot_rank_histogram(truth, label="toy")
    assert len(ax.patches) == 5 and ax.get_title().startswith("toy")
    ax2 = plot_rank_histogram(rank_histogram(ens, truth))
    np.testing.assert_allclose([p.get_height() for p in ax2.patches],
                               rank_histogram(ens, truth)["frequency"].values)
    with pytest.raises(ConfigError, match="truth"):
        plot_rank_histogram(ens)
    plt.close("all")
