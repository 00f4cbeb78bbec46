"""Tests of xdownscale.data.regrid against independent implementations (brute-force loops written
from the textbook formulas, scipy interpolators) and of its xarray behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.interpolate as si
import xarray as xr
from conftest import raise_if_dask_computes
from scipy.sparse.linalg import spsolve

from xdownscale.data.regrid import regrid_like
from xdownscale.errors import (
    ConfigError,
    DimensionError,
    ExtrapolationError,
    GridMismatchError,
    MissingDependencyError,
    MissingVariableError,
)

RNG = np.random.default_rng(42)


def _grid(lat, lon, data=None, *, name="DUEXTTAU", ntime=None, dims=("lat", "lon")):
    shape = (lat.size, lon.size) if ntime is None else (ntime, lat.size, lon.size)
    if data is None:
        data = RNG.random(shape)
    coords = {dims[0]: lat, dims[1]: lon}
    full_dims = dims if ntime is None else ("time", *dims)
    if ntime is not None:
        coords["time"] = np.arange(ntime)
    return xr.DataArray(data, dims=full_dims, coords=coords, name=name,
                        attrs={"units": "1", "long_name": "Dust Extinction AOT [550 nm]"})


def _target(lat, lon):
    return xr.Dataset(coords={"lat": ("lat", lat, {"units": "degrees_north", "tag": "t"}),
                              "lon": ("lon", lon, {"units": "degrees_east"})})


# --- independent references ---------------------------------------------------------------

def _keys(s, a=-0.5):
    s = abs(s)
    if s <= 1:
        return (a + 2) * s**3 - (a + 3) * s**2 + 1
    if s < 2:
        return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
    return 0.0


def _ghost(f, axis):
    """Keys' boundary extension f[-1] = 3 f0 - 3 f1 + f2 (and mirrored at the end)."""
    f = np.moveaxis(f, axis, 0)
    lo = 3 * f[0] - 3 * f[1] + f[2]
    hi = 3 * f[-1] - 3 * f[-2] + f[-3]
    return np.moveaxis(np.concatenate([lo[None], f, hi[None]]), 0, axis)


def _keys_brute(field, y0, dy, x0, dx, ty, tx):
    """Per-pixel loop of the 2-D Keys convolution on a uniform grid."""
    ext = _ghost(_ghost(field, 0), 1)  # index shifted by +1
    ny, nx = field.shape
    out = np.empty((ty.size, tx.size))
    for a, yy in enumerate(ty):
        sy = (yy - y0) / dy
        ky = min(int(np.floor(sy)), ny - 2)
        for b, xx in enumerate(tx):
            sx = (xx - x0) / dx
            kx = min(int(np.floor(sx)), nx - 2)
            acc = 0.0
            for jy in range(ky - 1, ky + 3):
                for jx in range(kx - 1, kx + 3):
                    acc += ext[jy + 1, jx + 1] * _keys(sy - jy) * _keys(sx - jx)
            out[a, b] = acc
    return out


def _hermite_1d(field, x, xt, axis):
    """Cubic Hermite with slopes from numpy's second-order non-uniform gradient."""
    slopes = np.gradient(field, x, axis=axis, edge_order=2)
    return si.CubicHermiteSpline(x, field, slopes, axis=axis)(xt)


# --- interpolation ------------------------------------------------------------------------

def test_cubic_matches_brute_force_keys_on_uniform_grid():
    lat = 10 + 0.5 * np.arange(7)
    lon = 30 + 0.625 * np.arange(9)
    src = _grid(lat, lon)
    ty = np.sort(RNG.uniform(lat[0], lat[-1], 11))
    tx = np.sort(RNG.uniform(lon[0], lon[-1], 13))
    ty[0], tx[-1] = lat[0], lon[-1]  # the outermost centres are inside the support
    out = regrid_like(src, _target(ty, tx), "cubic")
    ref = _keys_brute(src.values, lat[0], 0.5, lon[0], 0.625, ty, tx)
    np.testing.assert_allclose(out.values, ref, rtol=0, atol=1e-12)


