"""Per-day skill of a prediction against the truth (the paper's Tables 3 and A1), plus CRPS.

Every score is computed per day over the pixels valid in both fields (pairwise NaN
exclusion), then summarised by its mean and standard deviation over days, as the paper's
tables do. Scores come in two spaces: ``log10`` (``log10(max(x, eps))``, where the paper
reports R^2) and ``data`` (original units, where it reports RMSE).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from .._coords import ensure_dataarray
from ..errors import ConfigError, DimensionError, TimeAxisError
from ._common import (
    LOG_EPS,
    check_core_unchunked,
    check_same_grid,
    field,
    log10,
    quiet,
    tag,
)

METRICS = ("mae", "rmse", "r2", "r2_corr", "nse", "kge", "kge2012", "bias")
SPACES = ("log10", "data")


def _weights_like(ok: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Per-value weights, zero where a value does not count (NaN weights count as zero)."""
    if weights is None:
        return ok.astype(np.float64)
    w = np.broadcast_to(np.asarray(weights, np.float64), ok.shape)
    return np.where(ok & np.isfinite(w), w, 0.0)


def _scores(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None, *,
            ndim: int = 2, skipna: bool = True) -> np.ndarray:
    """Kernel: the :data:`METRICS` reduced over the last ``ndim`` axes -> ``(..., len(METRICS))``.

    Written here rather than calling xskillscore's ``mae``/``rmse``/``pearson_r``: all eight
    scores (KGE, NSE and bias are not in xskillscore) come from one pass over shared weighted
    sums with one pairwise-valid mask, where xskillscore would take a pass per score; the tests
    check MAE, RMSE and the correlation against xskillscore.

    Pixels count where both fields are finite; ``weights`` (broadcast to the fields) make
    every sum a weighted sum. ``skipna=False`` gives NaN wherever a value is missing.
    """
    axes = tuple(range(-ndim, 0))
    ok = np.isfinite(pred) & np.isfinite(truth)
    w = _weights_like(ok, weights)
    p, t = np.where(ok, pred, 0.0), np.where(ok, truth, 0.0)

    def total(a):
        return (w * a).sum(axis=axes)

    def expand(a):
        return a.reshape(a.shape + (1,) * ndim)

    with quiet():
        wsum = w.sum(axis=axes)
        mp, mt = total(p) / wsum, total(t) / wsum
        dp, dt = p - expand(mp), t - expand(mt)
        sse, sst, spp = total((p - t) ** 2), total(dt**2), total(dp**2)
        r = total(dp * dt) / np.sqrt(spp * sst)
        sp, st = np.sqrt(spp / wsum), np.sqrt(sst / wsum)
        beta, alpha = mp / mt, sp / st
        gamma = (sp / mp) / (st / mt)  # ratio of coefficients of variation (KGE 2012)
        r2 = 1.0 - sse / sst
        out = np.stack([
            total(np.abs(p - t)) / wsum,  # mae
            np.sqrt(sse / wsum),  # rmse
            r2,  # r2 = 1 - SSE/SST
            r**2,  # r2_corr
            r2,  # nse: the paper's NSE has the same formula as its R^2
            1 - np.sqrt((r - 1) ** 2 + (beta - 1) ** 2 + (alpha - 1) ** 2),  # kge (2009)
            1 - np.sqrt((r - 1) ** 2 + (beta - 1) ** 2 + (gamma - 1) ** 2),  # kge2012
            mp - mt,  # bias
        ], axis=-1)
    out[~np.isfinite(out)] = np.nan  # 0/0 and x/0 (constant or empty maps) -> missing
    if not skipna:
        out[~ok.all(axis=axes)] = np.nan
    return out


