"""Tests of xdownscale.data.lags: calendar lag windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xdownscale.data.lags import LagWindows, lag_windows, window_mask
from xdownscale.errors import ConfigError, LagWindowError, TimeAxisError


def _brute_force(targets, record, n_lags):
    """Reference by a plain loop over dates."""
    where = {pd.Timestamp(t): i for i, t in enumerate(record)}
    index, valid = [], []
    for t in pd.DatetimeIndex(targets):
        row = [where.get(t - pd.Timedelta(days=k), -1) for k in range(n_lags, 0, -1)]
        index.append(row)
        valid.append(min(row) >= 0)
    return np.array(index, dtype=np.int64).reshape(-1, n_lags), np.array(valid, dtype=bool)


@pytest.fixture
def gappy():
    rng = np.random.default_rng(0)
    days = pd.date_range("2005-05-15", "2006-05-15")
    record = days[rng.random(days.size) > 0.03].to_numpy()  # ~3 % of days missing
    targets = pd.date_range("2005-05-10", "2006-05-20").to_numpy()  # some outside the record
    return targets, record


@pytest.mark.parametrize("n_lags", [1, 3, 40])
def test_matches_brute_force(gappy, n_lags):
    targets, record = gappy
    w = lag_windows(targets, record, n_lags, on_missing="mask")
    ref_index, ref_valid = _brute_force(targets, record, n_lags)
    np.testing.assert_array_equal(w.valid, ref_valid)
    np.testing.assert_array_equal(w.index, ref_index)
    np.testing.assert_array_equal(window_mask(targets, record, n_lags), ref_valid)
    assert len(w) == targets.size and w.n_lags == n_lags

    dropped = lag_windows(targets, record, n_lags, on_missing="drop")
    np.testing.assert_array_equal(dropped.targets, targets[ref_valid])
    np.testing.assert_array_equal(dropped.index, ref_index[ref_valid])
    assert dropped.valid.all()


def test_windows_are_never_shifted(gappy):
    targets, record = gappy
    w = lag_windows(targets, record, 5, on_missing="drop")
    got = record[w.index]  # (n, 5) dates
    expected = w.targets[:, None] - np.arange(5, 0, -1)[None, :] * np.timedelta64(1, "D")
    np.testing.assert_array_equal(got, expected)


def test_first_days_lack_history():
    record = pd.date_range("2006-01-01", periods=10).to_numpy()
    w = lag_windows(record, record, 3, on_missing="mask")
    assert w.valid.tolist() == [False] * 3 + [True] * 7
    assert w.index[0].tolist() == [-1, -1, -1] and w.index[2].tolist() == [-1, 0, 1]
    assert w.index[3].tolist() == [0, 1, 2]
    # a prediction day right after the record has a complete window
    after = lag_windows(np.array(["2006-01-11"], dtype="datetime64[ns]"), record, 10)
    assert after.index.tolist() == [list(range(10))]


def test_raise_names_targets_and_missing_days():
    record = pd.date_range("2006-01-01", periods=30).delete([10, 11]).to_numpy()
    with pytest.raises(LagWindowError) as info:
        lag_windows(record[20:], record, 15)
    msg = str(info.value)
    # targets 01-23 .. 01-30; windows of 01-23 .. 01-27 reach back over 01-11/01-12
    assert "5 target day(s)" in msg and "2 more target(s)" in msg
    assert "2006-01-23 misses ['2006-01-11', '2006-01-12']" in msg
    assert "2006-01-25 misses ['2006-01-11', '2006-01-12']" in msg
    assert "on_missing='drop'" in msg
    kept = lag_windows(record[20:], record, 15, on_missing="drop")
    np.testing.assert_array_equal(kept.targets, record[-3:])


def test_targets_keep_order_and_time_of_day_ignored():
    record = pd.date_range("2006-01-01", periods=10).to_numpy()
    targets = np.array(["2006-01-09T12:00", "2006-01-05"], dtype="datetime64[ns]")
    w = lag_windows(targets, record, 2)
    assert w.index.tolist() == [[6, 7], [2, 3]]
    assert str(w.targets[0]) .startswith("2006-01-09T00:00")
    assert isinstance(w, LagWindows)


def test_empty_targets():
    record = pd.date_range("2006-01-01", periods=5).to_numpy()
    w = lag_windows(np.array([], dtype="datetime64[ns]"), record, 4)
    assert len(w) == 0 and w.index.shape == (0, 4)


def test_bad_inputs():
    record = pd.date_range("2006-01-01", periods=5).to_numpy()
    with pytest.raises(TimeAxisError, match="increasing"):
        lag_windows(record, record[::-1], 2)
    with pytest.raises(TimeAxisError):
        lag_windows(record, pd.date_range("2006-01-01", periods=4, freq="12h").to_numpy(), 2)
    for n_lags in (0, -1, 2.0, True):
        with pytest.raises(ConfigError):
            lag_windows(record, record, n_lags)
    with pytest.raises(ConfigError):
        lag_windows(record, record, 2, on_missing="fill")
    with pytest.raises(TimeAxisError):
        lag_windows(["x"], record, 2)
