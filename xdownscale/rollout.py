"""Autoregressive out-of-data downscaling, resumable through a Zarr store.

Past the end of the fine record there is no true fine history for the encoder: the rollout
starts from the last ``n_lags`` true fine days and appends each predicted day (ensemble mean)
to the history of the next. With ``store=`` every finished day is written to Zarr at once, with
a per-day ``done`` flag; a rerun reads the finished days back and resumes at the first missing
one. Because the history is rebuilt from the stored float32 values and the sampling noise is
seeded per day, an interrupted-and-resumed rollout gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import xarray as xr

from .errors import ConfigError, LagWindowError
from .prediction import (
    _check_seasons,
    _history_log,
    _resolve,
    fine_template,
    predict_days_array,
    prepare_coarse,
)
from .transforms import log10_transform

__all__ = ["rollout"]


def _fmt(days) -> list[str]:
    return [str(pd.Timestamp(d).date()) for d in days]


def _days(start, end, coarse_days: pd.DatetimeIndex, hist_days: pd.DatetimeIndex):
    start = hist_days[-1] + pd.Timedelta(days=1) if start is None else pd.Timestamp(start).normalize()
    end = coarse_days[-1] if end is None else pd.Timestamp(end).normalize()
    if end < start:
        raise ConfigError(f"rollout end {end.date()} is before its start {start.date()}")
    days = pd.date_range(start, end, freq="D")
    missing = days.difference(coarse_days)
    if len(missing):
        raise LagWindowError(
            f"the coarse driver has no data for {len(missing)} day(s) of the rollout "
            f"{start.date()}..{end.date()}: {_fmt(missing[:10])}{' ...' if len(missing) > 10 else ''}"
        )
    return days


def _seed_window(hist_log: xr.DataArray, start: pd.Timestamp, n_lags: int) -> np.ndarray:
    need = pd.date_range(start - pd.Timedelta(days=n_lags), periods=n_lags, freq="D")
    have = pd.DatetimeIndex(hist_log["time"].values)
    missing = need.difference(have)
    if len(missing):
        raise LagWindowError(
            f"the rollout starting {start.date()} needs the {n_lags} fine days before it as its "
            f"seed; missing from history: {_fmt(missing[:10])}"
        )
    return np.asarray(hist_log.sel(time=need).values, np.float32)


def _open_or_create(store, days, est, var, members, meta) -> tuple[int, xr.Dataset | None]:
    """Return the index of the first day still to do, creating the store when needed."""
    if os.path.exists(store):
        ds = xr.open_zarr(store, consolidated=False)
        stored = {k: ds.attrs.get(k) for k in meta}
        if stored != meta or not np.array_equal(ds["time"].values, days.to_numpy()):
            raise ConfigError(
                f"the store {store!r} holds a different rollout ({stored}); use a new path or "
                f"delete it to start over (this call: {meta})"
            )
        done = ds["done"].values.astype(bool)
        first = int(np.argmin(done)) if not done.all() else len(days)
        return first, ds
    tmpl = fine_template(est)
    shape = (len(days), tmpl.sizes["lat"], tmpl.sizes["lon"])
    import dask.array as dsa

    empty = dsa.full(shape, np.nan, dtype=np.float32, chunks=(1, -1, -1))
    data = {var: (("time", "lat", "lon"), empty, dict(est.attrs_)),
            "done": (("time",), np.zeros(len(days), bool))}
    if members > 1:
        data[f"{var}_std"] = (("time", "lat", "lon"), empty, {"long_name": "ensemble std"})
    ds = xr.Dataset(data, coords={"time": days, "lat": tmpl["lat"], "lon": tmpl["lon"]},
                    attrs=meta)
    ds.to_zarr(store, mode="w", compute=False, consolidated=False)
    ds[["done"]].to_zarr(store, mode="r+", consolidated=False)  # the flags must exist from the start
    return 0, None


def rollout(est, coarse, history, *, start=None, end=None, store=None, members=1, seed=None,
            sampler=None, steps=None) -> xr.Dataset:
    from ._progress import bar as progress_bar

    sampler, steps, seed, fusion = _resolve(est, members, sampler, steps, seed, None)
    cfg = est.config_
    n_lags, var = cfg.n_lags, est.var_
    coarse_log = prepare_coarse(est, coarse)
    hist_log = _history_log(est, history)
    days = _days(start, end, pd.DatetimeIndex(coarse_log["time"].values),
                 pd.DatetimeIndex(hist_log["time"].values))
    _check_seasons(est, days)
    buffer = _seed_window(hist_log, days[0], n_lags)
    meta = {"xdownscale_rollout_start": str(days[0].date()), "xdownscale_rollout_seed": int(seed),
            "xdownscale_members": int(members), "xdownscale_sampler": sampler,
            "xdownscale_steps": int(steps), "xdownscale_model": est.model}
    first = 0
    if store is not None:
        first, existing = _open_or_create(str(store), days, est, var, members, meta)
        if first:  # rebuild the history from what the store already holds
            done_vals = existing[var].isel(time=slice(max(0, first - n_lags), first)).values
            buffer = np.concatenate([buffer, np.asarray(
                log10_transform(done_vals.astype(np.float32), eps=cfg.eps), np.float32)])[-n_lags:]
    means = np.empty((len(days), est.lat_.size, est.lon_.size), np.float32)
    stds = np.empty_like(means) if members > 1 else None
    bar = progress_bar(total=len(days), initial=first, desc="rollout", unit="day",
                       verbose=cfg.verbose)
    for i in range(first, len(days)):
        day = days[i]
        drv = np.asarray(coarse_log.sel(time=[day]).values, np.float32)
        vals = predict_days_array(est, [day], drv, buffer[None], members=members,
                                  sampler=sampler, steps=steps, seed=seed, fusion=fusion)
        mean = vals.mean(axis=0)[0].astype(np.float32)
        means[i] = mean
        if stds is not None:
            stds[i] = vals.std(axis=0, ddof=1)[0]
        if store is not None:
            _write_day(store, i, var, mean, None if stds is None else stds[i])
        buffer = np.concatenate([buffer[1:], np.asarray(
            log10_transform(mean, eps=cfg.eps), np.float32)[None]])
        bar.update(1)
    bar.close()
    if store is not None:
        return xr.open_zarr(str(store), consolidated=False).drop_vars("done")
    tmpl = fine_template(est)
    out = xr.Dataset({var: (("time", "lat", "lon"), means, dict(est.attrs_))},
                     coords={"time": days, "lat": tmpl["lat"], "lon": tmpl["lon"]}, attrs=meta)
    if stds is not None:
        out[f"{var}_std"] = (("time", "lat", "lon"), stds, {"long_name": "ensemble std"})
    return out


def _write_day(store, i, var, mean, std) -> None:
    data = {var: (("time", "lat", "lon"), mean[None]), "done": (("time",), np.ones(1, bool))}
    if std is not None:
        data[f"{var}_std"] = (("time", "lat", "lon"), std[None])
    # The value goes in first and the flag after it, so a crash between the two leaves the day
    # marked missing and it is simply redone.
    xr.Dataset({k: v for k, v in data.items() if k != "done"}).to_zarr(
        store, region={"time": slice(i, i + 1), "lat": slice(None), "lon": slice(None)},
        consolidated=False)
    xr.Dataset({"done": data["done"]}).to_zarr(store, region={"time": slice(i, i + 1)},
                                               consolidated=False)