def test_cubic_on_irregular_grid_matches_hermite_reference_and_reproduces_quadratics():
    lat = np.cumsum(RNG.uniform(0.2, 0.9, 8))
    lon = np.cumsum(RNG.uniform(0.3, 1.1, 10))
    ty = np.sort(RNG.uniform(lat[0], lat[-1], 9))
    tx = np.sort(RNG.uniform(lon[0], lon[-1], 12))
    src = _grid(lat, lon)
    out = regrid_like(src, _target(ty, tx), "cubic").values
    ref = _hermite_1d(_hermite_1d(src.values, lat, ty, 0), lon, tx, 1)
    np.testing.assert_allclose(out, ref, atol=1e-12)

    def quad(y, x):
        return 1 + 2 * y - 3 * x + 0.5 * y**2 - 0.7 * x * y + 0.25 * x**2 + 0.1 * x**2 * y**2

    yy, xx = np.meshgrid(lat, lon, indexing="ij")
    tyy, txx = np.meshgrid(ty, tx, indexing="ij")
    out = regrid_like(_grid(lat, lon, quad(yy, xx)), _target(ty, tx), "cubic").values
    np.testing.assert_allclose(out, quad(tyy, txx), atol=1e-10)
    bilinear = 2 + 3 * yy - xx + 0.5 * xx * yy
    out = regrid_like(_grid(lat, lon, bilinear), _target(ty, tx), "linear").values
    np.testing.assert_allclose(out, 2 + 3 * tyy - txx + 0.5 * txx * tyy, atol=1e-10)


@pytest.mark.parametrize("method", ["linear", "spline"])
def test_linear_and_spline_match_regular_grid_interpolator(method):
    lat = np.cumsum(RNG.uniform(0.2, 0.9, 8))
    lon = np.cumsum(RNG.uniform(0.3, 1.1, 10))
    ty = np.sort(RNG.uniform(lat[0], lat[-1], 9))
    tx = np.sort(RNG.uniform(lon[0], lon[-1], 12))
    src = _grid(lat, lon)
    out = regrid_like(src, _target(ty, tx), method).values
    # a direct solver: by default scipy solves the spline system iteratively to ~1e-6
    rgi = si.RegularGridInterpolator((lat, lon), src.values,
                                     method="cubic" if method == "spline" else "linear",
                                     solver=spsolve if method == "spline" else None)
    ref = rgi(np.stack(np.meshgrid(ty, tx, indexing="ij"), axis=-1))
    np.testing.assert_allclose(out, ref, atol=1e-10)


def test_nearest_matches_argmin():
    lat, lon = np.cumsum(RNG.uniform(0.2, 0.9, 6)), np.cumsum(RNG.uniform(0.3, 1.1, 7))
    ty = np.sort(RNG.uniform(lat[0], lat[-1], 8))
    tx = np.sort(RNG.uniform(lon[0], lon[-1], 9))
    src = _grid(lat, lon)
    out = regrid_like(src, _target(ty, tx), "nearest").values
    iy = np.abs(ty[:, None] - lat[None]).argmin(1)
    ix = np.abs(tx[:, None] - lon[None]).argmin(1)
    np.testing.assert_array_equal(out, src.values[np.ix_(iy, ix)])


def test_nan_spoils_only_its_stencil():
    lat = 10 + 0.5 * np.arange(12)
    lon = 30 + 0.625 * np.arange(12)
    field = RNG.random((12, 12))
    field[6, 5] = np.nan
    ty = np.linspace(lat[0] + 0.01, lat[-1] - 0.01, 40)
    tx = np.linspace(lon[0] + 0.01, lon[-1] - 0.01, 41)
    out = regrid_like(_grid(lat, lon, field), _target(ty, tx), "cubic").values
    ref = _keys_brute(field, lat[0], 0.5, lon[0], 0.625, ty, tx)  # NaN * weight in the loop
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    np.testing.assert_allclose(out[~np.isnan(out)], ref[~np.isnan(ref)], atol=1e-12)
    bad_y, bad_x = np.nonzero(np.isnan(out).any(1))[0], np.nonzero(np.isnan(out).any(0))[0]
    assert 0 < bad_y.size < ty.size and 0 < bad_x.size < tx.size
    assert np.all(np.abs(ty[bad_y] - lat[6]) < 2 * 0.5)
    assert np.all(np.abs(tx[bad_x] - lon[5]) < 2 * 0.625)
    # a target exactly on a valid node does not depend on its NaN neighbour
    exact = regrid_like(_grid(lat, lon, field), _target(lat[6:7], lon[4:5]), "cubic").values
    assert exact[0, 0] == field[6, 4]


