"""The accessors forward to the module functions with their real signatures and docstrings."""

from __future__ import annotations

import inspect
from importlib import import_module

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale.accessors import DownscaleAccessor, DustDiagAccessor, _forward

FORWARDS = [(acc, name, attr) for acc in (DownscaleAccessor, DustDiagAccessor)
            for name, attr in vars(acc).items() if isinstance(attr, _forward)]


def _data():
    coords = {"time": pd.date_range("2006-07-01", periods=4), "lat": [0.0, 1.0, 2.0],
              "lon": [10.0, 11.0]}
    return xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), np.random.default_rng(0).random(
        (4, 3, 2)) + 0.1)}, coords=coords)


@pytest.mark.parametrize(("acc", "name", "attr"), FORWARDS, ids=lambda x: getattr(x, "__name__",
                                                                                  str(x)))
def test_signature_and_doc_equal_the_functions(acc, name, attr):
    func = getattr(import_module(attr.module), attr.func_name)
    accessor_name = "downscale" if acc is DownscaleAccessor else "dustdiag"
    method = getattr(getattr(_data(), accessor_name), name)
    params = list(inspect.signature(func).parameters.values())[1:]
    assert list(inspect.signature(method).parameters.values()) == params
    assert method.__doc__ == func.__doc__ and func.__doc__
    assert method.__name__ == name


def test_the_expected_methods_exist():
    names = {n for a, n, _ in FORWARDS}
    assert {"summary", "wasserstein", "semivariogram", "acf", "pacf", "lag_metrics", "skill",
            "plot_semivariogram", "plot_acf", "plot_lag_metrics", "plot_map", "regrid_like",
            "seasons", "split", "fit", "clip", "log10"} <= names


def test_forwarding_and_the_neutral_alias():
    ds = _data()
    assert type(ds.diag) is type(ds.dustdiag) and type(ds["DUEXTTAU"].diag) is DustDiagAccessor
    xr.testing.assert_identical(ds.diag.skill(ds), xdownscale.diagnostics.skill(ds, ds))
    xr.testing.assert_identical(ds["DUEXTTAU"].dustdiag.acf(nlags=2),
                                xdownscale.diagnostics.acf(ds, nlags=2))
    assert "var" in inspect.signature(ds.dustdiag.semivariogram).parameters


def test_class_access_documents_the_function():
    assert DustDiagAccessor.skill.__doc__ == xdownscale.diagnostics.skill.__doc__
