"""Climatological seasons with lag buffers, and the temporal train/val/test split.

The paper trains one model per season (DJF, MAM, JJA, SON), year-agnostic: December 2005
and December 2006 go to the same DJF dataset. Each contiguous season block gets the 45
calendar days before it as *buffer* days, which are never prediction targets but give the
first target days a full lag history (T_lag = 40, see the docs' method page). Days are then split in
temporal order, 80/10/10, over the target days only.

Everything here works on the time coordinate only, so dask-backed data stays lazy.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TypeVar

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import check_daily_time, day_numbers
from ..errors import ConfigError, TimeAxisError

__all__ = ["SEASONS", "season_of", "seasons", "split"]

#: The four climatological seasons, in the order models and outputs use them.
SEASONS = ("DJF", "MAM", "JJA", "SON")

T = TypeVar("T", xr.Dataset, xr.DataArray)


def season_of(times) -> np.ndarray:
    """Climatological season name of each time.

    Parameters
    ----------
    times : array-like of datetimes
        ``pandas.DatetimeIndex``, ``datetime64`` array, list of dates or a time DataArray.

    Returns
    -------
    numpy.ndarray of str
        One of :data:`SEASONS` per time (December, January, February -> ``"DJF"``).

    Raises
    ------
    TimeAxisError
        If ``times`` cannot be read as datetimes.

    Examples
    --------
    >>> season_of(["2005-12-31", "2006-01-01", "2006-06-15"]).tolist()
    ['DJF', 'DJF', 'JJA']
    """
    index = _as_index(times)
    # xarray's own season definition (the .dt accessor), so seasons agree with
    # ds.groupby("time.season") in user code.
    names = xr.DataArray(index, dims="t").dt.season.values
    return np.asarray(names, dtype="<U3")


def _as_index(times) -> pd.DatetimeIndex:
    try:
        return pd.DatetimeIndex(np.atleast_1d(np.asarray(times)))
    except (TypeError, ValueError) as err:
        raise TimeAxisError(
            f"expected datetimes (datetime64 or pandas timestamps), got {type(times).__name__}: {err}"
        ) from None


def _day_numbers(index: pd.DatetimeIndex, what: str) -> np.ndarray:
    """Integer calendar-day numbers; at most one time step per day."""
    days = day_numbers(index)
    same = np.flatnonzero(np.diff(days) == 0)
    if same.size:
        raise TimeAxisError(
            f"{what} has more than one time step on {[str(index[i].date()) for i in same[:5]]}; "
            "seasons and lag windows work on daily data: resample to daily means first, e.g. "
            ".resample(time='1D').mean()"
        )
    return days


def _buffer_mask(days: np.ndarray, is_target: np.ndarray, buffer_days: int) -> np.ndarray:
    """Kernel: True on non-target days within ``buffer_days`` before a target block start.

    A block starts at a target day whose previous calendar day is not a target day in the
    record. Using calendar runs rather than season-years gives the same buffers (the days
    before a block that starts after a gap are earlier days of the same block, already
    targets) and needs no year bookkeeping.
    """
    prev_target = np.zeros_like(is_target)
    prev_target[1:] = is_target[:-1] & (np.diff(days) == 1)
    starts = days[is_target & ~prev_target]
    # for every day, the first block start strictly after it
    nxt = np.searchsorted(starts, days, side="right")
    has_next = nxt < starts.size
    gap = np.where(has_next, starts[np.minimum(nxt, starts.size - 1)] - days, np.inf)
    return ~is_target & (gap <= buffer_days)


def seasons(obj: T, buffer_days: int = 45, *, time: Hashable = "time") -> dict[str, T]:
    """Split a daily record by season, adding the buffer days before each season block.

    Seasons are year-agnostic: every DJF of the record (December of one year and January,
    February of the next) lands in ``"DJF"``. Each contiguous block of season days gets the
    ``buffer_days`` calendar days before its first day, those that exist in the record, as
    non-target history days; they may belong to the previous season, which is their point.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Daily data with a strictly increasing datetime ``time`` coordinate (any gaps).
    buffer_days : int, default 45
        Calendar days of history added before every season block (the paper's 45).
    time : hashable, default "time"
        Name of the time dimension.

    Returns
    -------
    dict of str to same type as ``obj``
        Keys in :data:`SEASONS` order, only seasons with at least one day in the record.
        Each value holds the season's days plus its buffer days in time order, with a bool
        coordinate ``target`` along ``time``, False on buffer days. Dask data stays lazy.

    Raises
    ------
    DimensionError
        If ``time`` is not a dimension.
    TimeAxisError
        If times are not datetimes, not increasing, duplicated, or sub-daily.
    ConfigError
        If ``buffer_days`` is not a non-negative integer.

    Notes
    -----
    xarray's :class:`~xarray.groupers.SeasonResampler` labels season-years the same way, but
    it builds groups for reductions over the data; here only boolean masks on the time
    coordinate are needed, so the season names come from ``.dt.season`` and blocks from
    calendar runs.

    Examples
    --------
    >>> t = pd.date_range("2005-11-01", "2006-03-31")
    >>> da = xr.DataArray(np.arange(t.size), dims="time", coords={"time": t})
    >>> out = seasons(da, buffer_days=10)
    >>> list(out), int(out["DJF"].target.sum()), int((~out["DJF"].target).sum())
    (['DJF', 'MAM', 'SON'], 90, 10)
    """
    if isinstance(buffer_days, bool) or not isinstance(buffer_days, (int, np.integer)) or (
        buffer_days < 0
    ):
        raise ConfigError(f"buffer_days must be a non-negative integer, got {buffer_days!r}")
    index = check_daily_time(obj, dim=time)
    days = _day_numbers(index, f"the {time!r} axis")
    names = season_of(index)
    out: dict[str, T] = {}
    for name in SEASONS:
        is_target = names == name
        if not is_target.any():
            continue
        keep = np.flatnonzero(is_target | _buffer_mask(days, is_target, int(buffer_days)))
        out[name] = obj.isel({time: keep}).assign_coords(target=(time, is_target[keep]))
    return out


def _check_fraction(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    return value


def _half_up(x: float) -> int:
    # Round half up (Python's round() goes half-to-even); the inner round() absorbs
    # float noise such as 0.7 + 0.2 = 0.8999999999999999.
    return math.floor(round(x, 9) + 0.5)


def split(
    obj: T,
    train: float = 0.8,
    val: float = 0.1,
    test: float = 0.1,
    *,
    holdout: float = 0.2,
    seed: int = 0,
    time: Hashable = "time",
) -> dict[str, T]:
    """Temporal train/validation/test split of the target days.

    Target days (``target == True`` where the coordinate exists, e.g. after
    :func:`seasons`; otherwise all days) are taken in time order: the first share is
    ``"train"``, the next ``"val"``, the last ``"test"``. Buffer days are left out; lag
    windows are always cut from the full record.

    Counts: the boundaries are ``round(n * train)`` and ``round(n * (train + val))``
    (half up), so train holds the first ``round(0.8 n)`` days; a positive ``val`` or
    ``test`` share that would get no day gets one, taken from train. Inside train,
    ``round(n_train * holdout)`` days (at least 1 when ``holdout > 0``, at most
    ``n_train - 1``) are drawn at random with ``seed`` as the train-validation stream: whole
    days, so all patches of a day stay on one side.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Daily data with an increasing ``time`` coordinate.
    train, val, test : float, default 0.8, 0.1, 0.1
        Non-negative shares summing to 1; ``train`` must be positive.
    holdout : float, default 0.2
        Share of the train days marked as train-validation days, in [0, 1).
    seed : int, default 0
        Seed of the holdout draw.
    time : hashable, default "time"
        Name of the time dimension.

    Returns
    -------
    dict
        ``{"train": obj, "val": obj, "test": obj}`` holding target days only; ``"train"``
        has a bool coordinate ``holdout`` along ``time``. Dask data stays lazy.

    Raises
    ------
    ConfigError
        If the shares are negative, do not sum to 1, ``train`` is 0, ``holdout`` is outside
        [0, 1), or there are too few target days to give each positive share a day.
    DimensionError, TimeAxisError
        If the time axis is missing or not increasing.

    Examples
    --------
    >>> t = pd.date_range("2006-06-01", periods=10)
    >>> da = xr.DataArray(np.arange(10), dims="time", coords={"time": t})
    >>> parts = split(da)
    >>> [parts[k].sizes["time"] for k in ("train", "val", "test")]
    [8, 1, 1]
    """
    shares = {k: _check_fraction(k, v) for k, v in (("train", train), ("val", val), ("test", test))}
    if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-6):
        raise ConfigError(f"train + val + test must sum to 1, got {shares} (sum {sum(shares.values()):.6g})")
    if shares["train"] == 0:
        raise ConfigError("train must be positive: the holdout days are drawn from train")
    holdout = _check_fraction("holdout", holdout)
    if holdout >= 1:
        raise ConfigError(f"holdout must be in [0, 1), got {holdout}")

    check_daily_time(obj, dim=time)
    if "target" in obj.coords:
        if obj["target"].dims != (time,):
            raise ConfigError(f"the 'target' coordinate must lie along {time!r}")
        positions = np.flatnonzero(np.asarray(obj["target"].values, dtype=bool))
    else:
        positions = np.arange(obj.sizes[time])
    n = positions.size
    first, second = _half_up(n * shares["train"]), _half_up(n * (shares["train"] + shares["val"]))
    n_val = max(second - first, int(shares["val"] > 0))
    n_test = max(n - second, int(shares["test"] > 0))
    n_train = n - n_val - n_test
    if n_train < 1:
        need = 1 + (n_val > 0) + (n_test > 0)
        raise ConfigError(
            f"{n} target day(s) cannot be split into train/val/test with shares {shares}; "
            f"need at least {need}"
        )
    n_hold = 0 if holdout == 0 else min(max(1, _half_up(n_train * holdout)), n_train - 1)
    hold_mask = np.zeros(n_train, dtype=bool)
    hold_mask[np.random.default_rng(seed).choice(n_train, n_hold, replace=False)] = True

    bounds = np.cumsum([0, n_train, n_val, n_test])
    parts = {k: obj.isel({time: positions[a:b]})
             for k, a, b in zip(("train", "val", "test"), bounds[:-1], bounds[1:], strict=True)}
    parts["train"] = parts["train"].assign_coords(holdout=(time, hold_mask))
    return parts