def _ensemble_scores(ens: np.ndarray, obs: np.ndarray, weights: np.ndarray | None = None, *,
                     fair: bool = True, ndim: int = 2, skipna: bool = True):
    """Kernel: mean CRPS and spread of an ensemble ``(..., m, *reduced)`` vs ``obs``.

    The member axis sits just before the ``ndim`` reduced axes. CRPS per pixel is
    ``mean_i |X_i - y| - sum_ij |X_i - X_j| / (2 m (m - 1))`` (fair, Ferro 2014) or
    ``/ (2 m^2)`` (standard); the double sum uses the sorted-member identity
    ``sum_ij |X_i - X_j| = 2 sum_k (2k - m - 1) X_(k)``, O(m log m) instead of O(m^2). The
    spread is ``sqrt(mean over pixels of the member variance (ddof=1))``. Pixels count when
    the truth and every member are finite; means are weighted by ``weights``. NaN when m < 2.
    """
    axes = tuple(range(-ndim, 0))
    maxis = -ndim - 1
    m = ens.shape[maxis]
    ok = np.isfinite(obs) & np.isfinite(ens).all(axis=maxis)
    if m < 2:
        nan = np.full(ok.shape[:-ndim], np.nan)
        return nan, nan
    w = _weights_like(ok, weights)
    with quiet():
        skill = np.abs(ens - np.expand_dims(obs, maxis)).mean(axis=maxis)
        k = np.arange(1, m + 1, dtype=float).reshape((m,) + (1,) * ndim)
        pair_sum = 2.0 * ((2 * k - m - 1) * np.sort(ens, axis=maxis)).sum(axis=maxis)
        crps = skill - pair_sum / (2.0 * m * (m - 1) if fair else 2.0 * m * m)
        var = ens.var(axis=maxis, ddof=1)
        wsum = w.sum(axis=axes)
        crps = (w * np.where(ok, crps, 0.0)).sum(axis=axes) / wsum
        spread = np.sqrt((w * np.where(ok, var, 0.0)).sum(axis=axes) / wsum)
    if not skipna:
        crps[~ok.all(axis=axes)] = np.nan
        spread[~ok.all(axis=axes)] = np.nan
    return crps, spread


def _per_space(pred: xr.DataArray, truth: xr.DataArray, ens: xr.DataArray | None,
               std: xr.DataArray | None, weights: xr.DataArray | None, *, dim: list,
               fair: bool, skipna: bool, space: str) -> xr.Dataset:
    kw = {"ndim": len(dim), "skipna": skipna}
    wargs = [] if weights is None else [weights]
    wdims = [] if weights is None else [dim]
    scores = xr.apply_ufunc(
        _scores, pred, truth, *wargs, input_core_dims=[dim, dim, *wdims],
        output_core_dims=[["metric"]], kwargs=kw, dask="parallelized",
        output_dtypes=[np.float64], keep_attrs=False,
        dask_gufunc_kwargs={"output_sizes": {"metric": len(METRICS)}},
    )
    ds = scores.assign_coords(metric=list(METRICS)).to_dataset("metric")
    if ens is not None:
        crps, spread = xr.apply_ufunc(
            _ensemble_scores, ens, truth, *wargs,
            input_core_dims=[["member", *dim], dim, *wdims],
            output_core_dims=[[], []], kwargs={"fair": fair, **kw}, dask="parallelized",
            output_dtypes=[np.float64, np.float64], keep_attrs=False,
        )
        m = ens.sizes["member"]
        ds["crps"], ds["spread"] = crps, spread
        # sqrt((m + 1) / m) makes a reliable finite ensemble score 1 (Fortin et al. 2014).
        ds["ssr"] = np.sqrt((m + 1) / m) * spread / ds["rmse"]
    elif std is not None:
        ok = truth.notnull() & pred.notnull()
        w = ok.astype(float) if weights is None else weights.where(ok, 0.0)
        spread = np.sqrt((std**2 * w).sum(dim, skipna=skipna) / w.sum(dim))
        if space == "log10":  # a data-unit std says nothing about the log10 spread
            spread = spread * np.nan
        ds["spread"], ds["ssr"] = spread, spread / ds["rmse"]
    return ds


