"""Tests of xdownscale.data.transforms: log10, the non-negativity check and the Scaler."""

from __future__ import annotations

import json

import dask.array as dsa
import numpy as np
import pytest
import torch
import xarray as xr
from conftest import raise_if_dask_computes

from xdownscale.data.transforms import (
    Scaler,
    ScalingError,
    check_nonnegative,
    inverse_log10,
    log10_transform,
)
from xdownscale.errors import ConfigError, NegativeValueError, NotFittedError

RNG = np.random.default_rng(42)


def _field(backend, values=None, units="1"):
    values = RNG.gamma(0.5, 0.2, (5, 4, 3)).astype("float32") if values is None else values
    values[0, 0, 0] = np.nan
    values[1, 1, 1] = 0.0
    data = dsa.from_array(values, chunks=(2, 3, 3)) if backend == "dask" else values
    return xr.DataArray(data, dims=("time", "lat", "lon"), name="DUEXTTAU",
                        attrs={"units": units, "long_name": "dust AOD"})


def _reference_log10(x, eps=1e-6):
    # independent of the kernel: an explicit loop-free clamp with np.where
    x = np.asarray(x, dtype=np.float64)
    return np.log10(np.where(x < eps, eps, x))


# --------------------------------------------------------------------------- log10


def test_log10_numpy_values_and_nan():
    x = np.array([-0.5, 0.0, 1e-7, 1e-6, 0.02, 3.0, np.nan])
    out = log10_transform(x)
    np.testing.assert_allclose(out[:-1], [-6, -6, -6, -6, np.log10(0.02), np.log10(3.0)])
    assert np.isnan(out[-1])
    assert log10_transform(np.float32([0.5])).dtype == np.float32
    np.testing.assert_allclose(log10_transform([1, 100], eps=1e-3), [0.0, 2.0])


def test_log10_torch_matches_numpy():
    x = np.array([0.0, 1e-4, np.nan, 2.5], dtype=np.float32)
    out = log10_transform(torch.from_numpy(x))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), _reference_log10(x), rtol=1e-6, equal_nan=True)
    back = inverse_log10(out)
    assert isinstance(back, torch.Tensor)
    np.testing.assert_allclose(back.numpy()[[1, 3]], x[[1, 3]], rtol=1e-5)


def test_log10_xarray_lazy_attrs(backend):
    da = _field(backend)
    with raise_if_dask_computes():
        out = log10_transform(da, eps=1e-5)
    assert out.attrs == {"units": "log10(1)", "long_name": "dust AOD", "log10_eps": 1e-5}
    assert out.dtype == np.float32
    assert (out.chunks is not None) == (backend == "dask")
    np.testing.assert_allclose(out.values, _reference_log10(da.values, 1e-5), rtol=1e-6,
                               equal_nan=True)
    with raise_if_dask_computes():
        back = inverse_log10(out)
    assert back.attrs == {"units": "1", "long_name": "dust AOD"}
    keep = np.isfinite(da.values) & (da.values >= 1e-5)
    np.testing.assert_allclose(back.values[keep], da.values[keep], rtol=1e-5)
    assert np.isnan(back.values[0, 0, 0])


def test_log10_dataset_maps_variables():
    ds = xr.Dataset({"a": _field("numpy", units="m-1"), "b": _field("numpy")})
    out = log10_transform(ds)
    assert out["a"].attrs["units"] == "log10(m-1)"
    np.testing.assert_allclose(out["b"].values, _reference_log10(ds["b"].values), rtol=1e-6,
                               equal_nan=True)
    assert inverse_log10(out)["a"].attrs["units"] == "m-1"


@pytest.mark.parametrize("eps", [0, -1e-6, np.nan, "x"])
def test_log10_bad_eps(eps):
    with pytest.raises(ConfigError, match="eps"):
        log10_transform(np.ones(3), eps=eps)


# --------------------------------------------------------------------------- check_nonnegative


def test_check_nonnegative_eager():
    ok = np.array([0.0, -5e-6, np.nan, 1.0])
    assert check_nonnegative(ok) is ok
    with pytest.raises(NegativeValueError, match="2 value"):
        check_nonnegative(np.array([0.1, -0.2, -1e-3]))
    with pytest.raises(NegativeValueError):
        check_nonnegative(torch.tensor([-1.0]))
    ds = xr.Dataset({"DUEXTTAU": ("x", [-1.0, 1.0]), "other": ("x", [1.0, 1.0])})
    with pytest.raises(NegativeValueError):
        check_nonnegative(ds)
    assert check_nonnegative(ds, var="other") is ds


def test_check_nonnegative_dask_is_lazy():
    da = xr.DataArray(dsa.from_array(np.array([1.0, np.nan, -0.5, 2.0]), chunks=2), dims="x")
    with raise_if_dask_computes():
        checked = check_nonnegative(da)
    with pytest.raises(NegativeValueError):
        checked.compute()
    ds = xr.Dataset({"DUEXTTAU": da.clip(min=0)})
    np.testing.assert_array_equal(check_nonnegative(ds)["DUEXTTAU"].values, [1, np.nan, 0, 2])
    with pytest.raises(NegativeValueError):
        check_nonnegative(da.data).compute()


