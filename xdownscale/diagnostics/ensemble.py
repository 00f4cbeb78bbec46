"""Calibration of an ensemble prediction: rank histograms and the spread/skill ratio.

Both judge an ensemble ``(member, time, lat, lon)`` against the true fields pixel by pixel
and day by day; the fair and standard CRPS of the same ensemble are in
:func:`xdownscale.diagnostics.skill` (``crps=``).
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..errors import DimensionError
from ._common import (
    LOG_EPS,
    check_core_unchunked,
    check_same_grid,
    day_numbers,
    field,
    maybe_log10,
    quiet,
    tag,
)

__all__ = ["rank_histogram", "spread_skill"]


def _rank_counts(ens: np.ndarray, obs: np.ndarray, day: np.ndarray, *, seed: int) -> np.ndarray:
    """Kernel: per-day counts of the truth's rank among the members, ``(..., m + 1)``.

    ``ens`` is ``(..., m, ny, nx)``, ``obs`` and ``day`` broadcast against ``(..., ny, nx)``
    and ``(...)``. The rank is 1 + the number of members below the truth; ties between the
    truth and members are broken uniformly at random (Hamill 2001), from a generator seeded
    by ``(seed, day number)`` so that counts do not depend on dask chunking. Pixels count
    when the truth and every member are finite.
    """
    m = ens.shape[-3]
    lead = np.broadcast_shapes(ens.shape[:-3], obs.shape[:-2], np.shape(day))
    ens = np.broadcast_to(ens, (*lead, *ens.shape[-3:])).reshape(-1, *ens.shape[-3:])
    obs = np.broadcast_to(obs, (*lead, *obs.shape[-2:])).reshape(-1, *obs.shape[-2:])
    days = np.broadcast_to(day, lead).reshape(-1)
    out = np.zeros((ens.shape[0], m + 1), dtype=np.int64)
    for k in range(ens.shape[0]):
        ok = np.isfinite(obs[k]) & np.isfinite(ens[k]).all(axis=0)
        x, y = ens[k][:, ok], obs[k][ok]
        below = (x < y).sum(axis=0)
        tied = (x == y).sum(axis=0)
        rng = np.random.default_rng([int(seed), int(days[k]) % 2**32])
        rank = below + np.floor(rng.random(y.shape) * (tied + 1)).astype(np.int64)
        out[k] = np.bincount(rank, minlength=m + 1)
    return out.reshape(*lead, m + 1)


def _ensemble(prediction, truth, var, truth_var, member_dim, what):
    """The ensemble (member dim renamed to ``member``) and the truth, aligned on shared days."""
    ens = field(prediction, var)
    obs = field(truth, var if truth_var is None else truth_var)
    if member_dim not in ens.dims:
        raise DimensionError(
            f"{what} needs an ensemble: no {member_dim!r} dimension in the prediction "
            "(predict with members > 1 and keep_members=True)"
        )
    check_same_grid(ens, obs, what)
    ens = ens.rename({member_dim: "member"}).assign_coords(lat=obs["lat"], lon=obs["lon"])
    for arr in (ens, obs):
        check_core_unchunked(arr, ("lat", "lon", "member"), what)
    ens, obs = xr.align(ens, obs, join="inner", exclude=["lat", "lon", "member"])
    return ens, obs


def rank_histogram(
    prediction: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    *,
    var: Hashable | None = None,
    truth_var: Hashable | None = None,
    member_dim: Hashable = "member",
    seed: int = 0,
) -> xr.Dataset:
    """Rank (Talagrand) histogram of the truth among the ensemble members, per day and pooled.

    A calibrated ensemble gives a flat histogram; too little spread piles the truth into the
    two extreme ranks (U shape), a bias tilts it. Ranks do not change under the monotone
    ``log10``, so the fields are ranked as given.

    Parameters
    ----------
    prediction : xarray.Dataset or xarray.DataArray
        Ensemble with dims ``member_dim, time, lat, lon``.
    truth : xarray.Dataset or xarray.DataArray
        True fields on the same grid; only the days both share count.
    var, truth_var : hashable, optional
        Variable names; default ``"DUEXTTAU"`` (``truth_var`` defaults to ``var``).
    member_dim : hashable
        Name of the ensemble dimension.
    seed : int
        Seeds the random breaking of ties (with each day's number).

    Returns
    -------
    xarray.Dataset
        Dim ``rank`` = 1 … m + 1 (1: the truth below every member). ``counts(time, rank)``,
        ``counts_total(rank)``, ``frequency(rank)`` (pooled, sums to 1); scalars
        ``delta`` = chi² / m of the pooled counts against a flat histogram (Candille &
        Talagrand 2005: about 1 for a reliable ensemble with independent pixels, far more
        than 1 here since neighbouring pixels are correlated, so compare it between
        ensembles rather than with 1) and ``extreme_ratio`` = mean frequency of the two
        outer ranks / 1 / (m + 1) (1: flat, > 1: too little spread, < 1: too much). Lazy on
        dask input.

    Raises
    ------
    DimensionError
        No member dimension, or ``lat``/``lon``/member of a dask-backed input are chunked.
    GridMismatchError
        The two fields are not on the same grid.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> dims = ("time", "lat", "lon")
    >>> coords = {"time": np.array(["2005-06-01"], "datetime64[ns]"),
    ...           "lat": np.arange(20.0, 24.0), "lon": np.arange(30.0, 34.0)}
    >>> truth = xr.DataArray(rng.normal(size=(1, 4, 4)), coords, dims, name="DUEXTTAU")
    >>> ens = truth.expand_dims(member=3) * 0 + 10.0   # every member far above the truth
    >>> rank_histogram(ens, truth)["counts_total"].values
    array([16,  0,  0,  0])
    """
    ens, obs = _ensemble(prediction, truth, var, truth_var, member_dim, "rank_histogram")
    m = ens.sizes["member"]
    day = (xr.DataArray(day_numbers(obs), dims="time", coords={"time": obs["time"]})
           if "time" in obs.dims else xr.DataArray(0))
    counts = xr.apply_ufunc(
        _rank_counts, ens, obs, day,
        input_core_dims=[["member", "lat", "lon"], ["lat", "lon"], []],
        output_core_dims=[["rank"]], kwargs={"seed": int(seed)}, dask="parallelized",
        output_dtypes=[np.int64], dask_gufunc_kwargs={"output_sizes": {"rank": m + 1}},
    ).assign_coords(rank=np.arange(1, m + 2))
    total = counts.sum("time") if "time" in counts.dims else counts
    freq = total / total.sum("rank")
    expected = total.sum("rank") / (m + 1)
    delta = ((total - expected) ** 2 / expected).sum("rank") / m
    extreme = 0.5 * (freq.isel(rank=0) + freq.isel(rank=-1)) * (m + 1)
    out = xr.Dataset({
        "counts": counts.assign_attrs(long_name="pixels with the truth at this rank"),
        "counts_total": total,
        "frequency": freq.assign_attrs(long_name="relative frequency of the truth's rank"),
        "delta": delta.assign_attrs(long_name="chi-square / m against a flat histogram"),
        "extreme_ratio": extreme.drop_vars("rank", errors="ignore").assign_attrs(
            long_name="outer-rank frequency / flat frequency"),
    })
    out = out.drop_vars([c for c in out.coords if c not in ("rank", "time")])
    return tag(out, "rank_histogram", variable=str(ens.name), members=int(m), seed=int(seed))


def _spread_error(ens: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Kernel: per-day pixel sums ``[sum var, sum squared error, n]`` -> ``(..., 3)``.

    ``var`` is the member variance (ddof=1), the squared error that of the ensemble mean;
    pixels count when the truth and every member are finite.
    """
    ok = np.isfinite(obs) & np.isfinite(ens).all(axis=-3)
    with quiet():
        var = ens.var(axis=-3, ddof=1)
        se = (ens.mean(axis=-3) - obs) ** 2
    return np.stack([np.where(ok, var, 0.0).sum(axis=(-2, -1)),
                     np.where(ok, se, 0.0).sum(axis=(-2, -1)),
                     ok.sum(axis=(-2, -1)).astype(np.float64)], axis=-1)


def spread_skill(
    prediction: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    *,
    var: Hashable | None = None,
    truth_var: Hashable | None = None,
    member_dim: Hashable = "member",
    log10: bool = True,
    eps: float = LOG_EPS,
) -> xr.Dataset:
    """Spread/skill ratio of an ensemble, per day and pooled over all days.

    The ratio is the *variance form* with the finite-ensemble correction,
    ``SSR = sqrt((m + 1) / m * mean(s²) / mean((ens_mean - truth)²))``, the means over
    pixels (and days, for the pooled ratio) and ``s²`` the member variance (ddof=1). Why this
    form: if the truth and the m members are exchangeable draws from one distribution, the
    error of the ensemble mean has expected variance ``(1 + 1/m) E[s²]``, so this ratio of
    *mean variances* has expectation close to 1 (Fortin et al. 2014), whereas averaging
    standard deviations first (mean s / RMSE) is biased low by Jensen's inequality where the
    spread varies from pixel to pixel. It is the same formula as the per-day ``ssr`` of
    :func:`~xdownscale.diagnostics.skill`.

    Parameters
    ----------
    prediction : xarray.Dataset or xarray.DataArray
        Ensemble with dims ``member_dim, time, lat, lon`` (data units).
    truth : xarray.Dataset or xarray.DataArray
        True fields on the same grid; only the days both share count.
    var, truth_var : hashable, optional
        Variable names; default ``"DUEXTTAU"``.
    member_dim : hashable
        Name of the ensemble dimension.
    log10 : bool
        Judge ``log10(max(x, eps))`` (the paper's space, default) instead of data units.
    eps : float
        Floor before ``log10``.

    Returns
    -------
    xarray.Dataset
        ``spread(time)`` = sqrt(mean s²), ``rmse(time)`` of the ensemble mean and
        ``ssr(time)``; pooled scalars ``spread_pooled``, ``rmse_pooled`` and ``ssr_pooled``
        (every valid pixel of every day weighs the same). Lazy on dask input.

    Raises
    ------
    DimensionError
        No member dimension, or ``lat``/``lon``/member of a dask-backed input are chunked.
    GridMismatchError
        The two fields are not on the same grid.
    """
    ens, obs = _ensemble(prediction, truth, var, truth_var, member_dim, "spread_skill")
    m = ens.sizes["member"]
    ens, obs = maybe_log10(ens, log10, eps), maybe_log10(obs, log10, eps)
    sums = xr.apply_ufunc(
        _spread_error, ens, obs, input_core_dims=[["member", "lat", "lon"], ["lat", "lon"]],
        output_core_dims=[["part"]], dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"part": 3}},
    )
    s_var, s_se, n = (sums.isel(part=i, drop=True) for i in range(3))
    factor = (m + 1) / m if m > 1 else np.nan
    pooled = [x.sum("time") if "time" in x.dims else x for x in (s_var, s_se, n)]

    def ratio(v, e):
        return np.sqrt(factor * v / e)

    out = xr.Dataset({
        "spread": np.sqrt(s_var / n), "rmse": np.sqrt(s_se / n),
        "ssr": ratio(s_var, s_se),
        "spread_pooled": np.sqrt(pooled[0] / pooled[2]),
        "rmse_pooled": np.sqrt(pooled[1] / pooled[2]),
        "ssr_pooled": ratio(pooled[0], pooled[1]),
    })
    out["ssr"].attrs["long_name"] = "sqrt((m+1)/m) spread / RMSE of the ensemble mean"
    out = out.drop_vars([c for c in out.coords if c != "time"])
    return tag(out, "spread_skill", variable=str(ens.name), members=int(m),
               transform=f"log10(max(x, {eps:g}))" if log10 else "none")
