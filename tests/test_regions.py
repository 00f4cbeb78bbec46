"""Regions and clipping: the paper's grid sizes, odd coordinate conventions, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

from xdownscale.data.regions import REGIONS, Region, clip, get_region, normalize_lonlat
from xdownscale.errors import RegionError

G5NR_STEP = 0.0625


def _field(lat, lon, *, dims=("lat", "lon")):
    data = np.add.outer(np.asarray(lat) * 1000.0, np.asarray(lon))  # value encodes the position
    return xr.DataArray(data, dims=dims, coords={dims[0]: lat, dims[1]: lon}, name="DUEXTTAU")


def _g5nr_axis(lo, hi):
    """Centres at multiples of 0.0625 degrees covering [lo, hi] with a margin."""
    return G5NR_STEP * np.arange(np.floor(lo / G5NR_STEP) - 3, np.ceil(hi / G5NR_STEP) + 4)


@pytest.mark.parametrize(("name", "shape"), [("A1", (432, 357)), ("A0", (224, 318))])
def test_paper_fine_grid_sizes(name, shape):
    box = REGIONS[name]
    field = _field(_g5nr_axis(box.lat_min, box.lat_max), _g5nr_axis(box.lon_min, box.lon_max))
    out = clip(field, name)
    assert out.shape == shape
    # independent count of multiples of 0.0625 inside the box
    n_lat = int(np.floor(box.lat_max / G5NR_STEP) - np.ceil(box.lat_min / G5NR_STEP) + 1)
    n_lon = int(np.floor(box.lon_max / G5NR_STEP) - np.ceil(box.lon_min / G5NR_STEP) + 1)
    assert (n_lat, n_lon) == shape
    assert out.lat.min() >= box.lat_min and out.lat.max() <= box.lat_max
    assert out.attrs["xdownscale_region"] == name


def test_descending_latitudes_give_the_ascending_result():
    lat, lon = 0.5 * np.arange(0, 80), 0.625 * np.arange(-30, 30)
    asc = clip(_field(lat, lon), (10.0, 20.0, -5.0, 5.0))
    desc = clip(_field(lat[::-1], lon), (10.0, 20.0, -5.0, 5.0))
    assert asc.sizes["lat"] == 21
    xr.testing.assert_identical(asc, desc)


def test_0_360_longitudes_are_wrapped_and_sorted():
    lon360 = 0.625 * np.arange(576)  # 0 .. 359.375
    lat = 0.5 * np.arange(-4, 5)
    field = _field(lat, lon360)
    out = clip(field, (-1.0, 1.0, -10.0, 10.0))  # straddles the Greenwich meridian
    expected_lon = lon360[(lon360 <= 10) | (lon360 >= 350)]
    expected_lon = np.sort(np.where(expected_lon >= 180, expected_lon - 360, expected_lon))
    np.testing.assert_allclose(out.lon.values, expected_lon)
    # each value still sits at its own position (lon 355 -> -5)
    pick = out.sel(lat=0.0, lon=-5.0).item()
    assert pick == field.sel(lat=0.0, lon=355.0).item()
    normalised = normalize_lonlat(field)
    assert normalised.lon.min() >= -180 and normalised.lon.max() < 180
    assert bool((np.diff(normalised.lon.values) > 0).all())


def test_custom_regions_and_pad():
    lat, lon = 0.5 * np.arange(0, 40), 0.5 * np.arange(0, 40)
    field = _field(lat, lon)
    out = clip(field, (5.0, 6.0, 7.0, 8.0))
    np.testing.assert_allclose(out.lat.values, [5.0, 5.5, 6.0])
    padded = clip(field, (5.0, 6.0, 7.0, 8.0), pad=1.0)
    np.testing.assert_allclose(padded.lon.values, 0.5 * np.arange(12, 19))
    assert clip(field, Region("mine", 5.0, 6.0, 7.0, 8.0)).attrs["xdownscale_region"] == "mine"
    as_dict = get_region({"name": "d", "lat_min": 1, "lat_max": 2, "lon_min": 3, "lon_max": 4})
    assert as_dict.bounds == (1, 2, 3, 4) and get_region(as_dict.to_dict()) == as_dict
    assert REGIONS["A1"].pad(250).bounds == (-90.0, 90.0, -180.0, 180.0)


def test_cf_named_dims_and_dataset_are_normalised(backend):
    lat, lon = 0.5 * np.arange(20, 0, -1), 0.625 * np.arange(0, 16)
    ds = _field(lat, lon, dims=("latitude", "longitude")).to_dataset()
    if backend == "dask":
        ds = ds.chunk(latitude=5)
    with raise_if_dask_computes():
        out = clip(ds, (2.0, 6.0, 1.0, 5.0))
    assert out.DUEXTTAU.dims == ("lat", "lon")
    np.testing.assert_allclose(out.lat.values, 0.5 * np.arange(4, 13))
    np.testing.assert_allclose(out.DUEXTTAU.values,
                               np.add.outer(out.lat.values * 1000.0, out.lon.values))


def test_region_errors():
    field = _field(0.5 * np.arange(10), 0.5 * np.arange(10))
    with pytest.raises(RegionError, match="no grid point.*covers lat 0.0..4.5"):
        clip(field, (40.0, 50.0, 0.0, 4.0))
    with pytest.raises(RegionError, match="unknown region 'A9'"):
        get_region("A9")
    with pytest.raises(RegionError, match="lat_min < lat_max"):
        Region("bad", 10.0, 5.0, 0.0, 1.0)
    with pytest.raises(RegionError, match="antimeridian"):
        Region("bad", 0.0, 5.0, 170.0, 190.0)
    with pytest.raises(RegionError, match="cannot make a region"):
        get_region((1.0, 2.0, 3.0))