# --------------------------------------------------------------------------- Scaler


@pytest.mark.parametrize("kind", ["minmax", "zscore"])
def test_scaler_pools_all_arrays(kind, backend):
    a, b = _field(backend), _field(backend) * 3 + 1
    pooled = np.concatenate([a.values.ravel(), b.values.ravel()]).astype(np.float64)
    pooled = pooled[~np.isnan(pooled)]
    with raise_if_dask_computes(1):  # exactly one compute for both arrays together
        s = Scaler(kind).fit(a, b)
    if kind == "minmax":
        assert (s.offset_, s.scale_) == pytest.approx((pooled.min(), np.ptp(pooled)))
    else:
        assert (s.offset_, s.scale_) == pytest.approx((pooled.mean(), pooled.std()))
    assert s.n_ == pooled.size


def test_scaler_zscore_precise_with_large_offset():
    parts = [RNG.normal(1e8, 1e-2, 1000), RNG.normal(1e8, 1e-2, 10)]
    pooled = np.concatenate(parts)
    s = Scaler("zscore").fit(*parts)
    ref = np.sqrt(np.mean((pooled - pooled.mean()) ** 2))
    assert s.scale_ == pytest.approx(ref, rel=1e-6)


def test_scaler_mixed_inputs_and_all_nan_array():
    s = Scaler().fit(torch.tensor([1.0, 5.0]), [2.0, np.nan], np.full(3, np.nan))
    assert (s.offset_, s.scale_, s.n_) == (1.0, 4.0, 3)
    np.testing.assert_allclose(s.transform(np.array([1.0, 3.0, 5.0])), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("kind", ["minmax", "zscore"])
def test_scaler_round_trip(kind, backend):
    da = log10_transform(_field(backend))
    s = Scaler(kind).fit(da)
    with raise_if_dask_computes():
        scaled = s.transform(da)
        back = s.inverse_transform(scaled)
    assert scaled.attrs == da.attrs and scaled.dtype == np.float32
    assert (scaled.chunks is not None) == (backend == "dask")
    if kind == "minmax":
        assert np.nanmin(scaled.values) == pytest.approx(0, abs=1e-6)
        assert np.nanmax(scaled.values) == pytest.approx(1, abs=1e-6)
    else:
        assert np.nanmean(scaled.values) == pytest.approx(0, abs=1e-5)
        assert np.nanstd(scaled.values) == pytest.approx(1, abs=1e-5)
    np.testing.assert_allclose(back.values, da.values, rtol=1e-5, atol=1e-5, equal_nan=True)
    t = torch.from_numpy(da.values)
    np.testing.assert_allclose(s.inverse_transform(s.transform(t)).numpy(), da.values,
                               rtol=1e-5, atol=1e-5, equal_nan=True)


def test_scaler_dict_round_trip_is_json():
    s = Scaler("zscore").fit(np.array([0.5, 1.5, 4.0]))
    d = json.loads(json.dumps(s.to_dict()))
    s2 = Scaler.from_dict(d)
    assert (s2.kind, s2.offset_, s2.scale_, s2.n_) == (s.kind, s.offset_, s.scale_, s.n_)
    x = np.linspace(-1, 5, 7)
    np.testing.assert_array_equal(s2.transform(x), s.transform(x))


def test_scaler_not_fitted():
    s = Scaler()
    for call in (lambda: s.transform(np.ones(2)), lambda: s.inverse_transform(np.ones(2)),
                 s.to_dict):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    with pytest.raises(AttributeError):  # NotFittedError is an AttributeError too
        s.transform(np.ones(2))
    assert "not fitted" in repr(s)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [((np.full(4, 2.0), [2.0, np.nan]), "scale would be zero"),
     ((np.full(3, np.nan),), "NaN"),
     ((np.array([1.0, np.inf]),), "infinite")],
)
def test_scaler_degenerate_data(arrays, match):
    for kind in ("minmax", "zscore"):
        with pytest.raises(ScalingError, match=match):
            Scaler(kind).fit(*arrays)


def test_scaler_bad_arguments():
    with pytest.raises(ConfigError):
        Scaler("robust")
    with pytest.raises(ConfigError):
        Scaler().fit()
    with pytest.raises(ConfigError):
        Scaler.from_dict({"kind": "minmax", "offset": 0.0})
    with pytest.raises(ConfigError):
        Scaler.from_dict({"kind": "minmax", "offset": 0.0, "scale": 0.0})
    with pytest.raises(TypeError, match="DataArrays"):
        Scaler().fit(xr.Dataset({"a": ("x", [1.0, 2.0])}))
