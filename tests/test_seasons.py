"""Tests of xdownscale.data.seasons: season names, buffered season blocks and the temporal split."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import raise_if_dask_computes

from xdownscale.data.seasons import SEASONS, season_of, seasons, split
from xdownscale.errors import ConfigError, DimensionError, TimeAxisError

MONTH_TO_SEASON = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM",
                   6: "JJA", 7: "JJA", 8: "JJA", 9: "SON", 10: "SON", 11: "SON"}


def _record(times, backend="numpy"):
    times = pd.DatetimeIndex(times)
    values = np.arange(times.size * 4, dtype="float32").reshape(times.size, 2, 2)
    data = dsa.from_array(values, chunks=(50, 2, 1)) if backend == "dask" else values
    return xr.Dataset(
        {"DUEXTTAU": (("time", "lat", "lon"), data), "other": ("time", np.zeros(times.size))},
        coords={"time": times, "lat": [1.0, 2.0], "lon": [3.0, 4.0]},
    )


def _brute_force(times, buffer_days):
    """Reference by loops: season blocks from season-years, buffers from date arithmetic."""
    times = pd.DatetimeIndex(times)
    present = set(times)
    out = {}
    for name in SEASONS:
        targets = [t for t in times if MONTH_TO_SEASON[t.month] == name]
        if not targets:
            continue
        # season-year of a day: December belongs to the next year's DJF
        blocks = {}
        for t in targets:
            blocks.setdefault(t.year + (t.month == 12), []).append(t)
        buffers = set()
        for block in blocks.values():
            first = min(block)
            for k in range(1, buffer_days + 1):
                day = first - pd.Timedelta(days=k)
                if day in present and MONTH_TO_SEASON[day.month] != name:
                    buffers.add(day)
        out[name] = (sorted(targets), sorted(buffers))
    return out


def test_season_of_every_month():
    days = pd.date_range("2005-01-15", periods=24, freq="MS") + pd.Timedelta(days=14)
    assert season_of(days).tolist() == [MONTH_TO_SEASON[d.month] for d in days]
    assert season_of(np.datetime64("2006-02-28")).tolist() == ["DJF"]
    assert season_of(xr.DataArray(days[:2].to_numpy())).dtype.kind == "U"
    with pytest.raises(TimeAxisError):
        season_of(["not a date"])


def test_djf_hand_counted():
    out = seasons(_record(pd.date_range("2005-05-15", "2007-06-15")), buffer_days=45)
    assert list(out) == list(SEASONS)
    djf = out["DJF"]
    target = djf["time"].to_index()[djf["target"].values]
    buffer = djf["time"].to_index()[~djf["target"].values]
    expected = pd.date_range("2005-12-01", "2006-02-28").append(
        pd.date_range("2006-12-01", "2007-02-28"))
    assert target.equals(expected) and target.size == 180
    assert buffer.equals(pd.date_range("2005-10-17", "2005-11-30").append(
        pd.date_range("2006-10-17", "2006-11-30")))
    assert djf["time"].to_index().is_monotonic_increasing
    # the record starts inside MAM 2005: 17 target days, no buffer before them
    mam = out["MAM"]
    assert int(mam["target"].sum()) == 17 + 92 + 92
    assert mam["time"].values[0] == np.datetime64("2005-05-15")
    assert int((~mam["target"]).sum()) == 90


def test_paper_table1_counts():
    # Table 1 n_days (270/291/292/272) are target + buffer days. A record
    # 2005-05-15..2007-06-01 reproduces all four; the stated 763 days (to 2007-06-16)
    # reproduce DJF/MAM/SON but give JJA 15 more days (307).
    def counts(end):
        out = seasons(_record(pd.date_range("2005-05-15", end)), buffer_days=45)
        return [out[s].sizes["time"] for s in SEASONS]

    assert counts("2007-06-01") == [270, 291, 292, 272]
    assert counts(pd.Timestamp("2005-05-15") + pd.Timedelta(days=762)) == [270, 291, 307, 272]


@pytest.mark.parametrize("buffer_days", [0, 10, 45, 100])
def test_matches_brute_force_with_gaps(buffer_days):
    rng = np.random.default_rng(buffer_days)
    days = pd.date_range("2003-09-20", "2006-04-10")
    days = days[rng.random(days.size) > 0.15]  # random gaps everywhere
    days = days[(days < "2004-12-10") | (days > "2005-01-05")]  # a long gap inside a DJF
    out = seasons(_record(days), buffer_days=buffer_days)
    ref = _brute_force(days, buffer_days)
    assert list(out) == list(ref)
    for name, (targets, buffers) in ref.items():
        idx = out[name]["time"].to_index()
        mask = out[name]["target"].values
        assert list(idx[mask]) == targets
        assert list(idx[~mask]) == buffers


def test_lazy_and_dataarray(backend):
    ds = _record(pd.date_range("2005-11-01", "2006-06-30"), backend)
    with raise_if_dask_computes():
        out = seasons(ds)
        parts = split(out["MAM"])
        da_out = seasons(ds["DUEXTTAU"], buffer_days=5)
    assert set(out["DJF"].data_vars) == {"DUEXTTAU", "other"}
    assert (out["DJF"]["DUEXTTAU"].chunks is not None) == (backend == "dask")
    assert isinstance(da_out["JJA"], xr.DataArray)
    assert int((~da_out["JJA"]["target"]).sum()) == 5
    np.testing.assert_array_equal(out["DJF"]["DUEXTTAU"].values,
                                  ds["DUEXTTAU"].sel(time=out["DJF"]["time"]).values)
    assert parts["test"].sizes["time"] == 9


def test_seasons_errors():
    ds = _record(pd.date_range("2006-01-01", periods=10))
    with pytest.raises(ConfigError):
        seasons(ds, buffer_days=-1)
    with pytest.raises(ConfigError):
        seasons(ds, buffer_days=4.5)
    with pytest.raises(TimeAxisError, match="increasing"):
        seasons(ds.isel(time=slice(None, None, -1)))
    with pytest.raises(TimeAxisError, match="daily"):
        seasons(_record(pd.date_range("2006-01-01", periods=4, freq="12h")))
    with pytest.raises(DimensionError):
        seasons(ds.rename(time="t"))
    assert list(seasons(ds.rename(time="t"), time="t")) == ["DJF"]


# --------------------------------------------------------------------------- split


def test_split_counts_order_and_targets_only():
    blocks = seasons(_record(pd.date_range("2005-05-15", "2007-06-15")))
    parts = split(blocks["DJF"], seed=3)
    sizes = [parts[k].sizes["time"] for k in ("train", "val", "test")]
    assert sizes == [144, 18, 18]
    times = [parts[k]["time"].values for k in ("train", "val", "test")]
    assert times[0].max() < times[1].min() and times[1].max() < times[2].min()
    every = np.concatenate(times)
    target_days = blocks["DJF"]["time"].values[blocks["DJF"]["target"].values]
    np.testing.assert_array_equal(every, target_days)  # all targets, no buffer day, in order
    hold = parts["train"]["holdout"]
    assert hold.dtype == bool and hold.dims == ("time",) and int(hold.sum()) == 29
    assert "holdout" not in parts["val"].coords


def test_split_holdout_is_seeded():
    ds = _record(pd.date_range("2006-06-01", periods=100))
    a, b, c = (split(ds, seed=s)["train"]["holdout"].values for s in (0, 0, 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.sum() == 16  # round(0.2 * 80)


@pytest.mark.parametrize(
    ("n", "shares", "holdout", "expected", "n_hold"),
    [(10, (0.8, 0.1, 0.1), 0.2, [8, 1, 1], 2),
     (3, (0.8, 0.1, 0.1), 0.2, [1, 1, 1], 0),
     (7, (0.7, 0.3, 0.0), 0.0, [5, 2, 0], 0),
     (25, (0.8, 0.1, 0.1), 0.5, [20, 3, 2], 10),  # boundaries 20 and round(22.5) = 23
     (15, (0.8, 0.1, 0.1), 0.2, [12, 2, 1], 2),
     (5, (0.5, 0.4, 0.1), 0.2, [2, 2, 1], 1)],  # boundaries 3 and 5; test takes 1 from train
)
def test_split_rounding(n, shares, holdout, expected, n_hold):
    parts = split(_record(pd.date_range("2006-06-01", periods=n)), *shares, holdout=holdout)
    assert [parts[k].sizes["time"] for k in ("train", "val", "test")] == expected
    assert int(parts["train"]["holdout"].sum()) == n_hold


@pytest.mark.parametrize(
    "kwargs",
    [dict(train=0.7, val=0.1, test=0.1), dict(train=1.1, val=-0.05, test=-0.05),
     dict(train=0.0, val=0.5, test=0.5), dict(holdout=1.0), dict(holdout=-0.1),
     dict(train="a")],
)
def test_split_bad_fractions(kwargs):
    with pytest.raises(ConfigError):
        split(_record(pd.date_range("2006-06-01", periods=20)), **kwargs)


def test_split_too_few_days():
    with pytest.raises(ConfigError, match="need at least 3"):
        split(_record(pd.date_range("2006-06-01", periods=2)))