# --- aggregation --------------------------------------------------------------------------

def _fine_axis(lo, n, step=1 / 120):
    return lo + step / 2 + step * np.arange(n)


def test_mean_matches_brute_force_bins_with_nan():
    lat, lon = _fine_axis(20.0, 60), _fine_axis(40.0, 75)  # 30 arc-second samples
    field = RNG.random((60, 75))
    field[RNG.random(field.shape) < 0.2] = np.nan
    field[:12, :12] = np.nan  # the first target pixel has no valid sample
    ty = 0.0625 * np.arange(np.ceil(20.04 / 0.0625), np.floor(20.46 / 0.0625) + 1)
    tx = 0.0625 * np.arange(np.ceil(40.04 / 0.0625), np.floor(40.58 / 0.0625) + 1)
    out = regrid_like(_grid(lat, lon, field), _target(ty, tx), "mean").values
    ref = np.full((ty.size, tx.size), np.nan)
    counts = set()
    for a, yy in enumerate(ty):
        for b, xx in enumerate(tx):
            iy = (lat >= yy - 0.03125) & (lat < yy + 0.03125)
            ix = (lon >= xx - 0.03125) & (lon < xx + 0.03125)
            counts.add((iy.sum(), ix.sum()))
            vals = field[np.ix_(iy, ix)]
            if np.isfinite(vals).any():
                ref[a, b] = np.nanmean(vals)
    assert counts <= {(7, 7), (7, 8), (8, 7), (8, 8)}  # 7.5 samples per side: not a coarsen
    assert np.isnan(ref[0, 0])
    np.testing.assert_allclose(out, ref, atol=1e-12)


def _sphere_overlap(a0, a1, b0, b1):
    lo, hi = max(a0, b0), min(a1, b1)
    return max(0.0, np.sin(np.deg2rad(hi)) - np.sin(np.deg2rad(lo)))


def test_conservative_matches_brute_force_overlaps_and_conserves():
    lat, lon = 0.0625 * np.arange(400, 480) + 0.03125, 0.0625 * np.arange(600, 680) + 0.03125
    field = RNG.random((80, 80))
    ty, tx = np.array([25.6, 26.4, 27.2]), np.array([37.9, 38.5, 39.1, 39.7])  # 0.8 x 0.6 cells
    out = regrid_like(_grid(lat, lon, field), _target(ty, tx), "conservative").values
    se_y, se_x = np.append(lat - 0.03125, lat[-1] + 0.03125), np.append(lon - 0.03125,
                                                                       lon[-1] + 0.03125)
    te_y = np.array([25.2, 26.0, 26.8, 27.6])
    te_x = np.array([37.6, 38.2, 38.8, 39.4, 40.0])
    ref = np.empty((3, 4))
    for a in range(3):
        for b in range(4):
            num = den = 0.0
            for i in range(80):
                wy = _sphere_overlap(te_y[a], te_y[a + 1], se_y[i], se_y[i + 1])
                for j in range(80):
                    w = wy * max(0.0, min(te_x[b + 1], se_x[j + 1]) - max(te_x[b], se_x[j]))
                    num, den = num + w * field[i, j], den + w
            ref[a, b] = num / den
    np.testing.assert_allclose(out, ref, atol=1e-12)
    # the area-weighted integral is conserved over target cells made of whole source cells
    te_y, te_x = 25.25 + 0.75 * np.arange(4), 37.625 + 0.625 * np.arange(5)
    out = regrid_like(_grid(lat, lon, field),
                      _target(te_y[:-1] + 0.375, te_x[:-1] + 0.3125), "conservative").values
    area_t = np.diff(np.sin(np.deg2rad(te_y)))[:, None] * np.diff(te_x)[None]
    inside_y, inside_x = (lat > te_y[0]) & (lat < te_y[-1]), (lon > te_x[0]) & (lon < te_x[-1])
    area_s = (np.diff(np.sin(np.deg2rad(se_y)))[:, None] * np.diff(se_x)[None])
    sub = np.ix_(inside_y, inside_x)
    np.testing.assert_allclose((out * area_t).sum(), (field[sub] * area_s[sub]).sum(), rtol=1e-12)


