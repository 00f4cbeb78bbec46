"""xarray and dask wrappers around the day kernel of :mod:`xdownscale.predict.day`.

``predict_dataset`` turns coarse days + a fine history into a fine-grid Dataset. With
dask-backed input it returns a lazy Dataset: one task per time chunk × spatial chunk, each
holding the same estimator (placed in the graph once, as one delayed object), so a Pangeo
cluster can spread the days and tiles over workers.

Spatial chunks are taken from the fine history's latitude/longitude chunks (the coarse driver
is small and is regridded whole). Each tile is predicted on a crop that reaches
``config.patch`` fine pixels past it on every side, cut with the whole image's patch tiling
and per-patch noise, and trimmed back to the tile: every patch that touches a tile pixel in
the whole-image prediction is in the crop, so chunked and unchunked results agree to float
rounding. This is ``dask.array.map_overlap`` with ``boundary="none"`` written out, because
the kernel must know each crop's absolute position (for the tiling and the noise seeds),
its two inputs do not share dimensions (the history has a lag axis), and the model must enter
the graph once rather than once per block.
"""

from __future__ import annotations

import ctypes
import os
import sys

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .._coords import ensure_dataarray
from .._progress import bar as progress_bar
from ..data.cells import CellGeometry, tie_days
from ..data.lags import lag_windows
from ..data.regions import normalize_lonlat
from ..data.regrid import regrid_like
from ..data.seasons import season_of
from ..data.transforms import inverse_log10, log10_transform
from ..errors import ConfigError, LagWindowError
from ..estimator import inputs
from ..estimator.checks import check_coarse, check_history, check_members, check_seed, check_steps
from .day import piece_layout, predict_day, resolve_inference

__all__ = ["predict_dataset", "fine_template", "prepare_coarse", "predict_days_array"]


