"""Calendar lag windows: which record positions hold the ``n_lags`` days before each target.

The window of target day ``d`` is exactly the calendar days ``d - n_lags, ..., d - 1``
(oldest first). A window that needs a day absent from the record is refused or dropped,
never filled with whatever rows happen to precede ``d`` (the authors' scripts took
consecutive rows of a day-filtered array, so windows jumped across removed days; see
the docs' method page, "Where we follow the paper rather than the scripts").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._coords import day_numbers
from ..errors import ConfigError, LagWindowError, TimeAxisError

__all__ = ["LagWindows", "lag_windows", "window_mask"]

_ON_MISSING = ("raise", "drop", "mask")


@dataclass(frozen=True)
class LagWindows:
    """Record positions of the lag window of each target day.

    Attributes
    ----------
    targets : numpy.ndarray of datetime64[ns], shape (n,)
        Target days (midnight), in the order given (complete ones only after ``"drop"``).
    index : numpy.ndarray of int64, shape (n, n_lags)
        Positions into ``record`` of days ``d - n_lags ... d - 1``, oldest first; -1 where
        the day is missing (only with ``on_missing="mask"``).
    valid : numpy.ndarray of bool, shape (n,)
        True where the whole window is in the record.
    """

    targets: np.ndarray
    index: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def n_lags(self) -> int:
        """Length of each window."""
        return int(self.index.shape[1])


def _days(values, what: str) -> np.ndarray:
    """Integer calendar-day numbers of datetime-like input."""
    try:
        return day_numbers(values)
    except (TypeError, ValueError) as err:
        raise TimeAxisError(f"{what} must hold datetimes: {err}") from None


def _date(day_number) -> str:
    return str(np.datetime64(int(day_number), "D"))


def _check_n_lags(n_lags) -> int:
    if isinstance(n_lags, bool) or not isinstance(n_lags, (int, np.integer)) or n_lags < 1:
        raise ConfigError(f"n_lags must be a positive integer, got {n_lags!r}")
    return int(n_lags)


def _check_record(record_days: np.ndarray) -> None:
    steps = np.diff(record_days)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0])
        raise TimeAxisError(
            "record must hold strictly increasing days (one time step per day); found "
            f"{_date(record_days[i + 1])} after {_date(record_days[i])}. Sort, de-duplicate or "
            "resample to daily first."
        )


def _window_positions(target_days, record_days, n_lags):
    """Kernel: positions (n, n_lags) of each window day in ``record_days`` and a found mask."""
    needed = target_days[:, None] + np.arange(-n_lags, 0)[None, :]
    pos = np.searchsorted(record_days, needed)
    found = pos < record_days.size
    found[found] = record_days[pos[found]] == needed[found]
    return pos.astype(np.int64), found, needed


def lag_windows(targets, record, n_lags: int, *, on_missing: str = "raise") -> LagWindows:
    """Positions of the ``n_lags`` calendar days before each target day in ``record``.

    Parameters
    ----------
    targets : array-like of datetimes, shape (n,)
        Days to build windows for; need not be in ``record`` (prediction days usually
        are not). Times of day are ignored.
    record : array-like of datetimes
        Strictly increasing daily times where the history comes from (gaps allowed).
    n_lags : int
        Window length (the paper's T_lag = 40).
    on_missing : {"raise", "drop", "mask"}, default "raise"
        What to do with a target whose window needs a day that is not in ``record``:
        ``"raise"`` a :class:`LagWindowError`, ``"drop"`` the target, or ``"mask"`` keep it
        with ``valid=False`` and -1 positions for the missing days.

    Returns
    -------
    LagWindows
        ``targets``, ``index`` (n, n_lags) and ``valid`` (n,).

    Raises
    ------
    LagWindowError
        With ``on_missing="raise"``, naming the first targets with incomplete windows and
        the days they miss.
    TimeAxisError
        If ``record`` is not strictly increasing daily times.
    ConfigError
        If ``n_lags`` is not a positive integer or ``on_missing`` is unknown.

    Examples
    --------
    >>> import pandas as pd
    >>> rec = pd.date_range("2006-01-01", periods=5).to_numpy()
    >>> w = lag_windows(rec[3:], rec, 2)
    >>> w.index.tolist(), w.valid.tolist()
    ([[1, 2], [2, 3]], [True, True])
    """
    n_lags = _check_n_lags(n_lags)
    if on_missing not in _ON_MISSING:
        raise ConfigError(f"on_missing must be one of {_ON_MISSING}, got {on_missing!r}")
    target_days = _days(targets, "targets")
    record_days = _days(record, "record")
    _check_record(record_days)
    pos, found, needed = _window_positions(target_days, record_days, n_lags)
    valid = found.all(axis=1)
    target_times = target_days.astype("datetime64[D]").astype("datetime64[ns]")
    if valid.all():
        return LagWindows(target_times, pos, valid)
    if on_missing == "raise":
        raise LagWindowError(_missing_message(target_days, needed, found, valid, n_lags))
    if on_missing == "drop":
        return LagWindows(target_times[valid], pos[valid], valid[valid])
    return LagWindows(target_times, np.where(found, pos, -1), valid)


def _missing_message(target_days, needed, found, valid, n_lags) -> str:
    bad = np.flatnonzero(~valid)
    lines = []
    for i in bad[:3]:
        missing = needed[i][~found[i]]
        more = f" and {missing.size - 5} more" if missing.size > 5 else ""
        lines.append(f"{_date(target_days[i])} misses {[_date(k) for k in missing[:5]]}{more}")
    others = f"; {bad.size - 3} more target(s) affected" if bad.size > 3 else ""
    return (
        f"{bad.size} target day(s) lack a complete {n_lags}-day history in the record: "
        + "; ".join(lines) + others
        + ". Give a longer/gap-free history, or pass on_missing='drop' to skip those days."
    )


def window_mask(targets, record, n_lags: int) -> np.ndarray:
    """True for each target whose ``n_lags`` previous calendar days are all in ``record``.

    Parameters
    ----------
    targets, record, n_lags
        As in :func:`lag_windows`.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)

    Raises
    ------
    TimeAxisError, ConfigError
        As in :func:`lag_windows`.
    """
    return lag_windows(targets, record, n_lags, on_missing="mask").valid
