"""Out-of-data checks of rolled-out years against the envelopes of the fine and coarse records.

Paper §2.5.3 and Figures 7-9: where no fine truth exists, a rollout is judged by whether its
spatial and temporal structure stays plausible: its semivariogram, the ACF/PACF of its
regional mean and its lag RMSE/R² should look like those of the fine record (G5NR) and of the
coarse record regridded to the fine grid (MERRA-2). "Look like" is made a number here: each
record is cut into *blocks* (a contiguous run of days of one season, e.g. JJA 2006), every
statistic is computed per block, and a season's *envelope* is the range [min, max] of that
statistic over the blocks of the season, for the fine record, for the coarse record, and for
both together. A rolled-out block is *inside* when its statistic lies in the envelope of both
records for its season.

The statistics are the diagnostics' own (:func:`semivariogram` sill and range,
:func:`correlogram`, :func:`lag_metrics`), all in log10.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import day_numbers
from ..data.seasons import SEASONS, season_of
from ..errors import ConfigError
from ._common import field, target_days
from .temporal import correlogram, lag_metrics
from .variogram import semivariogram

__all__ = ["ood_checks", "plot_ood_checks", "ENVELOPE_STATS"]

PRODUCTS = ("rollout", "fine", "coarse")
#: Scalar statistics given an envelope: semivariogram sill, lag-1 ACF, lag-1 image R².
ENVELOPE_STATS = ("sill", "acf1", "lag1_r2")


def _blocks(times: pd.DatetimeIndex, min_days: int) -> list[np.ndarray]:
    """Positions of each run of consecutive days of one season, at least ``min_days`` long."""
    if len(times) == 0:
        return []
    season = season_of(times)
    day = day_numbers(times)
    cut = np.r_[True, (np.diff(day) != 1) | (season[1:] != season[:-1])]
    starts = np.flatnonzero(cut)
    stops = np.r_[starts[1:], len(times)]
    return [np.arange(a, b) for a, b in zip(starts, stops, strict=True) if b - a >= min_days]


def _on_grid(da: xr.DataArray, like: xr.DataArray, method: str) -> xr.DataArray:
    same = all(da.sizes[d] == like.sizes[d] and np.allclose(da[d], like[d]) for d in ("lat", "lon"))
    if same:
        return da.assign_coords(lat=like["lat"], lon=like["lon"])
    from ..data.regrid import regrid_like

    return regrid_like(da, like.isel(time=0, drop=True), method=method)


def _block_stats(da: xr.DataArray, nlags, max_lag, vario_kw) -> xr.Dataset:
    vg = semivariogram(da, **vario_kw)
    cg = correlogram(da, nlags)
    lm = lag_metrics(da, max_lag)
    out = xr.Dataset({
        "sill": vg["sill"], "range": vg["range"], "gamma": vg["gamma_mean"],
        "acf": cg["acf"], "pacf": cg["pacf"],
        "lag_rmse": lm["rmse"].rename(lag="lag_day"), "lag_r2": lm["r2"].rename(lag="lag_day"),
    })
    out = out.drop_vars([c for c in out.coords if c not in ("lag", "lag_day", "bin")])
    return out.compute()


def ood_checks(rollout: xr.Dataset | xr.DataArray, fine: xr.Dataset | xr.DataArray,
               coarse: xr.Dataset | xr.DataArray, *, var: Hashable | None = None,
               nlags: int = 10, max_lag: int = 5, n_pairs: int = 5000,
               max_dist_km: float = 600, n_bins: int = 20, model: str = "spherical",
               seed: int = 0, min_days: int = 20, method: str = "cubic") -> xr.Dataset:
    """Semivariogram sill, ACF/PACF and lag RMSE/R² of rolled-out blocks against the
    envelopes of the fine and coarse records.

    Parameters
    ----------
    rollout : xarray.Dataset or xarray.DataArray
        Rolled-out daily fields on the fine grid (e.g. ``est.rollout(...)``).
    fine : xarray.Dataset or xarray.DataArray
        The fine record (G5NR-like), same grid.
    coarse : xarray.Dataset or xarray.DataArray
        The coarse record (MERRA-2-like): on the fine grid, or on its own grid (then regridded
        with ``method``). Every season block of it counts, so pass the years wanted (each day
        costs one semivariogram).
    var : hashable, optional
        Variable name in every input; default ``"DUEXTTAU"``.
    nlags, max_lag : int
        Lags of the ACF/PACF and of the lag metrics.
    n_pairs, max_dist_km, n_bins, model, seed
        Passed to :func:`semivariogram` (fewer pairs than the paper's 30 000 by default: the
        check runs on many blocks).
    min_days : int
        Shortest block kept (shorter runs, e.g. a season's first few days, say little).
    method : str
        Regridding method for a coarse record on its own grid.

    Returns
    -------
    xarray.Dataset
        Dim ``block`` with coordinates ``product`` (rollout, fine, coarse), ``season``,
        ``start``, ``end``, ``n_days``: ``sill``, ``range``, ``gamma(block, bin)``,
        ``acf``/``pacf(block, lag)``, ``lag_rmse``/``lag_r2(block, lag_day)``, ``acf1`` (lag-1
        ACF), ``lag1_r2``; for each of :data:`ENVELOPE_STATS` an envelope
        ``<stat>_envelope(season, reference, bound)`` (reference fine, coarse, both; bound
        lower, upper) and ``<stat>_inside(block)`` (inside the season's *both* envelope; NaN
        when the season has no reference block). ``attrs["inside_<stat>"]``: whether every
        rolled-out block is inside.

    Raises
    ------
    ConfigError
        No block of ``min_days`` days in the rollout.
    """
    r = target_days(field(rollout, var)).transpose("time", "lat", "lon")
    f = target_days(field(fine, var)).transpose("time", "lat", "lon")
    c = _on_grid(target_days(field(coarse, var)).transpose("time", "lat", "lon"), r, method)
    vario_kw = dict(n_pairs=n_pairs, max_dist_km=max_dist_km, n_bins=n_bins, model=model,
                    seed=seed)
    stats, meta = [], []
    for product, da in zip(PRODUCTS, (r, f, c), strict=True):
        times = pd.DatetimeIndex(da["time"].values)
        for pos in _blocks(times, min_days):
            stats.append(_block_stats(da.isel(time=pos), nlags, max_lag, vario_kw))
            meta.append((product, season_of(times[pos[0]:pos[0] + 1])[0], times[pos[0]],
                         times[pos[-1]], len(pos)))
    if not any(m[0] == "rollout" for m in meta):
        raise ConfigError(f"the rollout has no run of {min_days} days of one season; lower "
                          "min_days or roll out longer")
    out = xr.concat(stats, dim="block", join="outer")
    product, season, start, end, n = (np.array(v) for v in zip(*meta, strict=True))
    out = out.assign_coords(block=np.arange(len(meta)), product=("block", product),
                            season=("block", season), start=("block", start),
                            end=("block", end), n_days=("block", n))
    out["acf1"] = out["acf"].sel(lag=1, drop=True)
    out["lag1_r2"] = out["lag_r2"].sel(lag_day=1, drop=True)
    seasons = [s for s in SEASONS if s in set(season)]
    refs = {"fine": product == "fine", "coarse": product == "coarse",
            "both": product != "rollout"}
    for stat in ENVELOPE_STATS:
        env = np.full((len(seasons), len(refs), 2), np.nan)
        for i, s in enumerate(seasons):
            for j, sel in enumerate(refs.values()):
                vals = out[stat].values[sel & (season == s)]
                vals = vals[np.isfinite(vals)]
                if vals.size:
                    env[i, j] = vals.min(), vals.max()
        out[f"{stat}_envelope"] = xr.DataArray(
            env, dims=("season_env", "reference", "bound"),
            coords={"season_env": seasons, "reference": list(refs), "bound": ["lower", "upper"]})
        both = out[f"{stat}_envelope"].sel(reference="both")
        lo = both.sel(bound="lower").reindex(season_env=season).values
        hi = both.sel(bound="upper").reindex(season_env=season).values
        v = out[stat].values
        inside = np.where(np.isfinite(lo), (v >= lo) & (v <= hi), np.nan)
        out[f"{stat}_inside"] = ("block", inside)
        rolled = inside[product == "rollout"]
        out.attrs[f"inside_{stat}"] = int(bool(np.all(rolled == 1)))
    out.attrs.update({"xdownscale_diagnostic": "ood_checks", "transform": "log10",
                      "n_pairs": int(n_pairs), "min_days": int(min_days)})
    return out


def plot_ood_checks(result: xr.Dataset, axes=None):
    """One figure: sill and lag-1 ACF per block against the season envelopes (top), the
    ACF and lag R² curves of the rolled-out blocks inside the reference bands (bottom).

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        Four panels.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 2, figsize=(10, 7))
    axes = np.asarray(axes).ravel()
    seasons = list(result["season_env"].values)
    x = np.arange(len(seasons))
    prod = result["product"].values
    colours = {"fine": "C0", "coarse": "C1", "rollout": "C3"}
    for ax, stat, title in ((axes[0], "sill", "semivariogram sill (log10)"),
                            (axes[1], "acf1", "lag-1 ACF of the regional mean")):
        env = result[f"{stat}_envelope"]
        for k, ref in enumerate(("fine", "coarse")):
            e = env.sel(reference=ref)
            lo, hi = e.sel(bound="lower").values, e.sel(bound="upper").values
            xs = x + (k - 0.5) * 0.2
            ax.vlines(xs, lo, hi, color=colours[ref], lw=6, alpha=0.5, label=f"{ref} envelope")
            # an envelope of one block has no length: mark its ends so it still shows
            ax.plot(np.r_[xs, xs], np.r_[lo, hi], "_", color=colours[ref], ms=12, mew=2)
        pos = prod == "rollout"
        sx = np.array([seasons.index(s) for s in result["season"].values[pos]])
        ax.plot(sx + 0.25, result[stat].values[pos], "o", color=colours["rollout"],
                label="rolled-out blocks")
        ax.set_xticks(x, seasons)
        ax.set_title(title)
    axes[0].legend(fontsize="x-small")
    roll_seasons = set(result["season"].values[prod == "rollout"])
    for ax, name, lag, title in ((axes[2], "acf", "lag", "ACF of the regional mean"),
                                 (axes[3], "lag_r2", "lag_day", "image-wise R² against lag")):
        for ref in ("fine", "coarse"):
            sel = (prod == ref) & np.isin(result["season"].values, list(roll_seasons))
            if sel.any():
                v = result[name].values[sel]
                ax.fill_between(result[lag].values, np.nanmin(v, 0), np.nanmax(v, 0),
                                color=colours[ref], alpha=0.25, label=f"{ref} blocks")
        for b in np.flatnonzero(prod == "rollout"):
            ax.plot(result[lag].values, result[name].values[b], color=colours["rollout"],
                    lw=1, label="rolled-out blocks" if b == np.flatnonzero(prod == "rollout")[0]
                    else None)
        ax.set_xlabel("lag (days)")
        ax.set_title(title)
    axes[2].legend(fontsize="x-small")
    return axes
