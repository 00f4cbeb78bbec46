"""Tests of xdownscale.diagnostics.spectrum (radial power spectra) and its plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes
from scipy import ndimage, signal

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale.diagnostics import power_spectrum
from xdownscale.diagnostics.spectrum import grid_spacing_km
from xdownscale.errors import ConfigError, DimensionError

DIMS = ("time", "lat", "lon")
LAT0, STEP = 24.0, 0.0625


def _field(values, step=STEP):
    n_days, ny, nx = values.shape
    coords = {"time": pd.date_range("2006-07-01", periods=n_days),
              "lat": LAT0 + step * np.arange(ny), "lon": 40.0 + step * np.arange(nx)}
    return xr.DataArray(values, coords, DIMS, name="DUEXTTAU")


def _raw(res):
    return dict(log10=False, detrend="mean", window=None) if res is None else res


def test_grid_spacing_matches_pyproj_geodesics():
    from pyproj import Geod

    lat = LAT0 + STEP * np.arange(33)
    lon = 40.0 + STEP * np.arange(20)
    dy, dx = grid_spacing_km(lat, lon)
    geod = Geod(ellps="WGS84")
    mid = lat[16]
    ref_dy = geod.inv(40.0, mid - STEP / 2, 40.0, mid + STEP / 2)[2] / 1000
    ref_dx = geod.inv(40.0, mid, 40.0 + STEP, mid)[2] / 1000
    assert dy == pytest.approx(ref_dy, rel=1e-4)
    assert dx == pytest.approx(ref_dx, rel=1e-4)


@pytest.mark.parametrize("cycles", [(0, 5), (6, 0), (3, 4)])
def test_a_sinusoid_puts_its_variance_in_the_annulus_of_its_wavelength(cycles):
    ny, nx = 40, 36
    cy, cx = cycles
    y, x = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    wave = 2.0 * np.sin(2 * np.pi * (cy * y / ny + cx * x / nx) + 0.3)
    da = _field(wave[None])
    dy, dx = grid_spacing_km(da["lat"].values, da["lon"].values)
    # the wave's wavelength in km from its cycles over the domain's extent
    k = np.hypot(cy / (ny * dy), cx / (nx * dx))
    res = power_spectrum(da, **_raw(None))
    power = res["power"].isel(time=0).values
    i = int(np.argmin(np.abs(res["wavenumber"].values - k)))
    assert abs(res["wavelength"].values[i] - 1 / k) <= 0.5 * res.attrs["dk"] / k**2 + 1e-9
    assert power[i] == pytest.approx(2.0, rel=1e-10)  # amplitude 2 -> variance 2
    assert np.delete(power, i).max() < 1e-20
    assert float(res["total_power"][0]) == pytest.approx(2.0, rel=1e-10)
    # with the Hann taper the variance leaks only into the neighbouring annuli
    hann = power_spectrum(da, log10=False, detrend="mean", window="hann")["power"][0].values
    assert int(np.argmax(hann)) == i
    assert hann[max(i - 2, 0):i + 3].sum() == pytest.approx(2.0, rel=1e-6)


def test_parseval_total_power_is_the_variance_without_a_window():
    rng = np.random.default_rng(0)
    vals = rng.normal(size=(3, 23, 30)) * np.linspace(0.5, 2, 30)
    res = power_spectrum(_field(vals), **_raw(None))
    np.testing.assert_allclose(res["total_power"].values, vals.var(axis=(1, 2)), rtol=1e-12)
    # the annuli inside both Nyquist wavenumbers hold part of it, never more
    assert (res["power"].sum("wavenumber") < res["total_power"]).all()
    # with the window, the normalisation keeps the expected total of stationary noise
    white = rng.normal(size=(20, 32, 32))
    tapered = power_spectrum(_field(white), log10=False, detrend="mean", window="hann")
    assert float(tapered["total_power"].mean()) == pytest.approx(1.0, abs=0.03)


def test_rows_that_vary_only_along_lon_match_scipy_periodogram():
    rng = np.random.default_rng(1)
    ny, nx = 48, 32  # taller than wide in km, so the Hann leakage in lat stays in its annulus
    g = np.cumsum(rng.normal(size=nx))
    da = _field(np.broadcast_to(g, (ny, nx))[None].copy())
    res = power_spectrum(da, log10=False, detrend="mean", window="hann")
    freqs, pxx = signal.periodogram(g, fs=1.0, window="hann", detrend="constant",
                                    scaling="density", return_onesided=False)
    n = res.sizes["wavenumber"]
    two_sided = np.array([pxx[i] + pxx[-i] for i in range(1, n + 1)]) / nx  # density * df
    # The taper gives the zero-mean map a mean, which scipy keeps at frequency 0; in 2-D a
    # third of it (the lat Hann's +-1 coefficients: 2 x 0.25^2 of 0.375) sits at |k| = dk_lat,
    # inside the first annulus.
    two_sided[0] += pxx[0] / 3 / nx
    np.testing.assert_allclose(res["power"][0].values, two_sided, rtol=1e-10)
    dy, dx = grid_spacing_km(da["lat"].values, da["lon"].values)
    np.testing.assert_allclose(res["wavenumber"].values, freqs[1:n + 1] / dx, rtol=1e-12)


def test_linear_detrending_removes_a_plane():
    y, x = np.meshgrid(np.arange(20), np.arange(24), indexing="ij")
    plane = (0.3 + 0.02 * y - 0.05 * x)[None].astype(float)
    res = power_spectrum(_field(plane), log10=False, detrend="linear")
    assert float(res["total_power"][0]) < 1e-25
    mean_only = power_spectrum(_field(plane), log10=False, detrend="mean")
    assert float(mean_only["total_power"][0]) > 1e-3


def test_smoothing_removes_power_at_short_wavelengths():
    rng = np.random.default_rng(2)
    rough = rng.normal(size=(4, 40, 40))
    smooth = ndimage.gaussian_filter(rough, sigma=(0, 1.5, 1.5))
    pr = power_spectrum(_field(10**rough))["power_mean"]
    ps = power_spectrum(_field(10**smooth))["power_mean"]
    ratio = (ps / pr).values
    assert ratio[-3:].max() < 0.05 and ratio[0] > 10 * ratio[-1]


def test_dask_input_is_lazy_matches_numpy_and_keeps_member_dims():
    rng = np.random.default_rng(3)
    da = _field(10 ** rng.normal(-1, 0.3, (5, 17, 19)))
    ens = xr.concat([da, da * 1.1], dim="member")
    with raise_if_dask_computes():
        lazy = ens.chunk({"time": 2}).dustdiag.power_spectrum()
    eager = power_spectrum(ens)
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert eager["power"].dims == ("member", "time", "wavenumber")
    assert eager["power_mean"].dims == ("member", "wavenumber")
    # a missing pixel makes that day's spectrum missing, not wrong
    holed = da.copy()
    holed[1, 3, 3] = np.nan
    res = power_spectrum(holed)
    assert np.isnan(res["power"][1]).all() and np.isfinite(res["power"][0]).all()


def test_errors_read_well():
    da = _field(np.ones((1, 8, 8)))
    with pytest.raises(ConfigError, match="detrend"):
        power_spectrum(da, detrend="quadratic")
    with pytest.raises(ConfigError, match="window"):
        power_spectrum(da, window="blackman")
    with pytest.raises(ConfigError, match="4 x 4"):
        power_spectrum(da.isel(lat=slice(0, 3)))
    with pytest.raises(DimensionError, match="Rechunk"):
        power_spectrum(da.chunk({"lon": 4}))


def test_plot_power_spectrum_overlays_fields_and_results():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(4)
    truth = _field(10 ** rng.normal(-1, 0.3, (3, 16, 16)))
    ax = truth.dustdiag.plot_power_spectrum(power_spectrum(truth * 2), labels=["a", "b"])
    assert len(ax.get_lines()) == 2 and ax.xaxis_inverted()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    with pytest.raises(ConfigError, match="labels"):
        truth.dustdiag.plot_power_spectrum(labels=["a", "b"])
    plt.close("all")
