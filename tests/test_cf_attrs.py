"""Every diagnostic output carries its own CF attributes: valid UDUNITS, nothing of the input's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdownscale  # noqa: F401

cf_units = pytest.importorskip("cf_xarray.units")

INPUT_ATTRS = {"long_name": "dust extinction AOD", "units": "1", "source": "G5NR (claimed)"}


def _ds(units="1"):
    coords = {"time": pd.date_range("2006-07-01", periods=20), "lat": [0.0, 0.5, 1.0, 1.5],
              "lon": [10.0, 10.5, 11.0]}
    data = np.random.default_rng(0).random((20, 4, 3)) + 0.1
    return xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), data,
                                    {**INPUT_ATTRS, "units": units})}, coords=coords)


def _results(ds):
    d = ds.dustdiag
    return {"acf": d.acf(nlags=3), "pacf": d.pacf(nlags=3), "lag_metrics": d.lag_metrics(max_lag=2),
            "skill": d.skill(ds),
            "semivariogram": d.semivariogram(n_pairs=20, max_dist_km=200, n_bins=3),
            "correlogram": xdownscale.diagnostics.correlogram(ds, 3)}


@pytest.mark.filterwarnings("ignore::scipy.optimize.OptimizeWarning")
@pytest.mark.parametrize("units", ["1", "kg m-2"])
def test_outputs_have_valid_units_and_no_input_attrs(units):
    for name, res in _results(_ds(units)).items():
        for v in res.data_vars:
            attrs = res[v].attrs
            assert attrs.get("source") is None, (name, v)
            assert attrs.get("long_name") not in (None, INPUT_ATTRS["long_name"]), (name, v)
            if "units" in attrs:
                cf_units.units.parse_units(attrs["units"])  # raises on non-UDUNITS strings
            elif res[v].dtype != bool:
                assert "comment" in attrs, (name, v)  # the units differ by space; say so
        for c in res.coords:
            if "units" in res[c].attrs:
                cf_units.units.parse_units(res[c].attrs["units"])