#: CF-style attributes of the scores (``units`` of the error scores are set per variable).
_ATTRS = {
    "mae": "mean absolute error",
    "rmse": "root-mean-square error",
    "r2": "coefficient of determination 1 - SSE/SST",
    "r2_corr": "squared Pearson correlation",
    "nse": "Nash-Sutcliffe efficiency",
    "kge": "Kling-Gupta efficiency (2009)",
    "kge2012": "Kling-Gupta efficiency (2012)",
    "bias": "mean prediction minus mean truth",
    "crps": "continuous ranked probability score of the ensemble",
    "spread": "ensemble spread (root mean member variance)",
    "ssr": "spread-skill ratio",
    "n_pixels": "number of values scored",
}
_ERRORS = ("mae", "rmse", "bias", "crps", "spread")


def _describe(out: xr.Dataset, units: str | None, spaces) -> None:
    """long_name and units on every score: UDUNITS "1" where a score is dimensionless."""
    # In log10 space an error is in decades of a dimensionless ratio ("1"); in data space it
    # has the variable's units, so one units attribute fits both spaces only when those are
    # dimensionless too.
    err_units = "1" if units in (None, "", "1") or list(spaces) == ["log10"] else (
        units if list(spaces) == ["data"] else None)
    for v in out.data_vars:
        base = v.removesuffix("_mean").removesuffix("_std")
        out[v].attrs = {}  # nothing of the input's (long_name, source) describes a score
        if base not in _ATTRS:
            continue
        name = _ATTRS[base]
        if v.endswith("_mean"):
            name = f"mean over days of the {name}"
        elif v.endswith("_std") and base != v:
            name = f"standard deviation over days of the {name}"
        attrs = {"long_name": name}
        if base not in _ERRORS:
            attrs["units"] = "1"
        elif err_units is not None:
            attrs["units"] = err_units
        else:
            attrs["comment"] = f"log10 space: decades; data space: {units}"
        out[v].attrs = attrs