def fine_template(est) -> xr.DataArray:
    """A 2-D DataArray on the estimator's fine grid (coordinates only)."""
    return xr.DataArray(
        np.zeros((est.lat_.size, est.lon_.size), np.float32), dims=("lat", "lon"),
        coords={"lat": ("lat", est.lat_, {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": ("lon", est.lon_, {"standard_name": "longitude", "units": "degrees_east"})})


def prepare_coarse(est, coarse) -> xr.DataArray:
    """The coarse days on the fine grid, in log10 space (lazy)."""
    coarse = check_coarse(est, coarse)  # units, grid, daily stamps, no negatives
    cda = normalize_lonlat(ensure_dataarray(coarse, est.var_)).transpose("time", "lat", "lon")
    if cda.chunks is not None and (len(cda.chunks[1]) > 1 or len(cda.chunks[2]) > 1):
        cda = cda.chunk({"lat": -1, "lon": -1})  # the coarse grid is small; regrid it whole
    on_fine = regrid_like(cda, fine_template(est), method=est.config_.regrid_method,
                          clamp=est.config_.regrid_clamp)
    return log10_transform(on_fine, eps=est.config_.eps)


def check_seasons(est, days) -> np.ndarray:
    """The season of each of ``days``; ConfigError naming any season the estimator lacks."""
    seasons = season_of(pd.DatetimeIndex(days))
    unknown = sorted(set(seasons) - set(est.seasons_))
    if unknown:
        raise ConfigError(
            f"no model was fitted for season(s) {unknown}; this estimator has {est.seasons_}. "
            "Fit with seasons=None (all) or select days of the fitted seasons."
        )
    return seasons


def history_log10(est, history) -> xr.DataArray:
    """The fine history checked against the estimator's grid, in log10 (lat ascending)."""
    if history is None:
        raise LagWindowError(
            "predict needs history= (the fine days before each predicted day) for the encoder; "
            "past the end of the fine record use rollout()"
        )
    history = check_history(est, history)
    hda = normalize_lonlat(ensure_dataarray(history, est.var_)).transpose("time", "lat", "lon")
    if hda.sizes["lat"] != est.lat_.size or hda.sizes["lon"] != est.lon_.size or not (
            np.allclose(hda["lat"].values, est.lat_) and np.allclose(hda["lon"].values, est.lon_)):
        from ..errors import GridMismatchError

        raise GridMismatchError("history must be on the estimator's fine grid (the fine record's)")
    return log10_transform(hda, eps=est.config_.eps)


def predict_days_array(est, days, coarse_log: np.ndarray, hist_log: np.ndarray, *, members, sampler,
                       steps, seed, fusion, origin=(0, 0), inference=None,
                       progress=False) -> np.ndarray:
    """Predict ``days`` from in-memory log10 arrays: ``coarse_log`` (n, wy, wx) on those days
    and ``hist_log`` (n, n_lags, wy, wx), a crop at ``origin`` of the fine grid (the whole
    grid by default). ``inference`` defaults to the config's. Returns (members, n, wy, wx) in
    data units; ``progress`` shows a bar."""
    cfg = est.config_
    image_shape = (est.lat_.size, est.lon_.size)
    inference = resolve_inference(cfg, image_shape, inference or cfg.inference)
    static = inputs.StaticMaps(est.covariate_spec_, est.lat_, est.lon_, est.elevation_)
    wy, wx = np.shape(coarse_log)[-2:]
    crop = np.s_[:, origin[0]:origin[0] + wy, origin[1]:origin[1] + wx]
    out = np.empty((members, len(days), wy, wx), np.float32)
    for i, day in enumerate(progress_bar(pd.DatetimeIndex(days), desc="predict", unit="day",
                                         verbose=cfg.verbose and progress)):
        season = str(season_of(pd.DatetimeIndex([day]))[0])
        scaler = est.scalers_[season]
        hist = np.asarray(scaler.transform(hist_log[i]), np.float32)
        drv = np.asarray(scaler.transform(coarse_log[i][None]), np.float32)
        cond = np.concatenate([drv, static.covariates([day])[0][crop]], axis=0)
        scaled = predict_day(est.modules_[season], cfg, hist, cond, day=day, members=members,
                             sampler=sampler, steps=steps, eta=cfg.eta, seed=seed, fusion=fusion,
                             device=est.device_, origin=origin, image_shape=image_shape,
                             inference=inference, spread=est.spread_.get(season, 1.0))
        out[:, i] = np.asarray(inverse_log10(scaler.inverse_transform(scaled)), np.float32)
    return out


def resolve_sampling(est, members, sampler, steps, seed, fusion):
    """``(sampler, steps, seed, fusion)``: the call's choices checked, the config's defaults."""
    cfg = est.config_
    check_members(members)
    sampler = sampler or cfg.sampler
    fusion = fusion or cfg.fusion
    if sampler not in ("ddpm", "ddim", "dpmsolver"):
        raise ConfigError(f"sampler={sampler!r} is not one of ['ddpm', 'ddim', 'dpmsolver']")
    if fusion not in ("posthoc", "per_step"):
        raise ConfigError(f"fusion={fusion!r} is not one of ['posthoc', 'per_step']")
    if steps is None:
        steps = cfg.timesteps if sampler == "ddpm" else cfg.sample_steps
    return sampler, check_steps(steps), cfg.seed if seed is None else check_seed(seed), fusion


#: The sampling of the DDPM's one-step conditional-mean estimate: one DDIM step from noise.
ONE_STEP = {"members": 1, "sampler": "ddim", "steps": 1}


def is_one_step(members: int, sampler: str, steps: int) -> bool:
    """Whether the members asked for are themselves the one-step estimate."""
    return members == 1 and sampler == "ddim" and steps == 1


def point_is_conditional_mean(est, members: int, sampler: str, steps: int) -> bool:
    """Whether ``<var>`` comes from a pass of its own, the DDPM's one-step estimate of the
    conditional mean (``point_estimate="conditional_mean"``), rather than from the members."""
    return (est.model == "ddpm" and est.config_.point_estimate == "conditional_mean"
            and not is_one_step(members, sampler, steps))


def predict_dataset(est, coarse, history, *, members=1, sampler=None, steps=None, seed=None,
                    keep_members=False, fusion=None, inference=None,
                    coarse_consistency=None) -> xr.Dataset:
    sampler, steps, seed, fusion = resolve_sampling(est, members, sampler, steps, seed, fusion)
    # resolved on the whole grid: every chunk then predicts with the same pieces
    inference = resolve_inference(est.config_, (est.lat_.size, est.lon_.size),
                                  inference or est.config_.inference)
    tie = resolve_coarse_consistency(est, coarse_consistency)
    coarse_log = prepare_coarse(est, coarse)
    days = pd.DatetimeIndex(coarse_log["time"].values)
    check_seasons(est, days)
    if tie:
        check_offsets(est, days)
    hist_log = history_log10(est, history)
    windows = lag_windows(days.to_numpy(), hist_log["time"].values, est.config_.n_lags,
                          on_missing="raise")
    index = np.asarray(windows.index)
    kwargs = dict(members=members, sampler=sampler, steps=steps, seed=seed, fusion=fusion,
                  inference=inference)
    lazy = coarse_log.chunks is not None or hist_log.chunks is not None

    def run(kw):
        if not lazy:
            out = predict_days_array(est, days, coarse_log.values, hist_log.values[index],
                                     progress=True, **kw)
        else:
            out = _predict_lazy(est, days, coarse_log, hist_log, index, kw["members"], kw)
        return _tie_to_driver(est, days, out, coarse_log) if tie else out

    point = None
    if point_is_conditional_mean(est, members, sampler, steps):
        point = run({**kwargs, **ONE_STEP})[0]
    # with the point from its own pass, one member is sampled only to be kept
    values = None if point is not None and members == 1 and not keep_members else run(kwargs)
    return _to_dataset(est, days, values, members, keep_members, sampler, steps, fusion, seed,
                       inference, tie, point)


def resolve_coarse_consistency(est, coarse_consistency) -> bool:
    """The call's ``coarse_consistency`` (a bool, or None: the config's default for the model)."""
    if coarse_consistency is None:
        return est.config_.ties_to_driver(est.model)
    if not isinstance(coarse_consistency, (bool, np.bool_)):
        raise ConfigError(f"coarse_consistency must be True, False or None, got "
                          f"{coarse_consistency!r}")
    return bool(coarse_consistency)


def check_offsets(est, days) -> None:
    """ConfigError unless every season of ``days`` has the training days' per-cell offsets."""
    missing = sorted(set(season_of(pd.DatetimeIndex(days))) - set(est.cell_offsets_))
    if missing:
        raise ConfigError(
            f"coarse_consistency=True needs the training days' per-cell offsets, which this "
            f"estimator lacks for {missing} (saved by an older xdownscale); refit, or predict "
            "with coarse_consistency=False")


def _tie_to_driver(est, days, values, coarse_log: xr.DataArray):
    """The coarse-consistency step (:mod:`xdownscale.data.cells`) on predicted ``values``
    (members, n, ny, nx): each day with its season's training-day offsets. It needs whole
    days, so a lazy prediction tiled in space is joined per time chunk for it."""
    grid = est.coarse_grid_
    geom = CellGeometry.from_grids(est.lat_, est.lon_, grid["lat"], grid["lon"])
    offsets = [est.cell_offsets_[s] for s in season_of(pd.DatetimeIndex(days))]
    eps = est.config_.eps
    if not isinstance(values, da.Array):
        return tie_days(values, np.asarray(coarse_log.values, np.float64), offsets, geom, eps)
    chunks = values.chunks
    values = values.rechunk({0: -1, 2: -1, 3: -1})
    drv = coarse_log.data if coarse_log.chunks is not None else da.from_array(coarse_log.values)
    drv = drv.rechunk((values.chunks[1], -1, -1))

    def block(vals, drv_block, block_info=None):
        lo, hi = block_info[0]["array-location"][1]
        return tie_days(vals, np.asarray(drv_block[0], np.float64), offsets[lo:hi], geom, eps)

    # back to the prediction's tiles, so the output is chunked like the history
    return da.map_blocks(block, values, drv[None], dtype=values.dtype).rechunk(chunks)


def _spatial_chunks(est, hist_log: xr.DataArray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Fine-grid tiles: the history's latitude/longitude chunks, or the whole grid."""
    if hist_log.chunks is None:
        return (est.lat_.size,), (est.lon_.size,)
    return hist_log.chunks[1], hist_log.chunks[2]


def _predict_lazy(est, days, coarse_log, hist_log, index, members, kwargs) -> da.Array:
    """One delayed task per time chunk x fine tile, each on its tile plus ``patch`` pixels."""
    ny, nx = est.lat_.size, est.lon_.size
    ychunks, xchunks = _spatial_chunks(est, hist_log)
    tiled = len(ychunks) > 1 or len(xchunks) > 1
    if tiled and kwargs["fusion"] == "per_step":
        raise ConfigError(
            "fusion='per_step' couples every patch of the day at each step, so it cannot run "
            "on spatial tiles; chunk the history with {'lat': -1, 'lon': -1} or use "
            "fusion='posthoc'")
    cdata = coarse_log.data if coarse_log.chunks is not None else da.from_array(
        coarse_log.values, chunks=(1, -1, -1))
    # A history in memory is wrapped once, so the graph holds it once and slices it per task.
    hdata = hist_log.data if hist_log.chunks is not None else da.from_array(
        hist_log.values, chunks=(est.config_.n_lags, -1, -1))
    # a crop reaches one piece side past its tile: every piece that touches the tile in
    # the whole-image layout is then wholly inside the crop
    depth = piece_layout(est.config_, (ny, nx), kwargs["inference"])[0]
    tbounds = np.cumsum((0,) + cdata.chunks[0])
    ybounds, xbounds = np.cumsum((0,) + tuple(ychunks)), np.cumsum((0,) + tuple(xchunks))
    est_d = dask.delayed(est, pure=True, traverse=False)  # the model enters the graph once
    blocks = []
    for lo, hi in zip(tbounds[:-1], tbounds[1:], strict=True):
        rows = []
        for y0, y1 in zip(ybounds[:-1], ybounds[1:], strict=True):
            row = []
            for x0, x1 in zip(xbounds[:-1], xbounds[1:], strict=True):
                wy0, wy1 = max(0, y0 - depth), min(ny, y1 + depth)
                wx0, wx1 = max(0, x0 - depth), min(nx, x1 + depth)
                window = np.s_[wy0:wy1, wx0:wx1]
                cblock = _time_slab(cdata, lo, hi, window)
                # the lag rows of consecutive days form (nearly) one run of the record: a
                # plain slice of it is a few chunks, where a fancy index is a shuffle
                first, last = int(index[lo:hi].min()), int(index[lo:hi].max())
                hblock = _time_slab(hdata, first, last + 1, window)
                keep = np.s_[..., y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
                task = dask.delayed(_predict_block, pure=True)(
                    est_d, days[lo:hi], cblock, hblock, index[lo:hi] - first, (wy0, wx0), keep,
                    kwargs)
                row.append(da.from_delayed(task, shape=(members, hi - lo, y1 - y0, x1 - x0),
                                           dtype=np.float32))
            rows.append(row)
        blocks.append(rows)
    return da.block(blocks)


def _time_slab(arr: da.Array, lo: int, hi: int, window):
    """``arr[lo:hi][:, window]`` for a task: when ``arr`` is one chunk in space, a dict of
    references to the time chunks that hold those rows, which the task joins and crops itself
    (:func:`_join_slab`); else the sliced dask array (spatially tiled input). Slicing the dask
    array adds a getitem task per chunk, a concatenation and a finalize task for every
    prediction task: most of the scheduler's work on a cluster (``bench_scaleout.py``)."""
    if len(arr.chunks[1]) > 1 or len(arr.chunks[2]) > 1:
        return arr[(slice(lo, hi), *window)]
    bounds = np.cumsum((0,) + arr.chunks[0])
    first = int(np.searchsorted(bounds, lo, side="right")) - 1
    last = int(np.searchsorted(bounds, hi, side="left"))
    return {"chunks": arr.to_delayed()[first:last, 0, 0].tolist(),
            "rows": (lo - int(bounds[first]), hi - int(bounds[first])), "window": window}


def _join_slab(slab) -> np.ndarray:
    """The array a :func:`_time_slab` stands for, in a task."""
    if not isinstance(slab, dict):
        return np.asarray(slab)
    chunks = slab["chunks"]
    rows = np.concatenate(chunks, axis=0) if len(chunks) > 1 else np.asarray(chunks[0])
    lo, hi = slab["rows"]
    return rows[(slice(lo, hi), *slab["window"])]


_MALLOC = {"done": False}


def _keep_heap_for_torch() -> None:
    """Undo, once per worker process, what dask's nanny does to glibc's malloc for torch.

    The nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (so freed memory goes back
    to the OS). Setting any malloc threshold switches off glibc's dynamic mmap threshold, so
    every tensor above 128 kB is mmap'ed, page-faulted in and unmapped again, at every layer
    of every network call: measured 2x the time of the same prediction in a plain process
    (``benchmarks/bench_scaleout.py``). Raising the mmap and trim thresholds lets the heap
    reuse those blocks. Nothing is changed unless that variable is set (a nanny's worker, or
    a user who set it); ``XDOWNSCALE_KEEP_MALLOC=1`` opts out.
    """
    if _MALLOC["done"]:
        return
    _MALLOC["done"] = True
    if (not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" not in os.environ
            or os.environ.get("XDOWNSCALE_KEEP_MALLOC") == "1"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: blocks up to 32 MiB from the heap
        libc.mallopt(-1, 128 * 2**20)  # M_TRIM_THRESHOLD: keep up to 128 MiB free at the top
    except (OSError, AttributeError):  # not glibc
        pass


def _predict_block(est, days, cblock, hblock, rows, origin, keep, kwargs):
    """One task: ``rows`` (n, n_lags) index the lag days of ``days`` in ``hblock``."""
    _keep_heap_for_torch()
    cblock = _join_slab(cblock)
    hist = _join_slab(hblock)[rows]
    return predict_days_array(est, days, cblock, hist, origin=origin, **kwargs)[keep]


def _to_dataset(est, days, values, members, keep_members, sampler, steps, fusion, seed,
                inference="patches", coarse_consistency=False, point=None):
    """``values`` (members, time, lat, lon) as a Dataset; ``point`` (time, lat, lon), when
    given, is ``<var>`` instead of the members' mean (``values`` may then be None)."""
    var = est.var_
    tmpl = fine_template(est)
    coords = {"time": days, "lat": tmpl["lat"], "lon": tmpl["lon"]}
    xp = da if isinstance(values if point is None else point, da.Array) else np
    mean = values.mean(axis=0) if point is None else point
    attrs = {**field_attrs(est),
             "xdownscale_model": est.model, "xdownscale_sampler": sampler if est.model == "ddpm"
             else "deterministic", "xdownscale_steps": int(steps) if est.model == "ddpm" else 0,
             "xdownscale_fusion": fusion, "xdownscale_inference": inference,
             "xdownscale_members": int(members),
             "xdownscale_coarse_consistency": int(bool(coarse_consistency)),
             "xdownscale_seed": int(seed)}
    if est.model == "ddpm":
        one = point is not None or is_one_step(members, sampler, steps)
        attrs["xdownscale_point"] = "conditional_mean" if one else "ensemble_mean"
    ds = xr.Dataset({var: (("time", "lat", "lon"), mean, attrs)}, coords=coords)
    if members > 1:
        ds[f"{var}_std"] = (("time", "lat", "lon"), xp.std(values, axis=0, ddof=1),
                            {"long_name": f"ensemble standard deviation of {var}", "units":
                             est.attrs_.get("units", "1")})
    if keep_members:
        ds[f"{var}_members"] = (("member", "time", "lat", "lon"), values, attrs)
        ds = ds.assign_coords(member=np.arange(members))
    ds.attrs = {"title": "xdownscale prediction", "source": "xdownscale " + _version(),
                "Conventions": "CF-1.8", "history": f"{pd.Timestamp.now('UTC'):%Y-%m-%dT%H:%M:%SZ}"
                f" predicted by xdownscale {_version()} ({est.model})"}
    ds["time"].attrs.update(standard_name="time", long_name="time", axis="T")
    return ds


_PROVENANCE = ("source", "history", "title", "references", "comment", "institution")


def field_attrs(est) -> dict:
    """Attributes of a predicted field: the fine data's description (long_name, units...)
    travels, its provenance (source, history...) does not, since the field is ours."""
    return {**{k: v for k, v in est.attrs_.items() if k not in _PROVENANCE},
            "long_name": est.attrs_.get("long_name", str(est.var_))}


def _version() -> str:
    from .. import __version__

    return __version__
