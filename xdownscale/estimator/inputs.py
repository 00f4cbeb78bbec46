"""From user Datasets to the per-day arrays the models train and predict on.

This module is the data side of the estimator: it validates the coarse/fine/elevation
inputs, puts everything on the fine grid, applies the log10 transform and the train-only
scaler, and serves the lag windows of one day at a time (``load_day`` callables for
:class:`xdownscale.tiling.patches.DayPatchDataset`). It never imports torch or the models.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import check_daily_time, ensure_dataarray
from ..data.covariates import COVARIATE_NAMES, CovariateSpec, covariate_stack
from ..data.io import ELEVATION_NAMES
from ..data.lags import lag_windows
from ..data.regions import normalize_lonlat
from ..data.regrid import regrid_like
from ..data.seasons import SEASONS, season_of
from ..data.seasons import seasons as season_blocks
from ..data.seasons import split as temporal_split
from ..data.transforms import NEGATIVE_TOL, negative_value_error
from ..errors import (
    DimensionError,
    GridMismatchError,
    LagWindowError,
    ScalingError,
)
from .checks import errors_about, regular_daily, regular_dims

__all__ = ["prepare_inputs", "SeasonPlan", "plan_season", "ArraySource", "day_loaders"]


def _as_fine_da(obj, var: Hashable | None, what: str) -> xr.DataArray:
    da = ensure_dataarray(obj, var)
    if "time" not in da.dims:
        raise DimensionError(f"{what} needs dims (time, lat, lon); found {list(map(str, da.dims))}")
    da = regular_dims(da, what)  # size-1 extra dims dropped, larger ones and x/y in metres refused
    da = normalize_lonlat(da)
    da = regular_daily(da, what)  # 12:00 or mixed daily stamps -> 00:00; sub-daily refused
    check_daily_time(da)
    da = da.transpose("time", "lat", "lon")
    if da.sizes["lat"] < 2 or da.sizes["lon"] < 2:
        raise DimensionError(f"{what} needs at least 2 x 2 pixels, got {dict(da.sizes)}")
    return da


def _check_nonnegative(da: xr.DataArray, what: str) -> None:
    # One small reduction over the data: this is fit's job (it reads the data anyway).
    vmin = float(da.min(skipna=True).compute()) if da.size else 0.0
    if not np.isfinite(vmin):
        raise ScalingError(f"{what} holds no finite value (all NaN): nothing to fit on")
    if vmin < -NEGATIVE_TOL:
        raise negative_value_error(what, vmin)


def elevation_on_grid(elevation, fine: xr.DataArray) -> xr.DataArray | None:
    """Elevation on the fine grid: used as is when it shares the grid, else the mean of the
    native samples inside each fine pixel (finer input) or linear interpolation (coarser)."""
    if elevation is None:
        return None
    if isinstance(elevation, xr.Dataset):
        names = [n for n in elevation.data_vars]
        if len(names) != 1:
            preferred = [n for n in names if str(n).lower() in ELEVATION_NAMES]
            if not preferred:
                raise DimensionError(f"cannot tell which variable of {names} is the elevation")
            names = preferred
        elevation = elevation[names[0]]
    elev = normalize_lonlat(elevation)
    if "time" in elev.dims:
        elev = elev.isel(time=0, drop=True)
    same = (
        elev.sizes.get("lat") == fine.sizes["lat"]
        and elev.sizes.get("lon") == fine.sizes["lon"]
        and np.allclose(elev["lat"].values, fine["lat"].values, atol=1e-6)
        and np.allclose(elev["lon"].values, fine["lon"].values, atol=1e-6)
    )
    if same:
        out = elev.assign_coords(lat=fine["lat"], lon=fine["lon"])
    else:
        dlat_e = float(np.abs(np.diff(elev["lat"].values)).mean())
        dlat_f = float(np.abs(np.diff(fine["lat"].values)).mean())
        method = "mean" if dlat_e < dlat_f else "linear"
        with errors_about("the elevation map does not cover the fine grid"):
            out = regrid_like(elev, fine.isel(time=0, drop=True), method=method)
    return out.astype("float32").load()


def prepare_inputs(coarse, fine, elevation=None, *, var=None, regrid_method="cubic",
                   regrid_clamp=False):
    """Validate and align the three inputs (``regrid_clamp``: see
    :func:`~xdownscale.data.regrid.regrid_like`'s ``clamp``).

    Returns ``(coarse_native, coarse_on_fine, fine, elevation_on_fine)``: lazy DataArrays
    (time, lat, lon) for the first three and an in-memory 2-D DataArray (or None).
    """
    coarse_da = _as_fine_da(coarse, var, "the coarse record")
    fine_da = _as_fine_da(fine, var, "the fine record")
    _check_nonnegative(fine_da, "the fine record")
    _check_nonnegative(coarse_da, "the coarse record")
    missing = np.setdiff1d(fine_da["time"].values, coarse_da["time"].values)
    if missing.size:
        raise GridMismatchError(
            f"{missing.size} fine day(s) have no coarse day (first: "
            f"{[str(pd.Timestamp(t).date()) for t in missing[:5]]}); the coarse record must cover "
            "the fine record"
        )
    coarse_f = regrid_like(coarse_da, fine_da.isel(time=0, drop=True), method=regrid_method,
                           clamp=regrid_clamp)
    elev = elevation_on_grid(elevation, fine_da)
    return coarse_da, coarse_f, fine_da, elev


@dataclass
class SeasonPlan:
    """The days of one season model: fine target days by subset, and the coarse days of
    the pretraining stage."""

    season: str
    train: np.ndarray  # fine target days used for gradient steps
    holdout: np.ndarray  # fine target days of the train-validation stream (early stopping)
    val: np.ndarray
    test: np.ndarray
    small_train: np.ndarray  # coarse target days, stage A
    small_holdout: np.ndarray

    DAYS = ("train", "holdout", "val", "test", "small_train", "small_holdout")

    def to_dict(self) -> dict:
        """Every subset as ISO dates (JSON-ready)."""
        return {k: [str(pd.Timestamp(t).date()) for t in getattr(self, k)] for k in self.DAYS}

    @classmethod
    def from_dict(cls, season: str, data: dict) -> SeasonPlan:
        return cls(season, *(pd.DatetimeIndex(data[k]).to_numpy() for k in cls.DAYS))


def _complete(targets: np.ndarray, record: np.ndarray, n_lags: int) -> np.ndarray:
    if targets.size == 0:
        return targets
    win = lag_windows(targets, record, n_lags, on_missing="drop")
    return np.asarray(win.targets)


def plan_season(season: str, coarse_times, fine_times, config) -> SeasonPlan:
    """Choose the target days of one season: temporal 80/10/10 split of the fine record's
    season days, the day-grouped holdout inside train, and the coarse pretraining days."""
    fine_times = pd.DatetimeIndex(fine_times)
    probe = xr.DataArray(np.zeros(len(fine_times)), dims="time", coords={"time": fine_times})
    blocks = season_blocks(probe, buffer_days=config.buffer_days)
    if season not in blocks:
        raise LagWindowError(f"the fine record has no {season} days")
    block = blocks[season]
    # Target days without a complete calendar window (the start of the record) are no targets:
    # drop them before the 80/10/10 split so the shares hold for usable days.
    complete = np.isin(block["time"].values,
                       _complete(block["time"].values, fine_times.to_numpy(), config.n_lags))
    block = block.assign_coords(target=block["target"] & complete)
    tr, va, te = config.split
    parts = temporal_split(block, train=tr, val=va, test=te,
                           holdout=config.holdout, seed=config.seed)
    record = fine_times.to_numpy()
    train_all = parts["train"]
    hold_mask = np.asarray(train_all["holdout"].values, bool)
    train_days = _complete(train_all["time"].values[~hold_mask], record, config.n_lags)
    hold_days = _complete(train_all["time"].values[hold_mask], record, config.n_lags)
    val_days = _complete(parts["val"]["time"].values, record, config.n_lags)
    test_days = _complete(parts["test"]["time"].values, record, config.n_lags)
    if train_days.size == 0:
        raise LagWindowError(
            f"no {season} training day has {config.n_lags} days of fine history; the fine record "
            "is too short for this season"
        )
    # Stage A: every coarse day of the season with a complete calendar window.
    ctimes = pd.DatetimeIndex(coarse_times)
    in_season = ctimes[season_of(ctimes) == season].to_numpy()
    small = _complete(in_season, ctimes.to_numpy(), config.n_lags)
    rng = np.random.default_rng([config.seed, SEASONS.index(season), 17])
    if config.small_max_days is not None and small.size > config.small_max_days:
        small = np.sort(rng.choice(small, config.small_max_days, replace=False))
    n_hold = int(round(config.holdout * small.size))
    hold_idx = rng.choice(small.size, n_hold, replace=False) if n_hold else np.array([], int)
    hmask = np.zeros(small.size, bool)
    hmask[hold_idx] = True
    return SeasonPlan(season, train_days, hold_days, val_days, test_days, small[~hmask], small[hmask])


class ArraySource:
    """Day-indexed access to a (time, lat, lon) DataArray, in memory or lazily.

    Small records are loaded once; large ones are read a day at a time with a bounded LRU
    cache, so memory stays at a few days' cubes.
    """

    def __init__(self, da: xr.DataArray, *, in_memory: bool, cache_days: int = 128) -> None:
        self.times = pd.DatetimeIndex(da["time"].values)
        self._pos = pd.Series(np.arange(len(self.times)), index=self.times)
        self._da = da.astype("float32")
        self._data = self._da.values if in_memory else None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_days = cache_days

    def positions(self, days) -> np.ndarray:
        try:
            return self._pos.loc[pd.DatetimeIndex(days)].to_numpy()
        except KeyError as err:
            raise LagWindowError(f"day(s) not in the record: {err}") from None

    def take(self, days) -> np.ndarray:
        pos = self.positions(days)
        if self._data is not None:
            return self._data[pos]
        need = [int(p) for p in pos if int(p) not in self._cache]
        if need:
            block = self._da.isel(time=need).values
            for p, arr in zip(need, block, strict=True):
                self._cache[p] = arr
        out = np.stack([self._cache[int(p)] for p in pos])
        for p in pos:
            self._cache.move_to_end(int(p))
        while len(self._cache) > self._cache_days:
            self._cache.popitem(last=False)
        return out


def lag_days(day, n_lags: int) -> pd.DatetimeIndex:
    day = pd.Timestamp(day)
    return pd.date_range(day - pd.Timedelta(days=n_lags), periods=n_lags, freq="D")


@dataclass
class StaticMaps:
    """Per-pixel inputs that do not change from day to day."""

    spec: CovariateSpec
    lat: np.ndarray
    lon: np.ndarray
    elevation: np.ndarray  # (ny, nx), metres, zeros where unknown when no DEM was given

    def covariates(self, days: Sequence) -> np.ndarray:
        return covariate_stack(self.spec, pd.DatetimeIndex(days).to_numpy(), self.lat, self.lon,
                               self.elevation).astype(np.float32)


# The conditioning channels of a day, in the order ``day_loaders`` stacks them: the coarse
# driver on the target day (upsampled, scaled like the fine field), then the covariate maps.
COND_NAMES = ("coarse", *COVARIATE_NAMES)
N_COND = len(COND_NAMES)


def small_loader(coarse_src: ArraySource, n_lags: int):
    """Stage A's ``load_day``: the coarse lags ``x`` (n_lags, ny, nx) and the coarse day ``y``,
    on whatever grid ``coarse_src`` holds (the fine grid, or the native coarse grid)."""

    def small(day):
        return {"x": coarse_src.take(lag_days(day, n_lags)), "y": coarse_src.take([day])}

    return small


def day_loaders(coarse_src: ArraySource, fine_src: ArraySource, static: StaticMaps, n_lags: int,
                *, coarse_history: bool = False, previous_day: bool = False):
    """``load_day`` callables for the two training stages.

    Stage A (``small``): the coarse lags ``x`` (n_lags, ny, nx) and the coarse day ``y``.
    Stage B (``large``): the fine history ``hist`` (n_lags, ny, nx), the conditioning ``cond``
    (coarse day t+1 and covariate maps) and the fine target ``y``; with ``coarse_history``
    also ``hist_coarse``, the same lag days of the coarse record on the fine grid (what
    ``history_mix`` swaps in for ``hist``). With ``previous_day`` also the inputs of the day
    before, from which the model predicts the last day of ``hist`` (``pushforward``):
    ``prev_hist``, its lag window (its oldest day repeats ``hist``'s oldest when the fine
    record starts there), and ``prev_cond``.
    """

    small = small_loader(coarse_src, n_lags)

    def large(day):
        lags = lag_days(day, n_lags)
        hist = fine_src.take(lags)
        cond = np.concatenate([coarse_src.take([day]), static.covariates([day])[0]], axis=0)
        y = fine_src.take([day])
        out = {"hist": hist, "cond": cond, "y": y}
        if coarse_history:
            out["hist_coarse"] = coarse_src.take(lags)
        if previous_day:
            older = lags[0] - pd.Timedelta(days=1)
            first = fine_src.take([older]) if older in fine_src.times else hist[:1]
            out["prev_hist"] = np.concatenate([first, hist[:-1]], axis=0)
            out["prev_cond"] = np.concatenate(
                [coarse_src.take(lags[-1:]), static.covariates(lags[-1:])[0]], axis=0)
        return out

    return small, large
