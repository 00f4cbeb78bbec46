"""Tests of the embedded synthetic pair and the shipped terrain (xdownscale.datasets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

import xdownscale
from xdownscale.data.regions import clip
from xdownscale.data.regrid import regrid_like
from xdownscale.datasets import load_elevation, synthetic
from xdownscale.datasets._fields import TruthModel
from xdownscale.datasets._grids import DEMO_WINDOWS, make_grids, resolve_window
from xdownscale.errors import ConfigError, RegionError, TimeAxisError

# A short record keeps most tests well under a second.
SHORT = {"coarse_start": "2005-01-01", "coarse_end": "2005-12-31", "fine_start": "2005-06-01",
         "fine_days": 40}


@pytest.fixture(scope="module")
def demo():
    """The default call, exactly as users make it."""
    return synthetic("A1", seed=0)


@pytest.fixture(scope="module")
def short_a1():
    return synthetic("A1", seed=3, **SHORT)


def _is_multiple(values, step):
    k = np.asarray(values) / step
    return np.allclose(k, np.rint(k), atol=1e-9)


def test_default_demo_shapes_dtypes_and_times(demo):
    coarse, fine, elev = demo
    assert dict(fine.sizes) == {"time": 763, "lat": 64, "lon": 64}
    assert coarse.sizes["time"] == 9132  # 2000-01-01 .. 2024-12-31, both ends
    for ds in (coarse, fine):
        da = ds["DUEXTTAU"]
        assert da.dims == ("time", "lat", "lon") and da.dtype == np.float32
        assert da.attrs["long_name"] == "Dust Extinction AOT [550 nm]"
        assert da.attrs["units"] == "1" and "synthetic" in da.attrs["source"]
        assert ds["lat"].attrs["standard_name"] == "latitude"
        assert ds["lat"].attrs["units"] == "degrees_north"
        assert ds["lon"].attrs["standard_name"] == "longitude"
        assert ds["lon"].attrs["units"] == "degrees_east"
        times = ds.indexes["time"]
        assert (times == times.normalize()).all()
        assert (np.diff(times.values) == np.timedelta64(1, "D")).all()
        assert np.isfinite(da.values).all() and (da.values > 0).all()
    assert fine.indexes["time"][0] == pd.Timestamp("2005-05-15")
    assert fine.indexes["time"][-1] == pd.Timestamp("2007-06-16")
    assert coarse.indexes["time"][[0, -1]].equals(pd.DatetimeIndex(["2000-01-01", "2024-12-31"]))
    assert elev.attrs["resolution"] == "30s" and elev.attrs["units"] == "m"


def test_grids_are_the_real_ones(demo):
    coarse, fine, _ = demo
    assert _is_multiple(coarse.lat, 0.5) and _is_multiple(coarse.lon, 0.625)
    assert _is_multiple(fine.lat, 0.0625) and _is_multiple(fine.lon, 0.0625)
    np.testing.assert_allclose(np.diff(fine.lat), 0.0625)
    # The fine grid is exactly what clip keeps of itself in the window.
    xr.testing.assert_identical(clip(fine, DEMO_WINDOWS["A1"]).lat, fine.lat)
    xr.testing.assert_identical(clip(fine, DEMO_WINDOWS["A1"]).lon, fine.lon)
    # Bicubic to every fine pixel has support (regrid_like raises ExtrapolationError otherwise).
    day = regrid_like(coarse.isel(time=slice(0, 2)), fine, method="cubic")
    assert np.isfinite(day["DUEXTTAU"].values).all()
    for dim in ("lat", "lon"):  # two coarse centres beyond the outermost fine centres
        c, f = coarse[dim].values, fine[dim].values
        assert (c < f.min()).sum() >= 2 and (c > f.max()).sum() >= 2


def test_small_window_grids_brute_force():
    coarse, fine, elev = synthetic("A1", window=(33.0, 34.0, 45.0, 46.5), **SHORT)
    np.testing.assert_allclose(fine.lat, 33.0 + 0.0625 * np.arange(17))
    np.testing.assert_allclose(fine.lon, 45.0 + 0.0625 * np.arange(25))
    # Coarse centres within 2 cells of the window (bicubic support).
    np.testing.assert_allclose(coarse.lat, np.arange(32.0, 35.01, 0.5))
    np.testing.assert_allclose(coarse.lon, [43.75, 44.375, 45.0, 45.625, 46.25, 46.875, 47.5])
    assert elev.attrs["resolution"] == "30s"  # inside the shipped 30" tile
    half = 1 / 240  # the samples' cells cover the fine pixels' footprint...
    assert elev.lat.min() - half < 33.0 - 0.03125 < 34.0 + 0.03125 < elev.lat.max() + half
    assert elev.lon.min() - half < 45.0 - 0.03125 < 46.5 + 0.03125 < elev.lon.max() + half
    # ... so the mean of the samples inside each fine pixel exists everywhere.
    assert np.isfinite(regrid_like(elev, fine, method="mean").values).all()


def test_window_outside_demo_tile_gives_fine_grid_elevation():
    _, fine, elev = synthetic("A1", window=(20.0, 21.0, 40.0, 41.0), **SHORT)
    assert elev.attrs["resolution"] == "0.0625"
    xr.testing.assert_equal(elev.lat, fine.lat)
    xr.testing.assert_equal(elev.lon, fine.lon)


def test_elevation_30s_aggregates_to_the_shipped_fine_values(demo):
    _, fine, elev = demo
    mean = regrid_like(elev, fine, method="mean")
    shipped = load_elevation("A1", "0.0625").sel(lat=fine.lat, lon=fine.lon)
    np.testing.assert_allclose(mean.values, shipped.values, atol=0.5 + 1e-3)


def test_shipped_fine_elevation_is_the_mean_of_30s_samples_brute_force():
    tile = load_elevation("A0", "30s")
    fine = load_elevation("A0", "0.0625")
    for lat_c, lon_c in [(31.0, 62.0), (32.5, 63.4375), (33.9375, 64.0625)]:
        inside_lat = np.abs(tile.lat.values - lat_c) < 0.03125
        inside_lon = np.abs(tile.lon.values - lon_c) < 0.03125
        expected = tile.values[np.ix_(inside_lat, inside_lon)].mean()
        got = fine.sel(lat=lat_c, lon=lon_c, method="nearest")
        assert abs(float(got.lat) - lat_c) < 1e-9
        assert float(got) == pytest.approx(expected, abs=0.5 + 1e-3)


def test_load_elevation_metadata_and_errors():
    for area, shape in (("A0", (263, 343)), ("A1", (455, 383))):
        da = load_elevation(area, "0.0625")
        assert da.shape == shape and da.dtype == np.float32 and da.name == "elevation"
        assert "GLOBE" in da.attrs["source"] and da.attrs["resolution"] == "0.0625"
        assert (np.diff(da.lat) > 0).all()
        assert 0 <= float(da.min()) and float(da.max()) < 9000
    with pytest.raises(ConfigError):
        load_elevation("A1", "1km")
    with pytest.raises(RegionError):
        load_elevation("A7")


def test_full_size_is_lazy_with_the_paper_grids():
    with raise_if_dask_computes():
        for area, shape in (("A1", (432, 357)), ("A0", (224, 318))):
            coarse, fine, elev = synthetic(area, size="full")
            assert fine["DUEXTTAU"].shape[1:] == shape
            assert fine["DUEXTTAU"].chunks is not None and coarse["DUEXTTAU"].chunks is not None
            assert elev.attrs["resolution"] == "0.0625" and elev.shape == shape


def test_same_seed_same_numbers_other_seed_differs(short_a1):
    again = synthetic("A1", seed=3, **SHORT)
    xr.testing.assert_identical(short_a1[0], again[0])
    xr.testing.assert_identical(short_a1[1], again[1])
    other = synthetic("A1", seed=4, **SHORT)
    assert not np.allclose(other[1]["DUEXTTAU"].values, short_a1[1]["DUEXTTAU"].values)


@pytest.mark.parametrize("chunks", [7, 11])
def test_dask_equals_eager_and_construction_is_lazy(short_a1, chunks):
    with raise_if_dask_computes():
        coarse, fine, _ = synthetic("A1", seed=3, chunks=chunks, **SHORT)
    assert coarse["DUEXTTAU"].chunks[0][0] == chunks
    np.testing.assert_array_equal(coarse["DUEXTTAU"].values, short_a1[0]["DUEXTTAU"].values)
    np.testing.assert_array_equal(fine["DUEXTTAU"].values, short_a1[1]["DUEXTTAU"].values)


def test_values_do_not_depend_on_window_or_record(short_a1):
    _, fine, _ = short_a1
    _, sub, _ = synthetic("A1", seed=3, window=(33.0, 34.0, 45.0, 46.5),
                          coarse_start="2005-05-01", coarse_end="2005-08-01",
                          fine_start="2005-06-10", fine_days=5)
    expected = fine["DUEXTTAU"].sel(time=sub.time, lat=sub.lat, lon=sub.lon)
    np.testing.assert_allclose(sub["DUEXTTAU"].values, expected.values, rtol=1e-6)


def test_g5nr_mean_above_merra2_mean(demo):
    coarse, fine, _ = demo
    inner = coarse.sel(time=fine.time, lat=slice(32.0, 36.0), lon=slice(44.0, 48.0))
    assert float(fine["DUEXTTAU"].mean()) > 1.1 * float(inner["DUEXTTAU"].mean())


def _brute_conservative(fine: xr.DataArray, lat_c: float, lon_c: float) -> np.ndarray:
    """Overlap-weighted mean of fine pixels over one MERRA-2 cell (flat-Earth weights: the cos
    factor changes them by < 0.5 % within 0.5 degrees)."""
    def weights(centres, c, half):
        d = np.abs(centres - c)
        return np.clip((half + 0.03125 - d) / 0.0625, 0.0, 1.0)  # overlap fraction of each pixel
    wy = weights(fine.lat.values, lat_c, 0.25)
    wx = weights(fine.lon.values, lon_c, 0.3125)
    return np.einsum("tyx,y,x->t", fine.values, wy, wx) / (wy.sum() * wx.sum())


def test_coarse_is_biased_noisy_conservative_mean_of_fine(demo):
    coarse, fine, _ = demo
    model = TruthModel("A1", 0, make_grids("A1", resolve_window("A1", "demo", None)))
    bias = xr.DataArray(model.bias, coords={"lat": coarse.lat.values, "lon": coarse.lon.values})
    assert 0.6 < float(bias.mean()) < 1.0  # G5NR above MERRA-2 by a smooth factor near 0.8
    for lat_c in (33.0, 34.5):
        for lon_c in (45.0, 46.25):
            cons = _brute_conservative(fine["DUEXTTAU"], lat_c, lon_c)
            c = coarse["DUEXTTAU"].sel(time=fine.time, lat=lat_c, lon=lon_c).values
            noise = np.log10(c / cons / float(bias.sel(lat=lat_c, lon=lon_c)))
            # Multiplicative coarse-scale noise: centred, not negligible, bounded.
            assert abs(np.median(noise)) < 0.03
            assert 0.01 < np.std(noise) < 0.15 and np.abs(noise).max() < 0.4


def test_fine_has_more_short_lag_variability_than_bicubic(demo):
    coarse, fine, _ = demo
    days = fine.time[::20]
    f = np.log10(fine["DUEXTTAU"].sel(time=days).values)
    b = np.log10(regrid_like(coarse["DUEXTTAU"].sel(time=days), fine, method="cubic").values)
    for axis in (1, 2):
        gamma_f = 0.5 * np.mean(np.diff(f, axis=axis) ** 2)
        gamma_b = 0.5 * np.mean(np.diff(b, axis=axis) ** 2)
        assert gamma_f > 5 * gamma_b


@pytest.mark.parametrize("area", ["A1", "A0"])
def test_elevation_is_a_predictor(area):
    _, fine, _ = synthetic(area, size="demo", **SHORT)
    elev = load_elevation(area, "0.0625").sel(lat=fine.lat, lon=fine.lon)
    mean_log = np.log10(fine["DUEXTTAU"]).mean("time")
    r = np.corrcoef(elev.values.ravel(), mean_log.values.ravel())[0, 1]
    assert r < -0.3


def test_regional_mean_persistence(demo):
    from statsmodels.tsa.stattools import pacf

    series = np.log10(demo[1]["DUEXTTAU"]).mean(("lat", "lon")).values
    coefs = pacf(series, nlags=5)
    assert coefs[1] > 0.3
    assert np.all(np.abs(coefs[3:]) < np.abs(coefs[1]))


def test_var_name_and_public_access():
    coarse, fine, _ = xdownscale.datasets.synthetic("A0", var="dust", **SHORT)
    assert list(coarse.data_vars) == ["dust"] and list(fine.data_vars) == ["dust"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"area": "A7"}, RegionError, "unknown area"),
        ({"window": (0.0, 1.0, 0.0, 1.0)}, RegionError, "not inside area"),
        ({"window": (33.0, 33.05, 45.0, 46.0)}, RegionError, "at least 2 x 2"),
        ({"window": (33.0, 34.0)}, RegionError, "4 numbers"),
        ({"size": "huge"}, ConfigError, "size"),
        ({"seed": -1}, ConfigError, "seed"),
        ({"fine_days": 0}, ConfigError, "fine_days"),
        ({"chunks": 0}, ConfigError, "chunks"),
        ({"fine_start": "1999-12-01"}, TimeAxisError, "inside the coarse record"),
        ({"fine_days": 10_000}, TimeAxisError, "inside the coarse record"),
        ({"coarse_end": "1999-01-01"}, TimeAxisError, "before coarse_start"),
        ({"coarse_start": "not a date"}, TimeAxisError, "date"),
        ({"fine_start": "2005-05-15 12:00"}, TimeAxisError, "00:00"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        synthetic(**kwargs)
    assert issubclass(error, ValueError)
