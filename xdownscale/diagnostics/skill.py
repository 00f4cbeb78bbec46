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

from .._utils import ensure_dataarray
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


def _scores(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Kernel: the :data:`METRICS` of maps ``(..., ny, nx)`` -> ``(..., len(METRICS))``."""
    ok = np.isfinite(pred) & np.isfinite(truth)
    n = ok.sum(axis=(-2, -1))
    p, t = np.where(ok, pred, 0.0), np.where(ok, truth, 0.0)

    def total(a):
        return np.where(ok, a, 0.0).sum(axis=(-2, -1))

    with quiet():
        mp, mt = total(p) / n, total(t) / n
        dp, dt = p - mp[..., None, None], t - mt[..., None, None]
        sse, sst, spp = total((p - t) ** 2), total(dt**2), total(dp**2)
        r = total(dp * dt) / np.sqrt(spp * sst)
        sp, st = np.sqrt(spp / n), np.sqrt(sst / n)
        beta, alpha = mp / mt, sp / st
        gamma = (sp / mp) / (st / mt)  # ratio of coefficients of variation (KGE 2012)
        r2 = 1.0 - sse / sst
        out = np.stack([
            total(np.abs(p - t)) / n,  # mae
            np.sqrt(sse / n),  # rmse
            r2,  # r2 = 1 - SSE/SST
            r**2,  # r2_corr
            r2,  # nse: the paper's NSE has the same formula as its R^2
            1 - np.sqrt((r - 1) ** 2 + (beta - 1) ** 2 + (alpha - 1) ** 2),  # kge (2009)
            1 - np.sqrt((r - 1) ** 2 + (beta - 1) ** 2 + (gamma - 1) ** 2),  # kge2012
            mp - mt,  # bias
        ], axis=-1)
    out[~np.isfinite(out)] = np.nan  # 0/0 and x/0 (constant or empty maps) -> missing
    return out


def _ensemble_scores(ens: np.ndarray, obs: np.ndarray, *, fair: bool = True):
    """Kernel: pixel-mean CRPS and spread of an ensemble ``(..., m, ny, nx)`` vs ``obs``.

    CRPS per pixel is ``mean_i |X_i - y| - sum_ij |X_i - X_j| / (2 m (m - 1))`` (fair,
    Ferro 2014) or ``/ (2 m^2)`` (standard); the double sum uses the sorted-member identity
    ``sum_ij |X_i - X_j| = 2 sum_k (2k - m - 1) X_(k)``, O(m log m) instead of O(m^2). The
    spread is ``sqrt(mean over pixels of the member variance (ddof=1))``. Pixels count when
    the truth and every member are finite. NaN when m < 2.
    """
    m = ens.shape[-3]
    ok = np.isfinite(obs) & np.isfinite(ens).all(axis=-3)
    n = ok.sum(axis=(-2, -1))
    if m < 2:
        nan = np.full(ok.shape[:-2], np.nan)
        return nan, nan
    with quiet():
        skill = np.abs(ens - obs[..., None, :, :]).mean(axis=-3)
        k = np.arange(1, m + 1, dtype=float).reshape(m, 1, 1)
        pair_sum = 2.0 * ((2 * k - m - 1) * np.sort(ens, axis=-3)).sum(axis=-3)
        crps = skill - pair_sum / (2.0 * m * (m - 1) if fair else 2.0 * m * m)
        var = ens.var(axis=-3, ddof=1)
        crps = np.where(ok, crps, 0.0).sum(axis=(-2, -1)) / n
        spread = np.sqrt(np.where(ok, var, 0.0).sum(axis=(-2, -1)) / n)
    return crps, spread


def _per_space(pred: xr.DataArray, truth: xr.DataArray, ens: xr.DataArray | None,
               std: xr.DataArray | None, *, fair: bool, space: str) -> xr.Dataset:
    scores = xr.apply_ufunc(
        _scores, pred, truth, input_core_dims=[["lat", "lon"]] * 2,
        output_core_dims=[["metric"]], dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"metric": len(METRICS)}},
    )
    ds = scores.assign_coords(metric=list(METRICS)).to_dataset("metric")
    if ens is not None:
        crps, spread = xr.apply_ufunc(
            _ensemble_scores, ens, truth, input_core_dims=[["member", "lat", "lon"],
                                                           ["lat", "lon"]],
            output_core_dims=[[], []], kwargs={"fair": fair}, dask="parallelized",
            output_dtypes=[np.float64, np.float64],
        )
        m = ens.sizes["member"]
        ds["crps"], ds["spread"] = crps, spread
        # sqrt((m + 1) / m) makes a reliable finite ensemble score 1 (Fortin et al. 2014).
        ds["ssr"] = np.sqrt((m + 1) / m) * spread / ds["rmse"]
    elif std is not None:
        ok = truth.notnull() & pred.notnull()
        spread = np.sqrt((std**2).where(ok).mean(["lat", "lon"], skipna=True))
        if space == "log10":  # a data-unit std says nothing about the log10 spread
            spread = spread * np.nan
        ds["spread"], ds["ssr"] = spread, spread / ds["rmse"]
    return ds


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
) -> xr.Dataset:
    """Per-day MAE, RMSE, R^2, r^2, NSE, KGE, bias (and CRPS, spread-skill) against ``truth``.

    Parameters
    ----------
    prediction : xarray.Dataset or xarray.DataArray
        Predicted daily fields, data units, dims ``time, lat, lon`` and optionally
        ``member_dim`` (an ensemble). A Dataset may also carry ``<var>_std`` (ensemble
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

    Returns
    -------
    xarray.Dataset
        Per day (dims ``space, time``): ``mae``, ``rmse``, ``r2`` (1 - SSE/SST), ``r2_corr``
        (squared Pearson r), ``nse`` (equal to ``r2``: the paper defines both by the same
        formula; kept for Table A1), ``kge`` (Gupta et al. 2009: r, mean ratio beta, std
        ratio alpha), ``kge2012`` (Kling et al. 2012: the CV ratio replaces alpha), ``bias``
        (mean prediction - mean truth), ``n_pixels``; with an ensemble also ``crps``,
        ``spread`` and ``ssr`` (spread-skill ratio sqrt((m+1)/m) spread / RMSE of the
        ensemble mean), with only ``<var>_std`` ``spread``/``ssr`` in data space. For each
        score ``<name>_mean`` and ``<name>_std`` (ddof=1) over days. With an ensemble the
        deterministic scores judge the ensemble mean taken in each space. Lazy on dask
        input.

    Raises
    ------
    ConfigError
        Unknown ``crps`` or ``spaces``.
    GridMismatchError
        The two fields are not on the same grid.
    TimeAxisError
        The two records share no day.
    DimensionError
        ``lat``/``lon`` (or the member dim) of a dask-backed input are chunked.
    """
    if crps not in ("fair", "standard"):
        raise ConfigError(f"crps must be 'fair' or 'standard', got {crps!r}")
    bad = [s for s in spaces if s not in SPACES]
    if bad or not spaces:
        raise ConfigError(f"spaces must be a non-empty subset of {SPACES}, got {list(spaces)}")
    p = field(prediction, var)
    name = p.name
    t = field(truth, var if truth_var is None else truth_var)
    std = None
    if isinstance(prediction, xr.Dataset) and f"{p.name}_std" in prediction.data_vars:
        std = field(prediction, f"{p.name}_std")
    check_same_grid(p, t, "skill")
    if member_dim in p.dims:
        p = p.rename({member_dim: "member"})
        std = None  # the members themselves give the spread
    for arr in (p, t):
        check_core_unchunked(arr, ("lat", "lon", "member"), "skill")
    p = p.assign_coords(lat=t["lat"], lon=t["lon"])
    if std is not None:
        std = std.assign_coords(lat=t["lat"], lon=t["lon"])
        p, t, std = xr.align(p, t, std, join="inner", exclude=["lat", "lon"])
    else:
        p, t = xr.align(p, t, join="inner", exclude=["lat", "lon", "member"])
    if "time" in t.dims and t.sizes["time"] == 0:
        raise TimeAxisError("prediction and truth share no day; nothing to score")

    parts = []
    for space in spaces:
        tf = (lambda a: log10(a, eps)) if space == "log10" else (lambda a: a)
        ens = tf(p) if "member" in p.dims else None
        det = ens.mean("member", skipna=False) if ens is not None else tf(p)
        parts.append(_per_space(det, tf(t), ens, std, fair=crps == "fair", space=space))
    out = xr.concat(parts, dim="space", coords="minimal", compat="override", join="outer")
    out = out.assign_coords(space=list(spaces))
    out["n_pixels"] = (t.notnull() & p.notnull().all("member") if "member" in p.dims
                       else t.notnull() & p.notnull()).sum(["lat", "lon"])
    for v in [v for v in out.data_vars if v != "n_pixels"]:
        if "time" in out[v].dims:
            out[f"{v}_mean"] = out[v].mean("time", skipna=True)
            out[f"{v}_std"] = out[v].std("time", skipna=True, ddof=1)
    if "crps" in out:
        out["crps"].attrs["kind"] = crps
    out = out.drop_vars([c for c in out.coords if c not in ("space", "time")])
    out.attrs = {}
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