def test_conservative_block_means_and_nan():
    lat = 0.0625 * np.arange(160, 176) + 0.03125  # two 0.5-degree cells: 10.0..11.0
    lon = 0.0625 * np.arange(0, 16) + 0.03125
    field = RNG.random((16, 16))
    field[0, 0] = np.nan
    out = regrid_like(_grid(lat, lon, field), _target(np.array([10.25, 10.75]),
                                                      np.array([0.25, 0.75])), "conservative").values
    w = np.cos(np.deg2rad(lat))  # within rounding of the exact sin() difference
    for k in range(2):
        blk = field[8 * k:8 * k + 8, :8]
        ww = np.broadcast_to(w[8 * k:8 * k + 8, None], (8, 8))
        ok = np.isfinite(blk)
        np.testing.assert_allclose(out[k, 0], (blk[ok] * ww[ok]).sum() / ww[ok].sum(), rtol=1e-6)
    field[8:, 8:] = np.nan
    out = regrid_like(_grid(lat, lon, field), _target(np.array([10.25, 10.75]),
                                                      np.array([0.25, 0.75])), "conservative")
    assert np.isnan(out.values[1, 1]) and np.isfinite(out.values).sum() == 3


def test_mean_refuses_a_coarser_source():
    src = _grid(0.5 * np.arange(10), 0.5 * np.arange(10))
    with pytest.raises(GridMismatchError, match="finer than the target"):
        regrid_like(src, _target(0.1 * np.arange(5, 40), 0.1 * np.arange(5, 40)), "mean")


# --- support / extrapolation ---------------------------------------------------------------

@pytest.mark.parametrize("method", ["cubic", "nearest", "mean", "conservative"])
def test_extrapolation_is_refused_then_nan(method):
    lat, lon = _fine_axis(20.0, 60, 0.05), _fine_axis(40.0, 60, 0.05)
    src = _grid(lat, lon)
    ty = np.append(20.5 + 0.25 * np.arange(10), 23.25)  # 23.25 is beyond the source (20..23)
    tx = 40.5 + 0.25 * np.arange(8)
    with pytest.raises(ExtrapolationError, match=r"1 latitude .*offending centres 23\.25"):
        regrid_like(src, _target(ty, tx), method)
    out = regrid_like(src, _target(ty, tx), method, extrapolate=True).values
    assert np.isnan(out[-1]).all() and np.isfinite(out[1:-1]).all()


def test_outermost_centres_are_inside():
    lat, lon = 0.5 * np.arange(5), 0.625 * np.arange(6)
    src = _grid(lat, lon)
    out = regrid_like(src, _target(lat, lon), "cubic")
    np.testing.assert_allclose(out.values, src.values, atol=1e-14)


# --- xarray behaviour ------------------------------------------------------------------------

def test_lazy_dask_path_matches_numpy(backend):
    lat, lon = 10 + 0.5 * np.arange(9), 30 + 0.625 * np.arange(11)
    src = _grid(lat, lon, RNG.random((7, 9, 11)).astype("float32"), ntime=7)
    tgt = _target(np.linspace(10.3, 13.7, 13), np.linspace(30.2, 35.9, 17))
    inp = src.chunk(time=3) if backend == "dask" else src
    with raise_if_dask_computes():
        out = regrid_like(inp, tgt, "cubic")
    assert out.dtype == np.float32 and out.dims == ("time", "lat", "lon")
    if backend == "dask":
        assert out.chunks == ((3, 3, 1), (13,), (17,))
    np.testing.assert_allclose(out.values, regrid_like(src, tgt, "cubic").values, rtol=1e-6)
    ref = _keys_brute(src.values[4].astype(float), 10, 0.5, 30, 0.625, tgt.lat.values,
                      tgt.lon.values)
    np.testing.assert_allclose(out.values[4], ref, atol=1e-5)


def test_chunked_space_is_refused_with_advice():
    src = _grid(0.5 * np.arange(8), 0.5 * np.arange(8), ntime=2).chunk(lat=4)
    with pytest.raises(DimensionError, match=r"\.chunk\("):
        regrid_like(src, _target(np.array([1.0]), np.array([1.0])))


