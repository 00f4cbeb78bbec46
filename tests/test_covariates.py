"""Tests of xdownscale.data.covariates: spec fitting and hand-worked covariate maps."""

from __future__ import annotations

import json

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

from xdownscale.data.covariates import (
    COVARIATE_NAMES,
    CovariateSpec,
    covariate_maps,
    covariate_stack,
    covariates_like,
)
from xdownscale.errors import ConfigError, GridMismatchError

LAT = np.array([10.0, 15.0, 20.0])
LON = np.array([30.0, 40.0])
ELEV = np.array([[0.0, 100.0], [200.0, 300.0], [400.0, np.nan]])
TIMES = pd.date_range("2005-05-15", "2007-06-16")


@pytest.fixture
def spec():
    return CovariateSpec.from_data(TIMES.to_numpy(), ELEV, LAT, LON)


def test_from_data_hand_values(spec):
    # mean of 0..400 step 100 is 200; population std sqrt((4e4+1e4+0+1e4+4e4)/5) = sqrt(2e4)
    assert spec.origin == "2005-05-15"
    assert (spec.year_min, spec.year_max) == (2005, 2007)
    assert spec.elev_offset == pytest.approx(200.0)
    assert spec.elev_scale == pytest.approx(np.sqrt(2e4))
    assert (spec.lat_min, spec.lat_max, spec.lon_min, spec.lon_max) == (10, 20, 30, 40)


def test_maps_hand_worked(spec):
    maps = covariate_maps(spec, np.datetime64("2006-05-15"), LAT, LON, ELEV)
    assert maps.shape == (6, 3, 2) and maps.dtype == np.float32
    s = np.sqrt(2e4)
    np.testing.assert_allclose(maps[0], (ELEV - 200) / s, rtol=1e-6)
    assert np.isnan(maps[0, 2, 1])  # missing elevation stays missing
    np.testing.assert_array_equal(maps[1], [[-1, -1], [0, 0], [1, 1]])
    np.testing.assert_array_equal(maps[2], [[-1, 1]] * 3)
    np.testing.assert_array_equal(maps[3], 1.0)  # May -> MAM -> 1
    np.testing.assert_allclose(maps[4], 365 / 365.25, rtol=1e-6)
    np.testing.assert_array_equal(maps[5], 0.5)  # (2006 - 2005) / (2007 - 2005)


@pytest.mark.parametrize(
    ("day", "season", "days", "year"),
    [("2005-12-31", 0, 230, 0.0), ("2006-01-01", 0, 231, 0.5), ("2006-03-01", 1, 290, 0.5),
     ("2006-08-31", 2, 473, 0.5), ("2006-11-30", 3, 564, 0.5), ("2007-12-01", 0, 930, 1.0),
     ("2009-02-01", 0, 1358, 2.0), ("2005-05-01", 1, -14, 0.0)],
)
def test_calendar_channels(spec, day, season, days, year):
    # day counts by hand from 2005-05-15; days after year_max extrapolate (not clipped)
    maps = covariate_maps(spec, pd.Timestamp(day), LAT, LON, ELEV)
    assert maps[3, 0, 0] == season
    assert maps[4, 0, 0] == pytest.approx(days / 365.25, rel=1e-6)
    assert maps[5, 0, 0] == pytest.approx(year)


def test_stack_equals_per_day_loop(spec):
    days = pd.DatetimeIndex(["2005-06-01", "2006-01-15", "2007-04-30"])
    stack = covariate_stack(spec, days.to_numpy(), LAT, LON, ELEV)
    assert stack.shape == (3, len(COVARIATE_NAMES), 3, 2) and stack.dtype == np.float32
    for i, d in enumerate(days):
        np.testing.assert_array_equal(stack[i], covariate_maps(spec, d, LAT, LON, ELEV))


def test_single_year_constant_elevation_and_grid_bounds():
    spec = CovariateSpec.from_data(pd.date_range("2006-01-01", periods=5), np.zeros((3, 2)))
    assert spec.elev_scale == 1.0 and spec.lat_min is None
    maps = covariate_maps(spec, "2006-01-03", LAT, LON, np.zeros((3, 2)))
    np.testing.assert_array_equal(maps[0], 0.0)
    np.testing.assert_array_equal(maps[5], 0.0)
    np.testing.assert_array_equal(maps[1][:, 0], [-1, 0, 1])  # bounds of the grid passed
    np.testing.assert_array_equal(covariate_maps(spec, "2006-01-03", [5.0], LON,
                                                 np.zeros((1, 2)))[1], 0.0)


def test_from_data_reads_dataarray_coords():
    elev = xr.DataArray(ELEV, dims=("lat", "lon"), coords={"lat": LAT, "lon": LON})
    spec = CovariateSpec.from_data(TIMES, elev)
    assert (spec.lat_min, spec.lon_max) == (10.0, 40.0)


def test_dict_round_trip(spec):
    d = json.loads(json.dumps(spec.to_dict()))
    assert CovariateSpec.from_dict(d) == spec
    with pytest.raises(ConfigError, match="unknown"):
        CovariateSpec.from_dict({**d, "extra": 1})
    with pytest.raises(ConfigError):
        CovariateSpec.from_dict({"origin": "2005-01-01"})


@pytest.mark.parametrize(
    "kwargs",
    [dict(year_min=2007, year_max=2005), dict(elev_scale=0.0), dict(elev_offset=np.nan),
     dict(lat_min=1.0), dict(lat_min=2.0, lat_max=1.0), dict(origin="not a day"),
     dict(days_scale=-1.0)],
)
def test_invalid_spec(kwargs):
    base = dict(origin="2005-05-15", year_min=2005, year_max=2007)
    with pytest.raises(ConfigError):
        CovariateSpec(**{**base, **kwargs})


def test_grid_mismatch(spec):
    with pytest.raises(GridMismatchError):
        covariate_maps(spec, "2006-01-01", LAT, LON, ELEV.T)
    with pytest.raises(ConfigError):
        CovariateSpec.from_data([], ELEV)


def test_covariates_like_lazy(spec, backend):
    times = pd.date_range("2006-02-25", periods=7)
    values = np.zeros((7, 3, 2), dtype="float32")
    data = dsa.from_array(values, chunks=(3, 3, 2)) if backend == "dask" else values
    da = xr.DataArray(data, dims=("time", "lat", "lon"),
                      coords={"time": times, "lat": LAT, "lon": LON})
    with raise_if_dask_computes():
        out = covariates_like(da, spec, ELEV)
    assert out.dims == ("time", "covariate", "lat", "lon")
    assert out["covariate"].values.tolist() == list(COVARIATE_NAMES)
    if backend == "dask":
        assert out.chunks[0] == (3, 3, 1)
    np.testing.assert_array_equal(out.values, covariate_stack(spec, times, LAT, LON, ELEV))
