"""Table 2 of the paper: 1-Wasserstein distances between log-min-max normalised fields.

Equations 10-13 of the paper. Per day, the two fields are compared on the pixels valid in
both (Omega_t), after ``log10(max(x, eps))`` and a min-max normalisation with bounds shared by
the two fields; W1 is reported exactly (eq. 12) and by the B-bin histogram rule (eq. 13).
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..errors import ConfigError
from ._common import (
    LOG_EPS,
    check_core_unchunked,
    check_same_grid,
    field,
    quiet,
    single_chunk,
    tag,
)


def _w1_sorted(u: np.ndarray, v: np.ndarray) -> float:
    # Both samples have |Omega_t| values, so the quantile functions are step functions on the
    # same grid and W1 (eq. 12) is exactly the mean gap between order statistics: no library
    # call is needed, and the tests check it against scipy.stats.wasserstein_distance.
    return float(np.mean(np.abs(np.sort(u) - np.sort(v))))


def _cdf01(u: np.ndarray, bins: int) -> np.ndarray:
    """Empirical cumulative histogram of values in [0, 1] at k/B, k = 1..B."""
    counts = np.histogram(u, bins=bins, range=(0.0, 1.0))[0]
    return np.cumsum(counts) / max(u.size, 1)


def _w1_hist(cdf_u: np.ndarray, cdf_v: np.ndarray) -> float:
    """Eq. 13: (1/B) sum_k |F_u(k/B) - F_v(k/B)|."""
    return float(np.abs(cdf_u - cdf_v).sum() / cdf_u.size)


def _w1_daily(x: np.ndarray, y: np.ndarray, *, bins: int = 100, eps: float = LOG_EPS):
    """Per-day exact and histogram W1 of two stacks of maps ``(..., ny, nx)``.

    Returns
    -------
    (w1, w1_hist, n_pixels) : arrays of shape ``x.shape[:-2]``
        NaN and 0 pixels on days with no pixel valid in both fields.
    """
    lead = x.shape[:-2]
    xs = x.reshape(-1, x.shape[-2] * x.shape[-1])
    ys = y.reshape(-1, y.shape[-2] * y.shape[-1])
    w1 = np.full(xs.shape[0], np.nan)
    w1h = np.full(xs.shape[0], np.nan)
    npix = np.zeros(xs.shape[0], dtype=np.int64)
    for k in range(xs.shape[0]):
        both = np.isfinite(xs[k]) & np.isfinite(ys[k])
        n = int(both.sum())
        npix[k] = n
        if n == 0:
            continue
        bx = np.log10(np.maximum(xs[k][both], eps))
        by = np.log10(np.maximum(ys[k][both], eps))
        lo = min(bx.min(), by.min())
        hi = max(bx.max(), by.max())
        if hi > lo:
            ux = np.clip((bx - lo) / (hi - lo), 0.0, 1.0)
            uy = np.clip((by - lo) / (hi - lo), 0.0, 1.0)
        else:  # both fields constant and equal: the distributions coincide
            ux = uy = np.zeros(n)
        w1[k] = _w1_sorted(ux, uy)
        w1h[k] = _w1_hist(_cdf01(ux, bins), _cdf01(uy, bins))
    return w1.reshape(lead), w1h.reshape(lead), npix.reshape(lead)


def _hist01(u: np.ndarray, *, bins: int) -> np.ndarray:
    """Counts of the finite values of each map ``(..., ny, nx)`` in B bins on [0, 1]."""
    flat = u.reshape(-1, u.shape[-2] * u.shape[-1])
    out = np.empty((flat.shape[0], bins), dtype=np.int64)
    for k in range(flat.shape[0]):
        row = flat[k][np.isfinite(flat[k])]
        out[k] = np.histogram(row, bins=bins, range=(0.0, 1.0))[0]
    return out.reshape(*u.shape[:-2], bins)


def _pooled_counts(b: xr.DataArray, lo, hi, bins: int) -> xr.DataArray:
    u = ((b - lo) / (hi - lo)).clip(0.0, 1.0)
    # A degenerate range (every value equal) maps everything to 0, as in the daily kernel.
    u = xr.where(hi > lo, u, u * 0.0)
    counts = xr.apply_ufunc(
        _hist01, u, input_core_dims=[["lat", "lon"]], output_core_dims=[["hist_bin"]],
        kwargs={"bins": bins}, dask="parallelized", output_dtypes=[np.int64],
        dask_gufunc_kwargs={"output_sizes": {"hist_bin": bins}},
    )
    return counts.sum([d for d in counts.dims if d != "hist_bin"])


def _pooled_w1(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    with quiet():
        fx = np.cumsum(cx, axis=-1) / cx.sum(axis=-1, keepdims=True)
        fy = np.cumsum(cy, axis=-1) / cy.sum(axis=-1, keepdims=True)
        return np.abs(fx - fy).sum(axis=-1) / cx.shape[-1]


def _quantiles(w: np.ndarray, *, q: tuple[float, ...]) -> np.ndarray:
    with quiet():
        return np.nanquantile(w, q, axis=-1).T if w.size else np.full(len(q), np.nan)


def wasserstein(
    obj: xr.Dataset | xr.DataArray,
    other: xr.Dataset | xr.DataArray,
    *,
    bins: int = 100,
    var: Hashable | None = None,
    other_var: Hashable | None = None,
    eps: float = LOG_EPS,
) -> xr.Dataset:
    """Per-day and pooled 1-Wasserstein distance of log-min-max normalised fields (Table 2).

    Parameters
    ----------
    obj, other : xarray.Dataset or xarray.DataArray
        Daily fields in data units on the same ``lat``/``lon`` grid (e.g. MERRA-2 regridded to
        the G5NR grid, and G5NR). Their time axes may differ.
    bins : int
        Number B of equal-width bins on [0, 1] for the histogram rule (eq. 13).
    var, other_var : hashable, optional
        Variable of ``obj`` / ``other``; default ``"DUEXTTAU"`` (``other_var`` defaults to
        ``var``).
    eps : float
        Floor before ``log10`` (eq. 10).

    Returns
    -------
    xarray.Dataset
        ``w1(time)``: exact W1 (eq. 12) on the days both records have, over the pixels valid
        in both that day (Omega_t), with the bounds m_t, M_t shared by the two maps;
        ``w1_hist(time)``: the same by eq. 13; ``n_pixels(time)``: the size of Omega_t; scalars
        ``daily_mean``, ``p10``, ``p90`` (NaN-skipping mean and 10th/90th percentiles of
        ``w1``) and ``pooled``. ``pooled`` compares the *full temporal domains*, as the
        paper's Table 2 does: each record contributes every valid pixel of every one of its
        own days (the days need not match, so Omega_t does not apply), both pools are
        normalised with bounds shared over everything, and W1 is taken by eq. 13 on the
        pooled B-bin histograms (memory O(B), not O(pixels x days)). Days with no common
        valid pixel give NaN. Lazy on dask input (one task per time chunk).

    Raises
    ------
    ConfigError
        ``bins`` < 1 or ``eps`` <= 0.
    GridMismatchError
        The two fields are not on the same grid.
    DimensionError
        ``lat``/``lon`` of a dask-backed input are split into several chunks.
    """
    if int(bins) < 1:
        raise ConfigError(f"bins must be a positive integer, got {bins!r}")
    if not eps > 0:
        raise ConfigError(f"eps must be positive, got {eps!r}")
    bins = int(bins)
    x = field(obj, var)
    y = field(other, var if other_var is None else other_var)
    check_same_grid(x, y, "wasserstein")
    y = y.assign_coords(lat=x["lat"], lon=x["lon"])
    for arr in (x, y):
        check_core_unchunked(arr, ("lat", "lon"), "wasserstein")

    xd, yd = xr.align(x, y, join="inner", exclude=["lat", "lon"])
    w1, w1h, npix = xr.apply_ufunc(
        _w1_daily, xd, yd, input_core_dims=[["lat", "lon"]] * 2, output_core_dims=[[], [], []],
        kwargs={"bins": bins, "eps": eps}, dask="parallelized",
        output_dtypes=[np.float64, np.float64, np.int64],
    )
    q = xr.apply_ufunc(
        _quantiles, single_chunk(w1, "time"), input_core_dims=[["time"]], output_core_dims=[["q"]],
        kwargs={"q": (0.1, 0.9)}, dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"q": 2}},
    )

    bx, by = np.log10(np.maximum(x, eps)), np.log10(np.maximum(y, eps))
    lo = np.minimum(bx.min(skipna=True), by.min(skipna=True))
    hi = np.maximum(bx.max(skipna=True), by.max(skipna=True))
    pooled = xr.apply_ufunc(
        _pooled_w1, _pooled_counts(bx, lo, hi, bins), _pooled_counts(by, lo, hi, bins),
        input_core_dims=[["hist_bin"]] * 2, dask="parallelized", output_dtypes=[np.float64],
    )

    out = xr.Dataset(
        {
            "w1": w1.assign_attrs(long_name="daily W1 (eq. 12)"),
            "w1_hist": w1h.assign_attrs(long_name=f"daily W1, {bins}-bin histogram (eq. 13)"),
            "n_pixels": npix.assign_attrs(long_name="pixels valid in both fields"),
            "daily_mean": w1.mean("time", skipna=True),
            "p10": q.isel(q=0, drop=True),
            "p90": q.isel(q=1, drop=True),
            "pooled": pooled.assign_attrs(long_name="W1 of the pooled records (eq. 13)"),
        }
    )
    out = out.drop_vars([c for c in out.coords if c != "time"])
    return tag(out, "wasserstein", bins=bins, eps=eps, variable=str(x.name))