def test_metadata_dataset_and_names():
    lat, lon = 10 + 0.5 * np.arange(6), 30 + 0.625 * np.arange(6)
    src = _grid(lat, lon, ntime=2, dims=("latitude", "longitude")).to_dataset()
    src["other"] = ("time", [1.0, 2.0])
    src.attrs["title"] = "MERRA-2"
    tgt = _target(np.array([10.7, 11.2]), np.array([31.0, 32.0, 33.0]))
    out = regrid_like(src, tgt, "linear")
    assert isinstance(out, xr.Dataset) and set(out.data_vars) == {"DUEXTTAU", "other"}
    assert out.DUEXTTAU.dims == ("time", "lat", "lon")
    assert out.lat.attrs["tag"] == "t" and out.attrs["title"] == "MERRA-2"
    assert out.DUEXTTAU.attrs["units"] == "1" and out.DUEXTTAU.attrs["regrid_method"] == "linear"
    bare = regrid_like(src, tgt, "linear", var="DUEXTTAU", keep_attrs=False)
    assert list(bare.data_vars) == ["DUEXTTAU"]
    assert bare.DUEXTTAU.attrs == {"regrid_method": "linear"}
    with pytest.raises(MissingVariableError):
        regrid_like(src, tgt, var="nope")


def test_descending_coordinates_give_the_same_values():
    lat, lon = 10 + 0.5 * np.arange(8), 30 + 0.625 * np.arange(9)
    src = _grid(lat, lon)
    tgt = _target(np.linspace(10.2, 13.3, 7), np.linspace(30.1, 34.9, 5))
    ref = regrid_like(src, tgt, "cubic")
    flipped = regrid_like(src.isel(lat=slice(None, None, -1)), tgt.isel(lat=slice(None, None, -1)),
                          "cubic")
    np.testing.assert_allclose(flipped.values, ref.values[::-1], atol=1e-12)
    np.testing.assert_array_equal(flipped.lat.values, tgt.lat.values[::-1])


def test_bad_grids_and_arguments():
    src = _grid(np.array([0.0, 2.0, 1.0, 3.0]), 0.5 * np.arange(4))
    tgt = _target(np.array([1.0]), np.array([1.0]))
    with pytest.raises(DimensionError, match="monotonic"):
        regrid_like(src, tgt)
    with pytest.raises(DimensionError, match="latitude"):
        regrid_like(xr.DataArray(np.zeros((2, 2)), dims=("a", "b")), tgt)
    with pytest.raises(ConfigError, match="unknown regrid method"):
        regrid_like(_grid(0.5 * np.arange(4), 0.5 * np.arange(4)), tgt, "bicubic")


def test_integer_input_becomes_float():
    src = _grid(0.5 * np.arange(4), 0.5 * np.arange(4), np.arange(16, dtype="int16").reshape(4, 4))
    out = regrid_like(src, _target(np.array([0.25]), np.array([0.25])), "linear")
    assert out.dtype == np.float32 and out.item() == pytest.approx(2.5)


# --- xESMF backend -----------------------------------------------------------------------------

@pytest.mark.requires_xesmf
def test_xesmf_backend_agrees_on_linear():
    pytest.importorskip("xesmf")
    lat, lon = 10 + 0.5 * np.arange(8), 30 + 0.625 * np.arange(9)
    src = _grid(lat, lon)
    tgt = _target(np.linspace(10.5, 13, 6), np.linspace(31, 34, 5))
    out = regrid_like(src, tgt, "linear", backend="xesmf")
    np.testing.assert_allclose(out.values, regrid_like(src, tgt, "linear").values, atol=1e-3)


def test_missing_xesmf_error_reads_well():
    try:
        import xesmf  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("xesmf is importable here")
    src = _grid(0.5 * np.arange(4), 0.5 * np.arange(4))
    with pytest.raises(MissingDependencyError) as err:
        regrid_like(src, _target(np.array([0.5]), np.array([0.5])), "linear", backend="xesmf")
    msg = str(err.value)
    assert "conda install -c conda-forge xesmf" in msg and "backend='numpy'" in msg
    assert isinstance(err.value, ImportError)


