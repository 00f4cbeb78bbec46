"""Daily empirical semivariograms from random pixel pairs, and a fitted model (paper §2.5.3).

Pair sampling (why and how)
---------------------------
The paper estimates the semivariance from 30 000 random pixel pairs a day within 600 km.
Drawing both pixels uniformly over a region ~3 000 km wide would waste most pairs beyond
the maximum distance, so for each day we

1. draw the first pixel uniformly among the day's valid pixels;
2. draw the second pixel uniformly in the index window whose lat/lon extent covers every
   point within ``max_dist_km`` of the first (latitude half-width from the shortest degree of
   latitude, longitude half-width from the shortest degree of longitude inside the window,
   both on WGS84, so the window never cuts the disc);
3. keep the pair when the second pixel is valid, differs from the first and lies within
   ``max_dist_km`` by the WGS84 geodesic (``pyproj.Geod.inv``; a haversine pre-filter with
   a 1 % margin spares pyproj the pairs that are clearly too far);

and repeat in batches until ``n_pairs`` pairs are kept (at most 16 rounds; a day with few
valid pixels may end with fewer, and the counts say so). The second pixel is uniform over
the window's pixels, so on a regular grid the distances follow the all-pairs distribution
within the disc (pair counts grow about linearly with distance).
Memory is O(n_pairs) per day, never O(pixels^2). Each day draws from its own generator,
seeded by ``(seed, day number)``, so results do not depend on dask chunking.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..errors import ConfigError
from ._common import (
    LOG_EPS,
    check_core_unchunked,
    day_numbers,
    describe,
    field,
    quiet,
    squared_units,
    tag,
)

MODELS = ("spherical", "exponential", "gaussian")
_KM_PER_DEG_LAT_MIN = 110.574  # WGS84 meridian degree at the equator (its shortest)
_A_KM = 6378.137  # WGS84 equatorial radius
_E2 = 0.00669437999014  # WGS84 first eccentricity squared
_MAX_ROUNDS = 16


def _km_per_deg_lon(lat_deg: np.ndarray) -> np.ndarray:
    phi = np.deg2rad(lat_deg)
    return np.pi / 180 * _A_KM * np.cos(phi) / np.sqrt(1 - _E2 * np.sin(phi) ** 2)


def _great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Haversine distance on the mean-radius sphere (a fast pre-filter only)."""
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    a = (np.sin((p2 - p1) / 2) ** 2
         + np.cos(p1) * np.cos(p2) * np.sin(np.deg2rad(lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0088 * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def _window(coord: np.ndarray, centre: np.ndarray, half: np.ndarray):
    """First/last index of ascending ``coord`` within ``centre +- half`` (inclusive)."""
    lo = np.searchsorted(coord, centre - half, side="left")
    hi = np.searchsorted(coord, centre + half, side="right") - 1
    return lo, hi


def _sample_pairs(valid: np.ndarray, lat: np.ndarray, lon: np.ndarray, n_pairs: int,
                  max_dist_km: float, rng: np.random.Generator):
    """Flat indices ``(i1, i2)`` and geodesic distances (km) of up to ``n_pairs`` pairs.

    ``lat`` and ``lon`` must be ascending; ``valid`` is the (ny, nx) mask of usable pixels.
    """
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    ny, nx = valid.shape
    cand = np.flatnonzero(valid)
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    if cand.size < 2:
        return empty
    dlat = 1.01 * max_dist_km / _KM_PER_DEG_LAT_MIN
    kept_i1, kept_i2, kept_d = [], [], []
    n_kept, rate = 0, 0.75  # about pi/4: the disc's share of its bounding window
    for _ in range(_MAX_ROUNDS):
        need = n_pairs - n_kept
        if need <= 0:
            break
        size = int(min(8 * n_pairs, np.ceil(1.1 * need / max(rate, 0.02))) + 16)
        i1 = cand[rng.integers(0, cand.size, size)]
        r1, c1 = np.divmod(i1, nx)
        rlo, rhi = _window(lat, lat[r1], dlat)
        far = np.minimum(np.abs(lat[r1]) + dlat, 89.999)  # the window's shortest lon degree
        clo, chi = _window(lon, lon[c1], 1.01 * max_dist_km / _km_per_deg_lon(far))
        r2, c2 = rng.integers(rlo, rhi + 1), rng.integers(clo, chi + 1)
        i2 = r2 * nx + c2
        # A cheap spherical distance (within 0.6 % of the geodesic) discards pairs that are
        # clearly too far, and only about as many pairs as still needed go to pyproj, which
        # dominates the cost.
        ok = valid.ravel()[i2] & (i2 != i1)
        ok &= _great_circle_km(lat[r1], lon[c1], lat[r2], lon[c2]) <= 1.01 * max_dist_km
        pick = np.flatnonzero(ok)[: int(np.ceil(1.02 * need)) + 16]
        rate = ok.sum() / size
        if rate == 0 and size > 4 * n_pairs:
            break  # no valid pixel has a valid neighbour within range: give up this day
        i1, i2, r1, c1, r2, c2 = i1[pick], i2[pick], r1[pick], c1[pick], r2[pick], c2[pick]
        dist = geod.inv(lon[c1], lat[r1], lon[c2], lat[r2])[2] / 1000.0
        ok = dist <= max_dist_km
        kept_i1.append(i1[ok])
        kept_i2.append(i2[ok])
        kept_d.append(dist[ok])
        n_kept += int(ok.sum())
    if not kept_i1:
        return empty
    return (np.concatenate(kept_i1)[:n_pairs], np.concatenate(kept_i2)[:n_pairs],
            np.concatenate(kept_d)[:n_pairs])


def _binned_semivariance(z1: np.ndarray, z2: np.ndarray, dist_km: np.ndarray,
                         edges: np.ndarray):
    """Matheron semivariance ``0.5 * mean((z1 - z2)^2)`` per distance bin ``[e_k, e_k+1)``.

    The last bin is closed on the right. Returns ``(gamma, counts)``; gamma is NaN where a bin
    has no pair.
    """
    n_bins = edges.size - 1
    idx = np.clip(np.searchsorted(edges, dist_km, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    sums = np.bincount(idx, weights=0.5 * (z1 - z2) ** 2, minlength=n_bins)
    with quiet():
        gamma = np.where(counts > 0, sums / counts, np.nan)
    return gamma, counts.astype(np.int64)


def _semivariogram_days(z: np.ndarray, day: np.ndarray, *, lat: np.ndarray, lon: np.ndarray,
                        n_pairs: int, edges: np.ndarray, seed: int, log10: bool = False,
                        eps: float = LOG_EPS):
    """Kernel: per-day ``(gamma, counts)`` of shape ``(..., n_bins)`` for maps ``(..., ny, nx)``.

    ``day`` (shape ``z.shape[:-2]``) holds integer day numbers used to seed each day. With
    ``log10`` each map is transformed here, one day at a time, so numpy input is never copied
    whole.
    """
    # Flip to ascending coordinates so the index windows are contiguous ranges; the
    # semivariance does not depend on pixel order.
    if lat[0] > lat[-1]:
        z, lat = z[..., ::-1, :], lat[::-1]
    if lon[0] > lon[-1]:
        z, lon = z[..., ::-1], lon[::-1]
    lead, n_bins = z.shape[:-2], edges.size - 1
    maps = z.reshape(-1, *z.shape[-2:])
    days = np.broadcast_to(day, lead).reshape(-1)
    gamma = np.full((maps.shape[0], n_bins), np.nan)
    counts = np.zeros((maps.shape[0], n_bins), dtype=np.int64)
    for k, zk in enumerate(maps):
        rng = np.random.default_rng([seed, int(days[k]) % 2**32])
        if log10:
            zk = np.log10(np.maximum(zk, eps))
        i1, i2, dist = _sample_pairs(np.isfinite(zk), lat, lon, n_pairs, edges[-1], rng)
        if i1.size:
            flat = zk.ravel()
            gamma[k], counts[k] = _binned_semivariance(flat[i1], flat[i2], dist, edges)
    return gamma.reshape(*lead, n_bins), counts.reshape(*lead, n_bins)


def model_function(model: str):
    """The scikit-gstat model function for ``model``.

    Parameters
    ----------
    model : {"spherical", "exponential", "gaussian"}
        Model name.

    Returns
    -------
    callable
        ``f(h, r, c0, b)`` of distance, effective range, partial sill and nugget.

    Raises
    ------
    ConfigError
        Unknown model.
    """
    if model not in MODELS:
        raise ConfigError(f"model must be one of {MODELS}, got {model!r}")
    from skgstat import models

    return getattr(models, model)


def _fit(gamma: np.ndarray, h: np.ndarray, *, model: str, max_range: float) -> np.ndarray:
    """Least-squares fit of a scikit-gstat model to a binned curve -> ``[range, psill, nugget]``.

    Bins with NaN are skipped; NaNs come back when fewer than 3 bins are usable or the
    optimiser fails. Bounds follow scikit-gstat's: range in [0, max distance], sill and
    nugget in [0, max gamma].
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    func = model_function(model)
    ok = np.isfinite(gamma)
    if ok.sum() < 3:
        return np.full(3, np.nan)
    g, hh = gamma[ok], h[ok]
    top = max(float(g.max()), 1e-12)
    p0 = [0.5 * max_range, max(top - float(g.min()), 1e-12), float(g.min())]
    try:
        with quiet(), warnings.catch_warnings():
            # the parameters' covariance is not used: its warning (a fit through as many
            # bins as parameters, or a bound reached) says nothing about the fit itself
            warnings.simplefilter("ignore", OptimizeWarning)
            params, _ = curve_fit(lambda x, r, c0, b: func(x, r, c0, b), hh, g, p0=p0,
                                  bounds=([1e-9, 0.0, 0.0], [max_range, top, top]),
                                  method="trf", maxfev=10_000)
    except (RuntimeError, ValueError):
        return np.full(3, np.nan)
    return params


def _curve(params: np.ndarray, h: np.ndarray, *, model: str) -> np.ndarray:
    if not np.isfinite(params).all():
        return np.full(h.shape, np.nan)
    return np.asarray(model_function(model)(h, *params), dtype=np.float64)


def _weighted_mean(gamma: xr.DataArray, counts: xr.DataArray) -> xr.DataArray:
    """Mean curve over days, each day's bin weighted by its pair count."""
    total = counts.sum("time")
    return (gamma.fillna(0.0) * counts).sum("time") / total.where(total > 0)


def semivariogram(
    obj: xr.Dataset | xr.DataArray,
    n_pairs: int = 30000,
    max_dist_km: float = 600,
    n_bins: int = 30,
    model: str = "spherical",
    seed: int = 0,
    *,
    var: Hashable | None = None,
    log10: bool = True,
    eps: float = LOG_EPS,
) -> xr.Dataset:
    """Daily empirical semivariograms, their pair-weighted mean and a fitted model (Fig. 4, 8).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Daily fields with dims ``time, lat, lon`` (a single map without ``time`` works too).
    n_pairs : int
        Random valid pixel pairs within ``max_dist_km`` drawn per day (see the module notes
        for the scheme).
    max_dist_km : float
        Largest pair distance; bins split ``[0, max_dist_km]`` evenly.
    n_bins : int
        Number of distance bins.
    model : {"spherical", "exponential", "gaussian"}
        Model from :mod:`skgstat.models` fitted by least squares
        (:func:`scipy.optimize.curve_fit`) to the mean curve.
    seed : int
        Non-negative seed; each day uses ``(seed, day number)``.
    var : hashable, optional
        Variable to use; default ``"DUEXTTAU"``.
    log10 : bool
        Work on ``log10(max(x, eps))``, as the paper does (§2.5.3); False uses data units.
    eps : float
        Floor before ``log10``.

    Returns
    -------
    xarray.Dataset
        Dim ``bin`` with coordinate ``bin`` = bin centres (km) and ``bin_lower``/``bin_upper``.
        ``gamma(time, bin)``, ``counts(time, bin)``: each day's semivariance and pair count;
        ``gamma_mean(bin)``: mean over days weighted by pair counts; ``counts_total(bin)``;
        ``fitted(bin)``: the model at the bin centres; scalars ``range`` (km; scikit-gstat's
        *effective* range: the spherical range, 3x the exponential and 2x the gaussian
        length parameter), ``partial_sill``, ``nugget`` and ``sill`` = nugget + partial sill.
        A range at its upper bound ``max_dist_km`` means no sill was reached: the boolean
        ``range_at_bound`` says so (the plots flag it). Every variable has CF ``long_name``
        and ``units`` (``"1"`` for log10 fields). Lazy on dask
        input: the daily part maps over time chunks (rechunk ``time`` to 1 to hold one day at
        a time) and the fit is a small task at the end of the graph, so call ``.compute()``
        once on the Dataset rather than per variable.

    Raises
    ------
    ConfigError
        Non-positive ``n_pairs``, ``max_dist_km`` or ``n_bins``, a negative ``seed`` or an
        unknown ``model``.
    DimensionError
        ``lat``/``lon`` of a dask-backed input are split into several chunks.
    """
    if int(n_pairs) < 1 or int(n_bins) < 1 or not max_dist_km > 0:
        raise ConfigError(
            f"n_pairs, n_bins and max_dist_km must be positive, got {n_pairs}, {n_bins}, "
            f"{max_dist_km}"
        )
    if int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    model_function(model)  # validate early
    da = field(obj, var)
    check_core_unchunked(da, ("lat", "lon"), "semivariogram")
    edges = np.linspace(0.0, float(max_dist_km), int(n_bins) + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    day = (xr.DataArray(day_numbers(da), dims="time", coords={"time": da["time"]})
           if "time" in da.dims else xr.DataArray(0))

    gamma, counts = xr.apply_ufunc(
        _semivariogram_days, da, day,
        input_core_dims=[["lat", "lon"], []], output_core_dims=[["bin"], ["bin"]],
        kwargs={"lat": np.asarray(da["lat"], float), "lon": np.asarray(da["lon"], float),
                "n_pairs": int(n_pairs), "edges": edges, "seed": int(seed),
                "log10": bool(log10), "eps": float(eps)},
        dask="parallelized", output_dtypes=[np.float64, np.int64],
        dask_gufunc_kwargs={"output_sizes": {"bin": edges.size - 1}},
    )
    coords = {"bin": ("bin", centres, {"units": "km", "long_name": "bin centre distance"}),
              "bin_lower": ("bin", edges[:-1]), "bin_upper": ("bin", edges[1:])}
    gamma, counts = gamma.assign_coords(coords), counts.assign_coords(coords)
    if "time" in gamma.dims:
        mean, total = _weighted_mean(gamma, counts), counts.sum("time")
    else:
        mean, total = gamma, counts
    h = xr.DataArray(centres, dims="bin", coords=coords)
    params = xr.apply_ufunc(
        _fit, mean, input_core_dims=[["bin"]], output_core_dims=[["param"]],
        kwargs={"h": centres, "model": model, "max_range": float(max_dist_km)},
        vectorize=True, dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"param": 3}},
    )
    fitted = xr.apply_ufunc(
        _curve, params, h, input_core_dims=[["param"], ["bin"]], output_core_dims=[["bin"]],
        kwargs={"model": model}, vectorize=True, dask="parallelized",
        output_dtypes=[np.float64],
    )
    rng, psill, nugget = (params.isel(param=i, drop=True) for i in range(3))
    out = xr.Dataset({
        "gamma": gamma, "counts": counts, "gamma_mean": mean, "counts_total": total,
        "fitted": fitted, "range": rng, "partial_sill": psill, "nugget": nugget,
        "sill": nugget + psill,
        # the fit bounds the range by the largest distance: a range there is a lower bound
        "range_at_bound": rng >= 0.999 * float(max_dist_km),
    })
    units = squared_units(da.attrs.get("units"), log10)
    u = {"units": units} if units is not None else {}
    describe(out, {
        "gamma": {"long_name": "semivariance", **u},
        "counts": {"long_name": "number of pixel pairs", "units": "1"},
        "gamma_mean": {"long_name": "pair-weighted mean semivariance", **u},
        "counts_total": {"long_name": "number of pixel pairs over all days", "units": "1"},
        "fitted": {"long_name": f"fitted {model} model semivariance", **u},
        "range": {"long_name": "effective range", "units": "km"},
        "partial_sill": {"long_name": "partial sill", **u},
        "nugget": {"long_name": "nugget", **u},
        "sill": {"long_name": "total sill (nugget + partial sill)", **u},
        "range_at_bound": {"long_name": "fitted range reached max_dist_km (a lower bound)"},
    })
    return tag(out, "semivariogram", model=model, n_pairs=int(n_pairs),
               max_dist_km=float(max_dist_km), seed=int(seed),
               transform=f"log10(max(x, {eps:g}))" if log10 else "none",
               variable=str(da.name))
