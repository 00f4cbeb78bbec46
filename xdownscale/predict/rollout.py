"""Autoregressive out-of-data downscaling, resumable through a Zarr store.

Past the end of the fine record there is no true fine history for the encoder: the rollout
starts from the last ``n_lags`` true fine days and appends each predicted day to the history
of the next: by default (``carry="mean"``) the DDPM's estimate of the day's conditional mean
(one DDIM step from noise, tied to the driver like the output; stored as ``<var>_history``),
whatever the members and sampler of the output, or (``carry="ensemble"``, and always for the
U-Net and the VAE) the ensemble mean of the output. A single sampled member carries its
sampling noise into every later day; on six test-beds the carried mean raised the rollout's
lead 21-30 R² (log10) by 0.03-0.08 (``benchmarks/bench_rollout_skill.py``). With
``point_estimate="conditional_mean"`` the output ``<var>`` is that one-step mean too, so
``carry="mean"`` carries the output, and ``carry="ensemble"`` carries the members' mean
(stored as ``<var>_history``). With ``store=`` every finished day is written to Zarr at once; a
rerun reads the finished days back and resumes at the first missing one. Because the history
is rebuilt from the stored float32 values and the sampling noise is seeded per day, an
interrupted-and-resumed rollout gives the same numbers as an uninterrupted one, and the same
call with a later ``end`` appends to the store and equals a rollout run to that end at once.

A store belongs to one run. Its attributes hold the settings (start, seed, members, sampler,
steps, model) and fingerprints of the estimator and of the seed history, and a hidden group
holds a checksum of each day's coarse driver and the per-day ``done`` flags; a call whose run
differs is refused with what differs. One writer at a time: a lock file next to the store is
created atomically, so a second process writing into the same store is refused.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import _digest
from .._lock import WriterLock
from .._progress import bar as progress_bar
from ..data.transforms import log10_transform
from ..errors import ConfigError, LagWindowError, StoreError
from ..estimator.checks import check_members, check_seed, check_steps
from .drift import DEFAULT_DRIFT_THRESHOLD, RolloutCheck
from .labelled import (
    ONE_STEP,
    check_seasons,
    field_attrs,
    fine_template,
    history_log10,
    is_one_step,
    point_is_conditional_mean,
    predict_days_array,
    prepare_coarse,
    resolve_coarse_consistency,
    resolve_sampling,
)

__all__ = ["rollout"]

_STATE = "_xdownscale"  # the group of the done flags and driver checksums, hidden from users
_NAN_DAYS = ("raise", "skip")
_CARRY = ("mean", "ensemble")


def carries_mean(est, carry: str, members: int, sampler: str, steps: int) -> bool:
    """Whether the history is made by a pass of its own: the DDPM's one-step mean, unless the
    output already is it (one member of one DDIM step)."""
    if carry not in _CARRY:
        raise ConfigError(f"carry={carry!r} is not one of {list(_CARRY)}")
    return (carry == "mean" and est.model == "ddpm"
            and not is_one_step(members, sampler, steps))


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


# -- fingerprints ---------------------------------------------------------------------------
def _sha(data) -> str:
    h = _digest.sha256()
    _digest.feed_array(h, data, header=False)
    return _digest.hexdigest(h)


def estimator_fingerprint(est) -> str:
    """A checksum of everything that makes a fitted estimator predict what it predicts."""
    h = _digest.sha256()
    # execution settings that do not change the numbers are left out
    cfg = {k: v for k, v in est.config_.to_dict().items()
           if k not in ("verbose", "device", "predict_batch_size")}
    h.update(json.dumps([est.model, str(est.var_), list(est.seasons_), cfg,
                         {s: sc.to_dict() for s, sc in est.scalers_.items()},
                         est.covariate_spec_.to_dict()], sort_keys=True, default=str).encode())
    for arr in (est.lat_, est.lon_, est.elevation_):
        _digest.feed_array(h, arr, header=False)
    for season in sorted(est.modules_):
        _digest.feed_state(h, est.modules_[season].state_dict(), header=False, sort=True)
    return _digest.hexdigest(h)


def _scan_driver(coarse_log: xr.DataArray, days: pd.DatetimeIndex, block: int = 64):
    """Per-day checksums of the driver as the model sees it (on the fine grid, log10) and the
    days that hold a NaN. Read in blocks of days, so memory stays at ``block`` maps."""
    sums = np.zeros(len(days), np.uint64)
    nan = np.zeros(len(days), bool)
    for lo in range(0, len(days), block):
        vals = np.asarray(coarse_log.sel(time=days[lo:lo + block]).values, np.float32)
        nan[lo:lo + len(vals)] = ~np.isfinite(vals).all(axis=(1, 2))
        for k, arr in enumerate(vals):
            digest = hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=8).digest()
            sums[lo + k] = np.frombuffer(digest, np.uint64)[0]
    return sums, nan


# -- the store ------------------------------------------------------------------------------
def _kind(store: Path) -> str:
    """``"new"`` (absent or an empty folder), ``"partial"`` (created but never finished),
    ``"store"``; anything else is refused without touching it."""
    if not store.exists():
        return "new"
    if not store.is_dir():
        raise StoreError(f"the rollout store {store} is a file, not a Zarr store; give a folder "
                         "path (it is created) or delete the file")
    entries = [p.name for p in store.iterdir()]
    if not entries:
        return "new"
    if not any(name in entries for name in ("zarr.json", ".zgroup", ".zattrs")):
        raise StoreError(f"{store} is a folder that holds no Zarr store ({len(entries)} entries); "
                         "it is not overwritten: give a new path for the rollout")
    try:
        attrs = xr.open_zarr(store, consolidated=False).attrs
    except Exception as err:  # zarr raises many kinds here; none may reach the user raw
        raise StoreError(f"{store} is not a readable Zarr store ({type(err).__name__}: {err}); "
                         "give a new path or delete it") from None
    if "xdownscale_rollout_start" not in attrs:
        raise StoreError(f"{store} is a Zarr store but not an xdownscale rollout; it is not "
                         "overwritten: give a new path")
    if not (store / _STATE).is_dir():
        if "done" in xr.open_zarr(store, consolidated=False).variables:
            raise StoreError(f"{store} was written by an older xdownscale (flags in the data); "
                             "delete it and roll out again")
        return "partial"  # interrupted while being created: no day was finished
    return "store"


def _extra_fields(var, members: int, own_history: bool, attrs) -> dict:
    """Attributes of the fields a rollout writes besides ``var``."""
    extra = {}
    if members > 1:
        extra[f"{var}_std"] = {"long_name": f"ensemble standard deviation of {var}",
                               "units": attrs.get("units", "1")}
    if own_history:
        extra[f"{var}_history"] = {
            "long_name": f"{var} as carried into the history of the next day (the estimate "
                         "named by the store's xdownscale_rollout_carry, tied to the driver)",
            "units": attrs.get("units", "1")}
    return extra


def _empty(days, tmpl, var, members, attrs, own_history=False):
    import dask.array as dsa

    shape = (len(days), tmpl.sizes["lat"], tmpl.sizes["lon"])
    empty = dsa.full(shape, np.nan, dtype=np.float32, chunks=(1, -1, -1))
    data = {var: (("time", "lat", "lon"), empty, attrs)}
    for name, a in _extra_fields(var, members, own_history, attrs).items():
        data[name] = (("time", "lat", "lon"), empty, a)
    return xr.Dataset(data, coords={"time": days, "lat": tmpl["lat"], "lon": tmpl["lon"]})


def _state(days, sums, done=None):
    done = np.zeros(len(days), bool) if done is None else done
    return xr.Dataset({"done": ("time", done), "driver": ("time", sums)}, coords={"time": days})


def _consolidate(store: Path) -> None:
    import zarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr 3 marks consolidated metadata as experimental
        zarr.consolidate_metadata(str(store))


def _create(store: Path, days, sums, est, var, members, meta) -> None:
    ds = _empty(days, fine_template(est), var, members, field_attrs(est), _own(meta))
    ds.attrs = meta
    ds.to_zarr(store, mode="w", compute=False, consolidated=False)
    _state(days, sums).to_zarr(store, group=_STATE, mode="w", consolidated=False)
    _consolidate(store)  # last: a store without its state group is redone from scratch


def _compare(store: Path, stored: dict, meta: dict) -> None:
    names = {"xdownscale_rollout_start": "start", "xdownscale_rollout_seed": "seed",
             "xdownscale_members": "members", "xdownscale_sampler": "sampler",
             "xdownscale_steps": "steps", "xdownscale_model": "model",
             "xdownscale_estimator": "estimator (weights, scalers or config)",
             "xdownscale_history": "history (the fine days before the start)",
             "xdownscale_rollout_carry": "carry (what each day passes to the next)"}
    # a store written before `carry` existed carried the ensemble mean
    old = {"xdownscale_rollout_carry": "ensemble"}
    diff = [f"{names[k]}: stored {stored.get(k, old.get(k))!r}, this call {v!r}"
            for k, v in meta.items() if k in names and stored.get(k, old.get(k)) != v]
    if diff:
        raise StoreError(
            f"the store {store} holds another rollout; what differs: {'; '.join(diff)}. Use a "
            "new store path for this run, or delete the store to start over."
        )


def _open(store: Path, days, sums, est, var, members, meta) -> xr.Dataset:
    """Open the store (creating or extending it as needed); return its state group."""
    kind = _kind(store)
    if kind in ("new", "partial"):
        _create(store, days, sums, est, var, members, {**meta, "xdownscale_driver": _sha(sums)})
        return xr.open_zarr(store, group=_STATE, consolidated=False).load()
    ds = xr.open_zarr(store, consolidated=False)
    _compare(store, ds.attrs, meta)
    state = xr.open_zarr(store, group=_STATE, consolidated=False).load()
    stored_days = pd.DatetimeIndex(state["time"].values)
    n = min(len(stored_days), len(days))
    if not stored_days[:n].equals(days[:n]):
        raise StoreError(f"the store {store} has a different time axis "
                         f"({stored_days[0].date()}..{stored_days[-1].date()}); use a new path")
    done = state["done"].values.astype(bool)
    used = np.flatnonzero(done)
    last = used[-1] + 1 if used.size else 0  # days up to here fed the stored days
    if last > len(days):
        last = len(days)  # a shorter call: only its own days must match
    old = state["driver"].values.astype(np.uint64)
    differ = np.flatnonzero(old[:last] != sums[:last])
    if differ.size:
        raise StoreError(
            f"the store {store} was rolled out with another coarse driver: it differs on "
            f"{len(differ)} day(s) the store has already used, first {stored_days[differ[0]].date()}. "
            "Use a new store path for this driver, or delete the store to start over."
        )
    if len(days) > len(stored_days):  # a later end: append the new days
        new = days[len(stored_days):]
        more = _empty(new, fine_template(est), var, members, field_attrs(est), _own(meta))
        more.attrs = dict(ds.attrs)  # an append rewrites the attributes: keep the run's
        more.drop_vars(["lat", "lon"]).to_zarr(store, append_dim="time", consolidated=False)
        _state(new, sums[len(stored_days):]).to_zarr(store, group=_STATE, append_dim="time",
                                                      consolidated=False)
    # the driver checksums of the days still to do are this call's
    k = min(len(stored_days), len(days))
    if k > last:
        _state(days[last:k], sums[last:k], done[last:k]).drop_vars("done").to_zarr(
            store, group=_STATE, region={"time": slice(last, k)}, consolidated=False)
    state = xr.open_zarr(store, group=_STATE, consolidated=False).load()
    if len(days) > len(stored_days) or k > last:
        _set_attrs(store, xdownscale_driver=_sha(state["driver"].values.astype(np.uint64)))
    return state


def _set_attrs(store: Path, **attrs) -> None:
    import zarr

    zarr.open_group(str(store), mode="r+", use_consolidated=False).attrs.update(attrs)
    _consolidate(store)


def _first(done: np.ndarray, skip: np.ndarray) -> int:
    todo = np.flatnonzero(~done & ~skip)
    return int(todo[0]) if todo.size else len(done)


def _own(meta: dict) -> bool:
    return bool(meta.get("xdownscale_rollout_own_history", 0))


def _rebuild(store: Path, var: str, done, first: int, seed: np.ndarray, n_lags: int, eps: float):
    """The history of day ``first`` from the stored days (not-done skipped days persist the day
    before, as they did when the days after them were computed): the carried field
    (``<var>_history``) when the store has one, else the output."""
    lo = max(0, first - n_lags)
    while lo > 0 and not done[lo]:
        lo -= 1
    ds = xr.open_zarr(store, consolidated=False)
    name = f"{var}_history" if f"{var}_history" in ds.variables else var
    vals = ds[name].isel(time=slice(lo, first)).values
    logs = np.asarray(log10_transform(vals.astype(np.float32), eps=eps), np.float32)
    seq = list(seed) if lo == 0 else []
    for k, row in enumerate(logs):
        seq.append(row if done[lo + k] else seq[-1])
    return np.stack(seq[-n_lags:]).astype(np.float32)


def _write_day(store, i, var, mean, std, carried=None) -> None:
    data = {var: (("time", "lat", "lon"), mean[None])}
    if std is not None:
        data[f"{var}_std"] = (("time", "lat", "lon"), std[None])
    if carried is not None:
        data[f"{var}_history"] = (("time", "lat", "lon"), carried[None])
    # The value goes in first and the flag after it, so a crash between the two leaves the day
    # marked missing and it is simply redone.
    xr.Dataset(data).to_zarr(
        store, region={"time": slice(i, i + 1), "lat": slice(None), "lon": slice(None)},
        consolidated=False)
    xr.Dataset({"done": (("time",), np.ones(1, bool))}).to_zarr(
        store, group=_STATE, region={"time": slice(i, i + 1)}, consolidated=False)


def rollout(est, coarse, history, *, start=None, end=None, store=None, members=1, seed=None,
            sampler=None, steps=None, nan_days="raise", drift_threshold=DEFAULT_DRIFT_THRESHOLD,
            coarse_consistency=None, check=None, carry="mean") -> xr.Dataset:

    members, seed, steps = check_members(members), check_seed(seed), check_steps(steps)
    if nan_days not in _NAN_DAYS:
        raise ConfigError(f"nan_days={nan_days!r} is not one of {list(_NAN_DAYS)}")
    sampler, steps, seed, fusion = resolve_sampling(est, members, sampler, steps, seed, None)
    # the carried field is stored apart (<var>_history) when it is not the output <var>: the
    # one-step mean carried beside an ensemble-mean output, or the ensemble mean carried
    # beside a conditional-mean output
    point = point_is_conditional_mean(est, members, sampler, steps)
    own_history = carries_mean(est, carry, members, sampler, steps) != point
    cfg = est.config_
    n_lags, var = cfg.n_lags, est.var_
    coarse_log = prepare_coarse(est, coarse)
    hist_log = history_log10(est, history)
    days = _days(start, end, pd.DatetimeIndex(coarse_log["time"].values),
                 pd.DatetimeIndex(hist_log["time"].values))
    check_seasons(est, days)
    seed_buffer = _seed_window(hist_log, days[0], n_lags)
    sums, nan = _scan_driver(coarse_log, days)
    if nan.any() and nan_days == "raise":
        bad = days[nan]
        raise LagWindowError(
            f"the coarse driver has NaN on {len(bad)} day(s) of the rollout: "
            f"{_fmt(bad[:10])}{' ...' if len(bad) > 10 else ''}. A NaN day would make every later "
            "day NaN; fill those days, or pass nan_days='skip' to leave them undone (the day "
            "before stands in for them in the history of the days after)."
        )
    # Drift against the driver, checked (and optionally corrected) day by day: xdownscale.predict.drift.
    check = check or RolloutCheck(drift_threshold,
                                  coarse_consistency=resolve_coarse_consistency(est, coarse_consistency))
    check.start(est, coarse_log, seed_buffer, days[0])
    meta = {"xdownscale_rollout_start": str(days[0].date()), "xdownscale_rollout_seed": int(seed),
            "xdownscale_members": int(members), "xdownscale_sampler": sampler,
            "xdownscale_steps": int(steps), "xdownscale_model": est.model,
            "xdownscale_estimator": estimator_fingerprint(est),
            "xdownscale_history": _sha(seed_buffer)}
    if check.coarse_consistency:  # it changes the numbers; older stores never had it on
        meta["xdownscale_coarse_consistency"] = 1
    meta["xdownscale_rollout_carry"] = carry
    meta["xdownscale_rollout_own_history"] = int(own_history)
    if point:  # it changes the numbers; older stores never had it
        meta["xdownscale_point"] = "conditional_mean"
    if store is None:
        return _run(est, days, coarse_log, seed_buffer, nan, 0, None, meta, members, sampler,
                    steps, seed, fusion, check)
    store = Path(store)
    with WriterLock(store.with_name(store.name + ".lock"), f"the rollout store {store}",
                    StoreError):
        state = _open(store, days, sums, est, var, members, meta)
        done = state["done"].values.astype(bool)[:len(days)]
        first = _first(done, nan)
        buffer = seed_buffer if first == 0 else _rebuild(store, var, done, first, seed_buffer,
                                                         n_lags, cfg.eps)
        _run(est, days, coarse_log, buffer, nan, first, store, meta, members, sampler, steps,
             seed, fusion, check)
    return xr.open_zarr(store).isel(time=slice(0, len(days)))


def _run(est, days, coarse_log, buffer, nan, first, store, meta, members, sampler, steps, seed,
         fusion, check):
    cfg, var = est.config_, est.var_
    keep = store is None
    shape = (len(days), est.lat_.size, est.lon_.size)
    own = _own(meta)
    point = meta.get("xdownscale_point") == "conditional_mean"
    carry_one = point != own  # the one-step mean goes into the history
    # with the point from its own pass, members are sampled for the spread, or for the
    # history when the ensemble is carried
    sample = not point or members > 1 or own
    means = np.full(shape, np.nan, np.float32) if keep else None
    stds = np.full(shape, np.nan, np.float32) if keep and members > 1 else None
    carried = np.full(shape, np.nan, np.float32) if keep and own else None
    bar = progress_bar(total=len(days), initial=first, desc="rollout", unit="day",
                       verbose=cfg.verbose)
    for i in range(first, len(days)):
        if nan[i]:  # nan_days="skip": left undone; the day before stands in for it
            buffer = np.concatenate([buffer[1:], buffer[-1:]])
            bar.update(1)
            continue
        drv = np.asarray(coarse_log.sel(time=[days[i]]).values, np.float32)
        one = ens = std = None
        if sample:  # the check ties them, records them and watches their drift
            vals = predict_days_array(est, [days[i]], drv, buffer[None], members=members,
                                      sampler=sampler, steps=steps, seed=seed, fusion=fusion)
            vals = check(days[i], vals, drv[0])
            ens = vals.mean(axis=0)[0].astype(np.float32)
            std = vals.std(axis=0, ddof=1)[0].astype(np.float32) if members > 1 else None
        if point or carry_one:  # the day's one-step conditional mean, tied like the output
            one = predict_days_array(est, [days[i]], drv, buffer[None], seed=seed, fusion=fusion,
                                     **ONE_STEP)
            one = (check.tie if sample else check)(days[i], one, drv[0])[0, 0].astype(np.float32)
        mean = one if point else ens
        nxt = (one if carry_one else ens) if own else None
        if keep:
            means[i] = mean
            if std is not None:
                stds[i] = std
            if nxt is not None:
                carried[i] = nxt
        else:
            _write_day(store, i, var, mean, std, nxt)
        buffer = np.concatenate([buffer[1:], np.asarray(
            log10_transform(mean if nxt is None else nxt, eps=cfg.eps), np.float32)[None]])
        bar.update(1)
    bar.close()
    if not keep:
        return None
    tmpl = fine_template(est)
    out = xr.Dataset({var: (("time", "lat", "lon"), means, dict(est.attrs_))},
                     coords={"time": days, "lat": tmpl["lat"], "lon": tmpl["lon"]}, attrs=meta)
    extra = _extra_fields(var, members, own, est.attrs_)
    for name, values in ((f"{var}_std", stds), (f"{var}_history", carried)):
        if values is not None:
            out[name] = (("time", "lat", "lon"), values, extra[name])
    return out