def skill(
    prediction: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray,
    *,
    var: Hashable | None = None,
    truth_var: Hashable | None = None,
    member_dim: Hashable = "member",
    crps: str = "fair",
    spaces: Sequence[str] = SPACES,
    eps: float = LOG_EPS,
    dim: Hashable | Sequence[Hashable] | None = None,
    weights: xr.DataArray | None = None,
    skipna: bool = True,
) -> xr.Dataset:
    """Per-day MAE, RMSE, R^2, r^2, NSE, KGE, bias (and CRPS, spread-skill) against ``truth``.

    Parameters
    ----------
    prediction : xarray.Dataset or xarray.DataArray
        Predicted daily fields, data units, dims ``time, lat, lon`` and optionally
        ``member_dim`` (an ensemble). A Dataset may also carry ``<var>_members`` (the
        members, as ``Downscaler.predict(..., keep_members=True)`` writes them: CRPS and the
        spread come from them, the other scores from ``<var>``) or ``<var>_std`` (ensemble
        spread, as ``Downscaler.predict`` writes when members > 1).
    truth : xarray.Dataset or xarray.DataArray
        True fields on the same grid. Only the days both share are scored.
    var, truth_var : hashable, optional
        Variable names; default ``"DUEXTTAU"`` (``truth_var`` defaults to ``var``).
    member_dim : hashable
        Name of the ensemble dimension of ``prediction``.
    crps : {"fair", "standard"}
        Ensemble CRPS estimator: "fair" (unbiased for the infinite-ensemble score; divides
        the member-pair term by 2m(m-1)) or "standard" (2m^2, as properscoring and
        xskillscore do).
    spaces : sequence of {"log10", "data"}
        Where to score: on ``log10(max(x, eps))`` and/or in data units.
    eps : float
        Floor before ``log10``.
    dim : hashable or sequence of hashable, optional
        Dimensions each score reduces over, as in xskillscore: default ``("lat", "lon")``
        (one score per day, the paper's); ``"time"`` gives a skill map, one score per pixel
        over the days.
    weights : xarray.DataArray, optional
        Non-negative weights broadcast against the fields over ``dim``, e.g. area weights
        ``np.cos(np.deg2rad(truth.lat))``. Default: every value counts the same.
    skipna : bool, default True
        Skip values missing in either field (pairwise). False: a score is NaN as soon as one
        of its values is missing.

    Returns
    -------
    xarray.Dataset
        Per day (dims ``space, time``; with ``dim="time"`` dims ``space, lat, lon``):
        ``mae``, ``rmse``, ``r2`` (1 - SSE/SST), ``r2_corr`` (squared Pearson r), ``nse``
        (equal to ``r2``: the paper defines both by the same formula; kept for Table A1),
        ``kge`` (Gupta et al. 2009: r, mean ratio beta, std ratio alpha), ``kge2012`` (Kling
        et al. 2012: the CV ratio replaces alpha), ``bias`` (mean prediction - mean truth),
        ``n_pixels``; with an ensemble also ``crps``, ``spread`` and ``ssr`` (spread-skill
        ratio sqrt((m+1)/m) spread / RMSE of the ensemble mean), with only ``<var>_std``
        ``spread``/``ssr`` in data space. While ``time`` remains, ``<name>_mean`` and
        ``<name>_std`` (ddof=1) over days for each score. With an ensemble given by
        ``member_dim`` the deterministic scores judge the ensemble mean taken in each space.
        Every variable has ``long_name`` and, where one applies to both spaces, UDUNITS
        ``units``. Lazy on dask input.

    Raises
    ------
    ConfigError
        Unknown ``crps`` or ``spaces``, negative weights, or ``dim`` not in the fields.
    GridMismatchError
        The two fields are not on the same grid.
    TimeAxisError
        The two records share no day.
    DimensionError
        A reduced dimension (or the member dim) of a dask-backed input is chunked.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> coords = {"time": pd.date_range("2006-07-01", periods=2), "lat": [0.0, 1.0],
    ...           "lon": [0.0, 1.0]}
    >>> truth = xr.DataArray(np.arange(1.0, 9.0).reshape(2, 2, 2), dims=("time", "lat", "lon"),
    ...                      coords=coords)
    >>> skill(truth + 0.5, truth, spaces=["data"])["rmse"].values
    array([[0.5, 0.5]])
    >>> skill(truth + 0.5, truth, spaces=["data"], dim="time")["bias"].dims
    ('space', 'lat', 'lon')
    """
    if crps not in ("fair", "standard"):
        raise ConfigError(f"crps must be 'fair' or 'standard', got {crps!r}")
    bad = [s for s in spaces if s not in SPACES]
    if bad or not spaces:
        raise ConfigError(f"spaces must be a non-empty subset of {SPACES}, got {list(spaces)}")
    dims = ["lat", "lon"] if dim is None else (
        [dim] if isinstance(dim, str) or not isinstance(dim, Sequence) else list(dim))
    p = field(prediction, var)
    name = p.name
    t = field(truth, var if truth_var is None else truth_var)
    missing = [d for d in dims if d not in t.dims]
    if missing or not dims:
        raise ConfigError(f"dim={dim!r}: the truth has no dimension(s) {missing}; it has "
                          f"{list(t.dims)}")
    std = ens = None
    if isinstance(prediction, xr.Dataset) and f"{p.name}_members" in prediction.data_vars:
        ens = field(prediction, f"{p.name}_members")
    elif isinstance(prediction, xr.Dataset) and f"{p.name}_std" in prediction.data_vars:
        std = field(prediction, f"{p.name}_std")
    check_same_grid(p, t, "skill")
    if member_dim in p.dims:
        p = p.rename({member_dim: "member"})
        std = ens = None  # the members themselves give the spread
    if ens is not None:
        ens = ens.rename({member_dim: "member"}) if member_dim in ens.dims else None
    for arr in (p, t, ens):
        if arr is not None:
            check_core_unchunked(arr, (*dims, "member"), "skill")
    extras = [a.assign_coords(lat=t["lat"], lon=t["lon"]) for a in (std, ens) if a is not None]
    p = p.assign_coords(lat=t["lat"], lon=t["lon"])
    p, t, *extras = xr.align(p, t, *extras, join="inner", exclude=["lat", "lon", "member"])
    if std is not None:
        std = extras[0]
    elif ens is not None:
        ens = extras[0]
    if "time" in t.dims and t.sizes["time"] == 0:
        raise TimeAxisError("prediction and truth share no day; nothing to score")
    w = None
    if weights is not None:
        weights = xr.DataArray(weights) if not isinstance(weights, xr.DataArray) else weights
        if bool((weights < 0).any()):
            raise ConfigError("weights must be non-negative")
        w = weights.drop_vars([c for c in weights.coords if c not in weights.dims])
        w = w.assign_coords({d: t[d] for d in w.dims if d in ("lat", "lon")})
        w = w.broadcast_like(t.isel({d: 0 for d in t.dims if d not in dims}, drop=True))

    parts = []
    for space in spaces:
        tf = (lambda a: log10(a, eps)) if space == "log10" else (lambda a: a)
        if "member" in p.dims:
            e = tf(p)
            det = e.mean("member", skipna=False)
        else:
            e = tf(ens) if ens is not None else None
            det = tf(p)
        parts.append(_per_space(det, tf(t), e, std, w, dim=dims, fair=crps == "fair",
                                skipna=skipna, space=space))
    out = xr.concat(parts, dim="space", coords="minimal", compat="override", join="outer")
    out = out.assign_coords(space=list(spaces))
    members = p if "member" in p.dims else ens
    ok = t.notnull() & (members.notnull().all("member") if members is not None else p.notnull())
    out["n_pixels"] = ok.sum(dims)
    for v in [v for v in out.data_vars if v != "n_pixels"]:
        if "time" in out[v].dims:
            out[f"{v}_mean"] = out[v].mean("time", skipna=True)
            out[f"{v}_std"] = out[v].std("time", skipna=True, ddof=1)
    keep = ("space", "time", *(d for d in ("lat", "lon") if d in out.dims))
    out = out.drop_vars([c for c in out.coords if c not in keep])
    out.attrs = {}
    _describe(out, t.attrs.get("units"), spaces)
    if "crps" in out:
        out["crps"].attrs["kind"] = crps
    return tag(out, "skill", variable=str(name), crps=crps if "crps" in out else None)


def crps(prediction, truth, **kwargs):
    """Ensemble CRPS per day: :func:`skill` restricted to ``crps`` (see its ``crps=`` option).

    Parameters
    ----------
    prediction : xarray.Dataset or xarray.DataArray
        Ensemble prediction with a ``member`` dimension (``member_dim=`` to rename).
    truth : xarray.Dataset or xarray.DataArray
        True fields on the same grid.
    **kwargs
        Passed to :func:`skill` (``var``, ``truth_var``, ``member_dim``, ``crps``, ``spaces``,
        ``eps``).

    Returns
    -------
    xarray.Dataset
        ``crps(space, time)``, ``crps_mean(space)``, ``crps_std(space)``.

    Raises
    ------
    DimensionError
        ``prediction`` has no member dimension.
    """
    member_dim = kwargs.get("member_dim", "member")
    if member_dim not in ensure_dataarray(prediction, kwargs.get("var")).dims:
        raise DimensionError(
            f"crps needs an ensemble: no {member_dim!r} dimension in the prediction "
            "(predict with members > 1 and keep_members=True)"
        )
    out = skill(prediction, truth, **kwargs)
    return out[["crps", "crps_mean", "crps_std"]]

