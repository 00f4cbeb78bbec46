"""Tests of xdownscale.diagnostics.variogram (daily semivariograms and model fits)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes
from pyproj import Geod

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale.diagnostics import semivariogram
from xdownscale.diagnostics.variogram import _binned_semivariance, _sample_pairs
from xdownscale.errors import ConfigError, DimensionError

GEOD = Geod(ellps="WGS84")


def _field(n_days=4, ny=13, nx=17, seed=0, nan=True):
    rng = np.random.default_rng(seed)
    lat = 25.0 + 0.25 * np.arange(ny)
    lon = 45.0 + 0.25 * np.arange(nx)
    x = np.exp(rng.normal(-2.0, 0.8, (n_days, ny, nx)))
    if nan:
        x[:, :3, :4] = np.nan  # outside the region
        x[-1, 5, 5] = np.nan
    return xr.Dataset(
        {"DUEXTTAU": (("time", "lat", "lon"), x)},
        coords={"time": pd.date_range("2006-06-01", periods=n_days), "lat": lat, "lon": lon},
    )


def test_binned_semivariance_matches_scikit_gstat_on_all_pairs():
    skgstat = pytest.importorskip("skgstat")
    rng = np.random.default_rng(1)
    lat, lon = np.arange(30, 31.2, 0.2), np.arange(50, 51.4, 0.2)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    coords = np.c_[lo.ravel(), la.ravel()]
    z = rng.normal(size=la.size)
    edges = np.linspace(0, 120, 7)

    def geodesic_km(u, v):
        return GEOD.inv(u[0], u[1], v[0], v[1])[2] / 1000

    ref = skgstat.Variogram(coords, z, dist_func=geodesic_km, bin_func=edges[1:], maxlag=120,
                            fit_method=None)
    i, j = np.triu_indices(z.size, 1)
    d = GEOD.inv(coords[i, 0], coords[i, 1], coords[j, 0], coords[j, 1])[2] / 1000
    keep = d <= 120
    gamma, counts = _binned_semivariance(z[i[keep]], z[j[keep]], d[keep], edges)
    np.testing.assert_allclose(gamma, ref.experimental, rtol=1e-12)
    np.testing.assert_array_equal(counts, [len(c) for c in ref.lag_classes()])


def test_sampled_pairs_are_valid_distinct_and_within_max_distance():
    ny, nx = 40, 50
    lat, lon = 10.0 + 0.1 * np.arange(ny), 40.0 + 0.1 * np.arange(nx)
    valid = np.ones((ny, nx), bool)
    valid[::3, ::2] = False
    i1, i2, dist = _sample_pairs(valid, lat, lon, 5000, 150.0, np.random.default_rng(0))
    assert i1.size == 5000
    assert valid.ravel()[i1].all() and valid.ravel()[i2].all()
    assert (i1 != i2).all()
    r1, c1 = np.divmod(i1, nx)
    r2, c2 = np.divmod(i2, nx)
    ref = GEOD.inv(lon[c1], lat[r1], lon[c2], lat[r2])[2] / 1000
    np.testing.assert_allclose(dist, ref)
    assert dist.max() <= 150.0 and dist.min() > 0
    # The window reaches the whole disc: pairs are found close to the maximum distance.
    assert dist.max() > 140.0


def test_known_spherical_covariance_is_recovered():
    # Gaussian random fields with a spherical covariance of range 150 km and sill 1, drawn by
    # Cholesky on chordal distances (for which the spherical model is positive definite).
    n = 50
    lat, lon = 20 + 0.1 * np.arange(n), 45 + 0.1 * np.arange(n)
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    xyz = 6371.0 * np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)],
                            -1).reshape(-1, 3)
    sq = (xyz**2).sum(-1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * xyz @ xyz.T, 0.0))
    a = 150.0
    cov = np.where(d < a, 1 - 1.5 * d / a + 0.5 * (d / a) ** 3, 0.0)
    chol = np.linalg.cholesky(cov + 1e-8 * np.eye(cov.shape[0]))
    z = (chol @ np.random.default_rng(0).normal(size=(n * n, 8))).T.reshape(8, n, n)
    da = xr.DataArray(z, dims=("time", "lat", "lon"), name="z",
                      coords={"time": pd.date_range("2000-01-01", periods=8), "lat": lat,
                              "lon": lon})
    res = semivariogram(da, n_pairs=20000, max_dist_km=400, n_bins=20, log10=False)
    assert float(res["range"]) == pytest.approx(a, rel=0.25)
    assert float(res["sill"]) == pytest.approx(1.0, rel=0.25)
    assert float(res["nugget"]) < 0.25
    np.testing.assert_allclose(float(res["sill"]),
                               float(res["nugget"]) + float(res["partial_sill"]))


@pytest.mark.parametrize("model", ["exponential", "gaussian"])
def test_other_models_fit_their_own_curves(model):
    skmodels = pytest.importorskip("skgstat.models")
    h = np.linspace(5, 595, 30)
    gamma = getattr(skmodels, model)(h, 250.0, 0.8, 0.1)
    from xdownscale.diagnostics.variogram import _fit

    params = _fit(gamma, h, model=model, max_range=600.0)
    np.testing.assert_allclose(params, [250.0, 0.8, 0.1], rtol=1e-3, atol=1e-4)


def test_structure_and_pair_weighted_mean():
    res = semivariogram(_field(), n_pairs=3000, max_dist_km=300, n_bins=8).compute()
    assert res["gamma"].dims == ("time", "bin")
    assert res.sizes == {"time": 4, "bin": 8}
    np.testing.assert_allclose(res["bin"], np.arange(8) * 37.5 + 18.75)
    assert res["bin"].attrs["units"] == "km"
    assert (res["counts"].sum("bin") == 3000).all()
    g, c = res["gamma"].values, res["counts"].values
    ref = np.nansum(g * c, axis=0) / c.sum(axis=0)
    np.testing.assert_allclose(res["gamma_mean"], ref)
    np.testing.assert_array_equal(res["counts_total"], c.sum(axis=0))
    assert res["fitted"].dims == ("bin",) and np.isfinite(res["fitted"]).all()
    assert 0 < float(res["range"]) <= 300


def test_dask_is_lazy_and_equals_numpy():
    ds = _field()
    ref = semivariogram(ds, n_pairs=2000, max_dist_km=300, n_bins=6, seed=3)
    with raise_if_dask_computes():
        lazy = semivariogram(ds.chunk({"time": 1}), n_pairs=2000, max_dist_km=300, n_bins=6,
                             seed=3)
    assert lazy["gamma"].chunks is not None and lazy["range"].chunks is not None
    xr.testing.assert_allclose(lazy.compute(), ref)
    # Chunked differently: each day seeds its own generator, so nothing changes.
    xr.testing.assert_allclose(
        semivariogram(ds.chunk({"time": 3}), n_pairs=2000, max_dist_km=300, n_bins=6,
                      seed=3).compute(), ref)


def test_descending_latitude_and_accessor_give_the_same_result():
    ds = _field(n_days=2)
    ref = semivariogram(ds, n_pairs=1000, max_dist_km=250, n_bins=5)
    flipped = semivariogram(ds.isel(lat=slice(None, None, -1)), n_pairs=1000,
                            max_dist_km=250, n_bins=5)
    xr.testing.assert_allclose(flipped, ref)
    via = ds.dustdiag.semivariogram(n_pairs=1000, max_dist_km=250, n_bins=5)
    xr.testing.assert_identical(via, ref)


def test_nan_pixels_never_enter_and_seed_changes_pairs():
    ds = _field(n_days=1)
    # A NaN pixel in any pair would make its bin's gamma NaN.
    a = semivariogram(ds, n_pairs=1500, max_dist_km=250, n_bins=5, seed=0)
    b = semivariogram(ds, n_pairs=1500, max_dist_km=250, n_bins=5, seed=1)
    assert np.isfinite(a["gamma"]).all()
    assert not np.allclose(a["gamma"], b["gamma"])
    empty = ds.where(False)
    res = semivariogram(empty, n_pairs=100, max_dist_km=250, n_bins=5)
    assert (res["counts"] == 0).all() and np.isnan(res["gamma"]).all()
    assert np.isnan(res["range"])


def test_bad_arguments():
    ds = _field(n_days=1)
    with pytest.raises(ConfigError, match="model"):
        semivariogram(ds, model="cubicle")
    with pytest.raises(ConfigError):
        semivariogram(ds, n_pairs=0)
    with pytest.raises(ConfigError):
        semivariogram(ds, seed=-1)
    with pytest.raises(DimensionError, match="Rechunk"):
        semivariogram(ds.chunk({"lat": 5}))


def test_a_fit_through_as_many_bins_as_parameters_raises_no_covariance_warning():
    # scipy warns that the covariance cannot be estimated; the fit does not use it
    skmodels = pytest.importorskip("skgstat.models")
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    from xdownscale.diagnostics.variogram import _fit

    h = np.array([50.0, 150.0, 300.0])
    gamma = skmodels.spherical(h, 250.0, 0.8, 0.1)
    with pytest.warns(OptimizeWarning):  # the case is the one scipy warns about
        curve_fit(lambda x, r, c0, b: skmodels.spherical(x, r, c0, b), h, gamma,
                  p0=[300.0, 0.8, 0.1], bounds=([1e-9, 0, 0], [600.0, 1.0, 1.0]),
                  method="trf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params = _fit(gamma, h, model="spherical", max_range=600.0)
    assert np.isfinite(params).all()
