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


def test_prediction_files_are_cf_and_do_not_claim_the_inputs_provenance():
    from types import SimpleNamespace

    from xdownscale.predict.labelled import _to_dataset

    est = SimpleNamespace(var_="DUEXTTAU", model="ddpm", lat_=np.array([0.0, 1.0]),
                          lon_=np.array([5.0, 6.0, 7.0]),
                          attrs_={**INPUT_ATTRS, "history": "read from G5NR files"})
    values = np.random.default_rng(0).random((2, 3, 2, 3)).astype("float32")
    ds = _to_dataset(est, pd.date_range("2006-07-01", periods=3), values, 2, True, "ddim", 20,
                     "posthoc", 0)
    assert ds.attrs["Conventions"].startswith("CF-") and "xdownscale" in ds.attrs["history"]
    assert ds.attrs["source"].startswith("xdownscale")
    for v in ds.data_vars:
        assert "source" not in ds[v].attrs and "history" not in ds[v].attrs
        cf_units.units.parse_units(ds[v].attrs["units"])
    assert ds["DUEXTTAU"].attrs["long_name"] == INPUT_ATTRS["long_name"]
    assert ds["time"].attrs["standard_name"] == "time" and ds["time"].attrs["axis"] == "T"
    assert ds["lat"].attrs["units"] == "degrees_north"


def test_rollout_stores_do_not_claim_the_inputs_provenance(tmp_path):
    from types import SimpleNamespace

    from xdownscale.predict.rollout import _empty

    est = SimpleNamespace(var_="DUEXTTAU", attrs_={**INPUT_ATTRS, "history": "read from G5NR"})
    tmpl = xr.Dataset(coords={"lat": [0.0, 1.0], "lon": [5.0, 6.0, 7.0]})
    from xdownscale.predict.labelled import field_attrs

    ds = _empty(pd.date_range("2006-07-01", periods=2), tmpl, "DUEXTTAU", 2, field_attrs(est))
    for v in ds.data_vars:
        assert "source" not in ds[v].attrs and "history" not in ds[v].attrs
    assert ds["DUEXTTAU"].attrs["long_name"] == INPUT_ATTRS["long_name"]
    assert ds["DUEXTTAU"].attrs["units"] == "1"
