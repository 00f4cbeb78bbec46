"""Readers: small files in the MERRA-2 / G5NR / DEM layouts written to tmp_path and read back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

from xdownscale.data.io import open_elevation, open_g5nr, open_merra2
from xdownscale.errors import (
    DimensionError,
    GridMismatchError,
    MissingDependencyError,
    MissingVariableError,
    NegativeValueError,
    RegionError,
    TimeAxisError,
    UnitsError,
)

RNG = np.random.default_rng(0)
try:  # h5netcdf writes through h5py, which is optional for it
    import h5py  # noqa: F401

    ENGINES = ("netcdf4", "h5netcdf")
except ImportError:
    ENGINES = ("netcdf4",)
BOX = (21.0, 25.0, 41.0, 45.0)  # a 4 x 4 degree region inside the 6 x 6 degree files
M2_LAT = 20.0 + 0.5 * np.arange(13)  # MERRA-2 spacing: 0.5 x 0.625 degrees
M2_LON = 40.0 + 0.625 * np.arange(11)


def _aod(times, lat, lon, values=None, *, var="DUEXTTAU", units="1", dims=("lat", "lon")):
    if values is None:
        values = RNG.gamma(2.0, 0.1, (len(times), lat.size, lon.size)).astype("float32")
    da = xr.DataArray(
        values, dims=("time", *dims),
        coords={"time": times, dims[0]: (dims[0], lat, {"units": "degrees_north"}),
                dims[1]: (dims[1], lon, {"units": "degrees_east"})},
        attrs={"long_name": "Dust Extinction AOT [550 nm]", "units": units,
               "cell_methods": "time: mean"},
    )
    if units is None:
        del da.attrs["units"]
    return da.to_dataset(name=var).assign(OCEXTTAU=da * 0.5).assign_attrs(title="test file")


def _write(ds, path, engine="netcdf4"):
    t0 = pd.Timestamp(ds.time.values[0]).floor("D")
    enc = {"time": {"units": f"minutes since {t0:%Y-%m-%d} 00:30:00", "dtype": "int32"}}
    ds.to_netcdf(path, engine=engine, encoding=enc)
    return path


def _merra2_files(tmp_path, days=3, start="2005-05-15", **kw):
    paths = []
    for d in pd.date_range(start, periods=days, freq="D"):
        times = d + pd.Timedelta("30min") + pd.to_timedelta(np.arange(24), "h")
        engine = ENGINES[d.day % len(ENGINES)]  # both engines' files mix fine
        path = tmp_path / f"MERRA2_400.tavg1_2d_aer_Nx.{d:%Y%m%d}.nc4"
        paths.append(_write(_aod(times, M2_LAT, M2_LON, **kw), path, engine))
    return paths


def _reference_daily(paths, var="DUEXTTAU"):
    with xr.open_mfdataset(paths, combine="by_coords") as ds:
        raw = ds[var].load()
    days = raw.values.reshape(len(paths), 24, *raw.shape[1:]).astype("float64").mean(1)
    return raw, days


def test_merra2_daily_means_clip_and_metadata(tmp_path):
    paths = _merra2_files(tmp_path)
    with raise_if_dask_computes():
        ds = open_merra2(str(tmp_path / "MERRA2_*.nc4"), region=BOX, pad=1.0)
    da = ds["DUEXTTAU"]
    assert da.chunks is not None and da.dims == ("time", "lat", "lon")
    assert da.dtype == np.float32
    raw, days = _reference_daily(paths)
    iy = (M2_LAT >= 20.0) & (M2_LAT <= 26.0)
    ix = (M2_LON >= 40.0) & (M2_LON <= 46.0)
    np.testing.assert_array_equal(da.lat.values, M2_LAT[iy])
    np.testing.assert_array_equal(da.lon.values, M2_LON[ix])
    np.testing.assert_allclose(da.values, days[:, iy][:, :, ix], rtol=1e-6)
    np.testing.assert_array_equal(da.time.values,
                                  pd.date_range("2005-05-15", periods=3).to_numpy())
    assert da.time.dtype == "datetime64[ns]"
    assert da.attrs["units"] == "1" and da.attrs["long_name"] == "Dust Extinction AOT [550 nm]"
    assert da.attrs["cell_methods"] == "time: mean time: mean (daily)"
    assert list(ds.data_vars) == ["DUEXTTAU"] and ds.attrs["title"] == "test file"


def test_merra2_accepts_a_list_and_odd_layouts(tmp_path):
    day = pd.Timestamp("2010-01-01")
    times = day + pd.Timedelta("30min") + pd.to_timedelta(np.arange(24), "h")
    base = _aod(times, M2_LAT, M2_LON)
    # descending latitudes and 0-360 longitudes (lon 340..346.25 is -20..-13.75)
    odd = base.isel(lat=slice(None, None, -1)).assign_coords(lon=M2_LON + 300.0)
    path = _write(odd, tmp_path / "odd.nc4")
    ds = open_merra2([path], region=(21.0, 25.0, -19.0, -15.0), pad=1.0, engine=ENGINES[-1])
    assert np.all(np.diff(ds.lat.values) > 0) and ds.lon.values.min() >= -180
    expected = base.DUEXTTAU.values.mean(0)[np.ix_(
        (M2_LAT >= 20) & (M2_LAT <= 26), (M2_LON - 60 >= -20) & (M2_LON - 60 <= -14))]
    np.testing.assert_allclose(ds.DUEXTTAU.values[0], expected, rtol=1e-6)


def test_g5nr_half_hourly_daily_means(tmp_path):
    lat = 0.0625 * np.arange(352, 368)  # 22.0 .. 22.9375
    lon = 0.0625 * np.arange(672, 690)
    paths = []
    # The real collection has one file per instant; a few per-instant files and the rest in
    # bigger files keep the test fast and still exercise combining them.
    times = pd.date_range("2006-01-01", periods=96, freq="30min")
    for chunk in (times[:3], times[3:5], times[5:50], times[50:]):
        path = tmp_path / f"c1440_NR.inst30mn_2d_aer_Nx.{chunk[0]:%Y%m%d_%H%M}z.nc4"
        paths.append(_write(_aod(chunk, lat, lon), path))
    with raise_if_dask_computes():
        ds = open_g5nr(str(tmp_path / "c1440_NR.*.nc4"), region=(22.1, 22.8, 42.1, 42.9))
    with xr.open_mfdataset(paths, combine="by_coords") as raw:
        ref = raw.DUEXTTAU.values.reshape(2, 48, lat.size, lon.size).mean(1)
    iy, ix = (lat >= 22.1) & (lat <= 22.8), (lon >= 42.1) & (lon <= 42.9)
    np.testing.assert_allclose(ds.DUEXTTAU.values, ref[:, iy][:, :, ix], rtol=1e-6)
    assert ds.sizes == {"time": 2, "lat": iy.sum(), "lon": ix.sum()}


def test_nan_sample_makes_the_day_missing_and_gaps_are_not_invented(tmp_path):
    paths = _merra2_files(tmp_path, days=3)
    ds = open_merra2([paths[0], paths[2]], region=None)
    assert ds.sizes["time"] == 2  # no empty day in between
    values = RNG.random((24, 13, 11)).astype("float32")
    values[5, 3, 4] = np.nan
    times = pd.Timestamp("2005-06-01 00:30") + pd.to_timedelta(np.arange(24), "h")
    path = _write(_aod(times, M2_LAT, M2_LON, values), tmp_path / "nan.nc4")
    out = open_merra2(path, region=None).DUEXTTAU.values[0]
    assert np.isnan(out[3, 4]) and np.isfinite(out).sum() == out.size - 1


def test_errors_variable_units_dims(tmp_path):
    times = pd.Timestamp("2005-05-15 00:30") + pd.to_timedelta(np.arange(24), "h")
    good = _write(_aod(times, M2_LAT, M2_LON), tmp_path / "good.nc4")
    with pytest.raises(MissingVariableError, match="DUDUST.*DUEXTTAU"):
        open_merra2(good, var="DUDUST")
    metres = _write(_aod(times, M2_LAT, M2_LON, units="m"), tmp_path / "m.nc4")
    with pytest.raises(UnitsError, match="dimensionless"):
        open_merra2(metres, region=BOX)
    no_units = _write(_aod(times, M2_LAT, M2_LON, units=None), tmp_path / "nounits.nc4")
    assert open_merra2(no_units, region=BOX).sizes["time"] == 1
    cf_dims = _aod(times, M2_LAT, M2_LON, dims=("row", "col"))  # found by their CF units
    assert open_merra2(_write(cf_dims, tmp_path / "cf.nc4"), region=BOX).DUEXTTAU.dims == (
        "time", "lat", "lon")
    for dim in ("row", "col"):
        cf_dims[dim].attrs = {}
    with pytest.raises(DimensionError, match="latitude"):
        open_merra2(_write(cf_dims, tmp_path / "rc.nc4"))
    level = _aod(times, M2_LAT, M2_LON).DUEXTTAU.expand_dims(lev=[1, 2], axis=1).to_dataset()
    with pytest.raises(DimensionError, match="lev"):
        open_merra2(_write(level, tmp_path / "lev.nc4"))
    with pytest.raises(RegionError):
        open_merra2(good, region=(-40.0, -30.0, 0.0, 10.0))
    with pytest.raises(FileNotFoundError, match="pattern"):
        open_merra2(str(tmp_path / "nothing_*.nc4"))


def test_errors_time_axis(tmp_path):
    paths = _merra2_files(tmp_path, days=2)
    times = pd.Timestamp("2005-05-15 00:30") + pd.to_timedelta(np.arange(24), "h")
    copy = _write(_aod(times, M2_LAT, M2_LON), tmp_path / "reprocessed.nc4")
    for files in ([paths[0], paths[0], paths[1]], [paths[0], copy, paths[1]]):
        with pytest.raises(TimeAxisError, match="given twice"):
            open_merra2(files)
    shifted = _write(_aod(times + pd.Timedelta("12h"), M2_LAT, M2_LON), tmp_path / "half.nc4")
    with pytest.raises(TimeAxisError, match="both"):
        open_merra2([paths[0], shifted, paths[1]])
    times = pd.Timestamp("2005-07-01 00:30") + pd.to_timedelta(np.arange(24), "h")
    shuffled = _aod(times, M2_LAT, M2_LON).isel(time=np.r_[1, 0, 2:24])
    with pytest.raises(TimeAxisError, match="not increasing"):
        open_merra2(_write(shuffled, tmp_path / "shuffled.nc4"))
    dup = _aod(times, M2_LAT, M2_LON).assign_coords(time=times.insert(0, times[0])[:24])
    with pytest.raises(TimeAxisError, match="duplicated"):
        open_merra2(_write(dup, tmp_path / "dup.nc4"))
    partial = _write(_aod(times[:12], M2_LAT, M2_LON), tmp_path / "partial.nc4")
    with pytest.raises(TimeAxisError, match="fewer than the 24"):
        open_merra2(partial)
    assert open_merra2(partial, require_full_days=False).sizes["time"] == 1


def test_mismatched_grids_across_files(tmp_path):
    a = _merra2_files(tmp_path, days=1)[0]
    times = pd.Timestamp("2005-05-16 00:30") + pd.to_timedelta(np.arange(24), "h")
    b = _write(_aod(times, M2_LAT + 0.25, M2_LON), tmp_path / "shifted.nc4")
    with pytest.raises(GridMismatchError):
        open_merra2([a, b])


def test_negative_values_only_checked_on_request(tmp_path):
    values = RNG.random((24, 13, 11)).astype("float32")
    values[3, 4, 5] = -0.5
    times = pd.Timestamp("2005-05-15 00:30") + pd.to_timedelta(np.arange(24), "h")
    path = _write(_aod(times, M2_LAT, M2_LON, values), tmp_path / "neg.nc4")
    with raise_if_dask_computes():
        open_merra2(path, region=None)
    with pytest.raises(NegativeValueError, match="negative"):
        open_merra2(path, region=None, check_values=True)


# --- elevation --------------------------------------------------------------------------------

def _dem(tmp_path, name="dem.nc", var="Band1", units="m", extra=False):
    lat = 21.0 + (np.arange(60) + 0.5) / 120  # 30 arc-second cell centres
    lon = 41.0 + (np.arange(90) + 0.5) / 120
    z = RNG.integers(0, 3000, (60, 90)).astype("int16")
    da = xr.DataArray(z, dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                      attrs={} if units is None else {"units": units})
    ds = da.to_dataset(name=var)
    if extra:
        ds["crs"] = xr.DataArray(0)
        ds["slope"] = da * 0.1
    ds.to_netcdf(tmp_path / name)
    return tmp_path / name, da


def test_elevation_metres_feet_and_autodetect(tmp_path):
    path, ref = _dem(tmp_path)
    with raise_if_dask_computes():
        elev = open_elevation(path, region=(21.1, 21.4, 41.1, 41.6), pad=0.0)
    assert elev.name == "elevation" and elev.attrs["units"] == "m" and elev.dims == ("lat", "lon")
    sub = ref.sel(lat=slice(21.1, 21.4), lon=slice(41.1, 41.6))
    np.testing.assert_array_equal(elev.values, sub.values)
    # the default margin keeps the samples of the fine pixels centred on the box edge
    padded = open_elevation(path, region=(21.1, 21.4, 41.1, 41.6))
    np.testing.assert_array_equal(
        padded.values, ref.sel(lat=slice(21.0, 21.5), lon=slice(41.0, 41.7)).values)
    path, ref = _dem(tmp_path, "feet.nc", var="z", units="ft", extra=True)
    elev = open_elevation(path, region=None)
    np.testing.assert_allclose(elev.values, ref.values * 0.3048)  # 1 ft = 0.3048 m exactly
    assert "ft" in elev.attrs["comment"]
    path, ref = _dem(tmp_path, "km.nc", var="height", units="km")
    np.testing.assert_allclose(open_elevation(path, region=None).values, ref.values * 1000.0)
    path, ref = _dem(tmp_path, "none.nc", units=None)
    np.testing.assert_array_equal(open_elevation(path, region=None).values, ref.values)
    np.testing.assert_allclose(open_elevation(path, region=None, units="feet").values,
                               ref.values * 0.3048)


def test_elevation_errors(tmp_path):
    path, _ = _dem(tmp_path, "degc.nc", units="degC")
    with pytest.raises(UnitsError, match="length"):
        open_elevation(path, region=None)
    path, _ = _dem(tmp_path, "junk.nc", units="blorps")
    with pytest.raises(UnitsError, match="units="):
        open_elevation(path, region=None)
    path, ref = _dem(tmp_path, "two.nc", var="a")
    ref.to_dataset(name="a").assign(b=ref).to_netcdf(tmp_path / "two_vars.nc")
    with pytest.raises(MissingVariableError, match="Pass var="):
        open_elevation(tmp_path / "two_vars.nc", region=None)
    assert open_elevation(tmp_path / "two_vars.nc", region=None, var="b").shape == ref.shape
    ref.expand_dims(time=2).to_dataset(name="elevation").to_netcdf(tmp_path / "3d.nc")
    with pytest.raises(DimensionError, match="2-D"):
        open_elevation(tmp_path / "3d.nc", region=None)


def test_geotiff_without_rioxarray_reads_well(tmp_path):
    try:
        import rioxarray  # noqa: F401
    except Exception:
        pass
    else:
        pytest.skip("rioxarray is importable here")
    tif = tmp_path / "dem.tif"
    tif.write_bytes(b"II*\x00")
    with pytest.raises(MissingDependencyError, match="rioxarray") as err:
        open_elevation(tif)
    assert "pip install rioxarray" in str(err.value) and isinstance(err.value, ImportError)


def test_latlon_found_by_cf_standard_name_on_a_coordinate_named_apart_from_its_dim():
    from xdownscale._coords import get_latlon_names, standardize_dims

    da = xr.DataArray(np.zeros((3, 4)), dims=("j", "i"), coords={
        "nav_latitude": ("j", [20.0, 21.0, 22.0], {"standard_name": "latitude"}),
        "glamt": ("i", [40.0, 41.0, 42.0, 43.0], {"units": "degrees_east"})})
    assert get_latlon_names(da) == ("j", "i")
    assert standardize_dims(da).dims == ("lat", "lon")
    with pytest.raises(DimensionError, match="CF conventions mark as longitude"):
        get_latlon_names(da.drop_vars("glamt"))
