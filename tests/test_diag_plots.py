"""Tests of xdownscale.diagnostics.plots and compare (figures and the one-call report)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import xdownscale  # noqa: E402, F401  (registers the accessors)
from xdownscale.diagnostics import compare, lag_metrics, semivariogram, skill  # noqa: E402
from xdownscale.diagnostics.plots import (  # noqa: E402
    plot_lag_metrics,
    plot_map,
    plot_semivariogram,
)
from xdownscale.errors import ConfigError  # noqa: E402

VARIO = {"n_pairs": 800, "max_dist_km": 300, "n_bins": 6}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _fields(n_days=40, ny=12, nx=14, seed=0, step=0.25):
    rng = np.random.default_rng(seed)
    times = pd.date_range("2006-06-01", periods=n_days)
    level = np.cumsum(rng.normal(0, 0.2, n_days))[:, None, None]
    truth = 0.2 * np.exp(level + rng.normal(0, 0.4, (n_days, ny, nx)))
    pred = truth * np.exp(rng.normal(0, 0.2, truth.shape))
    coords = {"time": times, "lat": 25.0 + step * np.arange(ny),
              "lon": 45.0 + step * np.arange(nx)}
    return tuple(xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), a)}, coords=coords)
                 for a in (truth, pred))


def test_plot_semivariogram_overlays_curves_fits_and_counts():
    truth, pred = _fields(n_days=3)
    ax = truth.dustdiag.plot_semivariogram(pred, labels=["G5NR", "pred"], **VARIO)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[0] == "G5NR" and labels[2] == "pred"
    assert any("fit" in lab for lab in labels)
    assert len(ax.twin.patches) == 2 * VARIO["n_bins"]  # pair-count bars per dataset
    # A precomputed result is drawn as is.
    res = semivariogram(truth, **VARIO)
    ax2 = xdownscale.diagnostics.plots.plot_semivariogram(res, counts=False)
    np.testing.assert_allclose(ax2.get_lines()[0].get_ydata(), res["gamma_mean"])


def test_plot_acf_and_lag_metrics_panels():
    truth, pred = _fields()
    axs = truth.dustdiag.plot_acf(pred, labels=["a", "b"])
    assert len(axs) == 2 and [a.get_title().split()[0] for a in axs] == ["ACF", "PACF"]
    assert "40 days" in axs[0].get_title()  # how much data the correlogram rests on
    assert [t.get_text() for t in axs[0].get_legend().get_texts()] == ["a", "b"]
    axs = truth.dustdiag.plot_lag_metrics(pred, max_lag=4)
    assert len(axs) == 2
    ref = lag_metrics(truth, max_lag=4)
    line = axs[1].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), ref["rmse"])


def test_plot_map_difference_panel_only_on_a_shared_grid():
    truth, pred = _fields(n_days=2)
    axs = truth.dustdiag.plot_map(pred, labels=["truth", "pred"])
    assert len(axs) == 3 and axs[-1].get_title() == "pred − truth\n2006-06-01"
    coarse = truth.coarsen(lat=2, lon=2).mean()
    axs = plot_map(coarse, pred)
    assert len(axs) == 2
    _, given = plt.subplots(1, 2)
    assert len(plot_map(truth, pred, axes=given)) == 2  # no room asked for the difference
    with pytest.raises(ConfigError, match="labels"):
        plot_map(truth, pred, labels=["only one"])


def test_compare_assembles_tables_and_figures():
    truth, pred = _fields(n_days=30)
    coarse = truth.rolling(lat=3, lon=3, center=True, min_periods=1).mean()
    ds, figs = compare(truth, pred, coarse, season="JJA", nlags=5, max_lag=3, **VARIO)
    assert set(figs) == {"lag_metrics", "semivariogram", "acf", "map"}
    # labels come from the data: these say nothing about what they are
    assert list(ds["dataset"].values) == ["fine", "prediction", "coarse"]
    assert ds["summary_mean"].dims == ("dataset", "season")
    for name in ("w1_daily_mean", "w1_pooled", "skill_rmse_mean", "skill_kge_std",
                 "lag_rmse", "vario_range", "acf", "pacf_upper", "acf_n_obs"):
        assert name in ds, name
    ref = skill(pred, truth)
    np.testing.assert_allclose(ds["skill_rmse_mean"], ref["rmse_mean"])
    np.testing.assert_allclose(ds["lag_r2"].sel(dataset="fine"),
                               lag_metrics(truth, max_lag=3)["r2"])
    # Out-of-data use: no truth, coarse on its own grid, and saying what it is.
    merra = truth.coarsen(lat=2, lon=2).mean()
    merra.attrs["xdownscale_product"] = "MERRA-2"
    ood, figs = compare(None, pred, merra, figures=False, nlags=5, max_lag=3, **VARIO)
    assert figs == {} and "skill_rmse_mean" not in ood and "w1_pooled" not in ood
    assert list(ood["dataset"].values) == ["prediction", "coarse (MERRA-2)"]
    with pytest.raises(ConfigError):
        compare(truth, pred, season="summer")


def test_figures_are_readable_without_a_caption():
    truth, pred = _fields(n_days=12)
    truth["DUEXTTAU"].attrs.update(long_name="dust extinction AOD", units="1")
    coarse = truth.coarsen(lat=2, lon=2).mean(keep_attrs=True)
    axs = plot_map(truth, coarse, labels=["fine", "coarse"])
    bar_labels = [a.get_ylabel() for a in axs[0].figure.axes if a not in axs]
    assert bar_labels[0] == "log10 dust extinction AOD"  # long_name, the log made explicit
    assert axs[0].get_xlim() == axs[1].get_xlim() and axs[0].get_ylim() == axs[1].get_ylim()
    assert "2006-06-01" in axs[0].get_title()
    # R2 error bars stop at 1; lag and epoch axes get integer ticks
    axs = plot_lag_metrics(truth, pred, max_lag=3)
    tops = [seg[:, 1].max() for coll in axs[0].collections for seg in coll.get_segments()]
    assert max(tops) <= 1.0 + 1e-12
    ticks = axs[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks))


def test_semivariogram_flags_a_range_at_its_bound():
    truth, _ = _fields(n_days=3)
    res = semivariogram(truth, **VARIO)
    res["range"] = res["range"] * 0 + VARIO["max_dist_km"]
    res["range_at_bound"] = res["range"] >= VARIO["max_dist_km"]
    ax = plot_semivariogram(res, labels=["x"])
    assert any("bound" in line.get_label() for line in ax.get_lines())