def test_regridder_keeps_weights_and_matches_regrid_like():
    from xdownscale.data.regrid import Regridder

    rng = np.random.default_rng(3)
    src = xr.DataArray(rng.random((3, 7, 9)), dims=("time", "lat", "lon"),
                       coords={"time": [0, 1, 2], "lat": np.linspace(20, 26, 7),
                               "lon": np.linspace(40, 48, 9)})
    dst = xr.Dataset(coords={"lat": np.linspace(21, 25, 13), "lon": np.linspace(41, 47, 11)})
    regridder = Regridder(src, dst, "bilinear")
    assert regridder.method == "linear" and "(7, 9) -> (13, 11)" in repr(regridder)
    weights = regridder.weights
    for field in (src, 3 * src + 1):
        xr.testing.assert_identical(regridder(field), regrid_like(field, dst, method="linear"))
    assert regridder.weights is weights  # built once
    xr.testing.assert_identical(regrid_like(src, dst, method="nearest_s2d"),
                                regrid_like(src, dst, method="nearest"))
    with pytest.raises(GridMismatchError, match="another"):
        regridder(src.isel(lat=slice(1, None)))
    with pytest.raises(ConfigError, match="alias"):
        Regridder(src, dst, "patch")


# --- clamped interpolation -------------------------------------------------------------------

def _bracket_range_brute(src, lat, lon, ty, tx):
    """Min and max of the 2 x 2 source values around each target point, by loops (on a
    source row or column, the two values along it: the interpolation is 1-D there)."""
    def around(c, v):
        if np.isin(v, c):
            return [int(np.flatnonzero(c == v)[0])]
        i = np.searchsorted(c, v) - 1
        return [i, i + 1]

    lo = np.empty((ty.size, tx.size))
    hi = np.empty_like(lo)
    for a, y in enumerate(ty):
        for b, x in enumerate(tx):
            box = src[np.ix_(around(lat, y), around(lon, x))]
            lo[a, b], hi[a, b] = box.min(), box.max()
    return lo, hi


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_clamp_is_cubic_clipped_to_the_bracketing_values(backend):
    lat, lon = 10 + 0.5 * np.arange(9), 30 + 0.625 * np.arange(11)
    # sparse plumes on a near-zero background: cubic overshoots below zero beside them
    field = RNG.random((4, 9, 11)) ** 8
    src = _grid(lat, lon, field, ntime=4)
    ty, tx = np.linspace(10.1, 13.9, 23), np.linspace(30.05, 36.2, 29)
    tgt = _target(ty, tx)
    plain = regrid_like(src, tgt, "cubic")
    inp = src.chunk(time=3) if backend == "dask" else src
    with raise_if_dask_computes():
        out = regrid_like(inp, tgt, "cubic", clamp=True)
    assert out.attrs["regrid_clamp"] == 1 and "regrid_clamp" not in plain.attrs
    assert (plain.values < 0).any()  # the case the clamp is for
    for k in range(4):
        lo, hi = _bracket_range_brute(field[k], lat, lon, ty, tx)
        np.testing.assert_allclose(out.values[k], np.clip(plain.values[k], lo, hi), atol=1e-12)
    assert out.values.min() >= 0
    inside = (plain.values >= out.values - 1e-15) & (plain.values <= out.values + 1e-15)
    assert inside.mean() > 0.5  # most points did not overshoot and are unchanged


def test_clamp_keeps_nan_and_refuses_what_it_cannot_clip():
    from xdownscale.data.regrid import Regridder

    lat, lon = 0.5 * np.arange(8), 0.5 * np.arange(8)
    data = RNG.random((8, 8))
    data[3, 4] = np.nan
    src = _grid(lat, lon, data)
    tgt = _target(np.linspace(0.1, 3.4, 12), np.linspace(0.2, 3.3, 12))
    np.testing.assert_array_equal(np.isnan(regrid_like(src, tgt, clamp=True).values),
                                  np.isnan(regrid_like(src, tgt).values))
    # linear never leaves the bracket: clamped or not, the same numbers
    np.testing.assert_array_equal(regrid_like(src, tgt, "linear", clamp=True).values,
                                  regrid_like(src, tgt, "linear").values)
    assert "clamped" in repr(Regridder(src, tgt, clamp=True))
    with pytest.raises(ConfigError, match="averages"):
        regrid_like(src, _target(np.array([1.0]), np.array([1.0])), "conservative", clamp=True)
    with pytest.raises(ConfigError, match="numpy"):
        regrid_like(src, tgt, "linear", backend="xesmf", clamp=True)
