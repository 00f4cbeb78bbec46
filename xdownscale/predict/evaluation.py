"""Pseudo out-of-data evaluation of a rollout: skill by lead day where the truth is known.

Past the end of the fine record a rollout cannot be scored. Inside it, it can: start a rollout
on a day ``start`` of the fine record *as if the truth ended there* (only the fine days before
``start`` are given as history), and score day ``start + k - 1`` as lead day ``k``. Beside it,
for the same days:

* ``true_history``: the same model predicting each day from the true fine history (what the
  rollout would score if its errors did not feed back);
* ``bicubic``: the coarse day interpolated to the fine grid (the estimator's regrid method);
* ``bias_corrected_bicubic``: the same, times ``10**b``, where ``b`` is the mean of
  ``log10(fine) - log10(bicubic)`` over the season's training days (all pixels).

Scores come from :func:`xdownscale.diagnostics.skill` (per day R², RMSE, MAE, bias, and CRPS
for ensembles), in log10 and data units, plus the drift of each source against the coarse
driver (:func:`xdownscale.predict.drift.drift_series`, with the rollout's seed window as reference).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..data.regrid import regrid_like
from ..data.seasons import season_of
from ..diagnostics._common import field
from ..diagnostics.baselines import interpolated, log_bias
from ..diagnostics.skill import skill
from ..errors import ConfigError, TimeAxisError
from .drift import RolloutCheck, drift_series
from .labelled import resolve_coarse_consistency

__all__ = ["evaluate_rollout", "lead_summary", "plot_rollout_skill", "pseudo_start", "SOURCES"]

SOURCES = ("rollout", "true_history", "bicubic", "bias_corrected_bicubic")
_SCORES = ("r2", "rmse", "mae", "bias", "crps")


def _training_log_bias(est, coarse_da, fine_da, season: str) -> float:
    """Mean of ``log10(fine) - log10(bicubic)`` over the season's training days."""
    days = pd.DatetimeIndex(est.plans_[season].train).intersection(
        pd.DatetimeIndex(fine_da["time"].values))
    if len(days) == 0:
        return 0.0
    bic = interpolated(coarse_da.sel(time=days), fine_da, method=est.config_.regrid_method)
    return log_bias(bic, fine_da, days, eps=est.config_.eps)


def _as_members(check: RolloutCheck, days, like: xr.DataArray) -> xr.DataArray:
    vals = np.stack(check.members, axis=1)  # (members, days, ny, nx)
    return xr.DataArray(vals, dims=("member", "time", "lat", "lon"),
                        coords={"time": days, "lat": like["lat"], "lon": like["lon"]},
                        name=like.name)


def evaluate_rollout(est, coarse, fine, *, start, days: int = 30, members: int = 1,
                     seed: int | None = None, sampler: str | None = None,
                     steps: int | None = None,
                     coarse_consistency: bool | None = None,
                     drift_threshold: float | None = None, crps: str = "fair",
                     true_history: xr.Dataset | None = None, carry: str = "mean") -> xr.Dataset:
    """Roll out from ``start`` as if the fine record ended the day before; score by lead day.

    Parameters
    ----------
    est : Downscaler
        A fitted estimator whose seasons cover the evaluated days.
    coarse : xarray.Dataset or xarray.DataArray
        The coarse record on its native grid, covering the evaluated days (and, for the drift
        reference, the ``n_lags`` days before ``start``).
    fine : xarray.Dataset or xarray.DataArray
        The fine record: the truth of the evaluated days and the history before ``start``.
    start : date-like
        First rolled-out day; it and the ``days - 1`` days after it must be fine days.
    days : int
        Number of lead days.
    members, seed, sampler, steps
        As for :meth:`Downscaler.rollout` and :meth:`Downscaler.predict` (both use the same
        seed, so lead day 1 of the rollout equals the true-history prediction of that day).
    coarse_consistency : bool, optional
        Roll out, and predict from the true history, with the coarse-consistency step (see
        :mod:`xdownscale.predict.drift`); default the config's (on for the generative models).
        False scores both
        uncorrected.
    carry : {"mean", "ensemble"}
        What each rolled-out day passes to the next (:meth:`Downscaler.rollout`).
    drift_threshold : float, optional
        Passed to the rollout's drift warning; None (default) keeps the evaluation quiet.
    crps : {"fair", "standard"}
        CRPS estimator, for ``members > 1``.
    true_history : xarray.Dataset, optional
        ``est.predict`` of the same days from the true history with the same settings (and
        ``keep_members=True`` when ``members > 1``), when already made: it is reused rather
        than predicted again (e.g. when comparing rollouts with and without a correction).

    Returns
    -------
    xarray.Dataset
        Dims ``source`` (:data:`SOURCES`), ``space`` (``log10``, ``data``) and ``lead``
        (1..days, coordinate ``time(lead)``): ``r2``, ``rmse``, ``mae``, ``bias`` (mean
        prediction - mean truth) and, with ``members > 1``, ``crps`` for the two model rows;
        ``drift(source, lead)`` (log10 bias against the driver minus the seed window's).
        ``attrs`` record the settings and ``n_training_days``, the evaluated days in the
        seasons' training period, trained on or held out for the spread calibration (a pseudo
        out-of-data test on training days flatters ``true_history``).

    Raises
    ------
    TimeAxisError
        Some evaluated day is not in the fine record.
    ConfigError
        ``days`` < 1.
    """
    from .rollout import rollout

    if int(days) < 1:
        raise ConfigError(f"days must be a positive integer, got {days!r}")
    var = est.var_
    fine_da = field(fine, var).transpose("time", "lat", "lon")
    coarse_da = field(coarse, var).transpose("time", "lat", "lon")
    start = pd.Timestamp(start).normalize()
    rdays = pd.date_range(start, periods=int(days), freq="D")
    missing = rdays.difference(pd.DatetimeIndex(fine_da["time"].values))
    if len(missing):
        raise TimeAxisError(
            f"evaluate_rollout scores every rolled-out day against the fine record, which has "
            f"no data on {len(missing)} of them (first {missing[0].date()}); choose start and "
            "days inside the fine record")
    history = fine_da.sel(time=fine_da["time"] < start.to_datetime64())
    truth = fine_da.sel(time=rdays)

    n_lags = est.config_.n_lags
    seed_days = pd.date_range(start - pd.Timedelta(days=n_lags), periods=n_lags, freq="D")
    # Only the seed window and the evaluated days of the driver are regridded.
    span = coarse_da.sel(time=slice(seed_days[0], rdays[-1]))
    coarse_consistency = resolve_coarse_consistency(est, coarse_consistency)
    check = RolloutCheck(drift_threshold, coarse_consistency=coarse_consistency,
                         keep_members=members > 1)
    rolled = rollout(est, span, history, start=rdays[0], end=rdays[-1], members=members,
                     seed=seed, sampler=sampler, steps=steps, check=check, carry=carry)
    # with members: <var> (the point: the members' mean, or the one-step conditional mean)
    # gives the deterministic scores, the members the CRPS (diagnostics.skill)
    rolled_da = (xr.Dataset({var: rolled[var].assign_coords(lat=truth["lat"], lon=truth["lon"]),
                             f"{var}_members": _as_members(check, rdays, truth)})
                 if members > 1 else rolled[var])
    direct = true_history if true_history is not None else est.predict(
        coarse_da.sel(time=rdays), history=fine_da, members=members, seed=seed,
        sampler=sampler, steps=steps, keep_members=members > 1,
        coarse_consistency=coarse_consistency)
    direct = direct.sel(time=rdays)
    direct_da = direct[[var, f"{var}_members"]] if members > 1 else direct[var]
    bic = regrid_like(coarse_da.sel(time=rdays), fine_da.isel(time=0, drop=True),
                      method=est.config_.regrid_method)
    seasons = season_of(rdays)
    bias = {s: _training_log_bias(est, coarse_da, fine_da, s) for s in np.unique(seasons)}
    factor = xr.DataArray(10.0 ** np.array([bias[s] for s in seasons]), dims="time",
                          coords={"time": rdays})
    preds = {"rollout": rolled_da, "true_history": direct_da, "bicubic": bic,
             "bias_corrected_bicubic": (bic * factor).astype(bic.dtype)}

    reference = history.sel(time=seed_days)
    parts, drifts = [], []
    for pred in preds.values():
        pred = pred.assign_coords(lat=truth["lat"], lon=truth["lon"])
        sk = skill(pred, truth, var=var, spaces=("log10", "data"), crps=crps)
        keep = [s for s in _SCORES if s in sk]
        parts.append(sk[keep])
        mean = pred[var] if isinstance(pred, xr.Dataset) else pred
        drifts.append(drift_series(mean, span, reference=reference, eps=est.config_.eps,
                                   clamp=est.config_.regrid_clamp,
                                   method=est.config_.regrid_method))
    names = np.array(list(preds))  # a plain unicode coordinate (pandas may pick a string dtype)
    out = xr.concat(parts, dim="source", join="outer", coords="minimal", compat="override")
    out["drift"] = xr.concat(drifts, dim="source")
    out = out.assign_coords(source=names)
    out = out.drop_vars([c for c in out.coords if c not in ("source", "space", "time")])
    out = out.compute().rename(time="lead").assign_coords(
        lead=("lead", np.arange(1, len(rdays) + 1), {"units": "days"}), time=("lead", rdays))
    n_train = sum(int(np.isin(rdays.to_numpy(), np.concatenate(
        [est.plans_[s].train, est.plans_[s].holdout])).sum()) for s in np.unique(seasons)
        if s in est.plans_)
    out.attrs = {
        "xdownscale_evaluation": "pseudo out-of-data rollout", "start": str(start.date()),
        "days": int(days), "members": int(members), "model": est.model,
        "coarse_consistency": int(bool(coarse_consistency)), "carry": carry,
        "n_training_days": n_train,
        **{f"bicubic_log_bias_{s}": b for s, b in bias.items()},
    }
    return out


def lead_summary(result: xr.Dataset, leads: Sequence[int] | slice = slice(21, 30),
                 space: str = "log10") -> pd.DataFrame:
    """Mean of each score over a range of lead days, one row per source.

    ``abs_mean_bias`` is the absolute value of the mean over the leads of the daily bias;
    ``r2`` and the other scores are means over the leads.
    """
    leads = slice(*leads) if isinstance(leads, tuple) else leads
    sub = result.sel(lead=leads, space=space)
    rows = {}
    for m in sub["source"].values:
        s = sub.sel(source=m)
        row = {k: float(s[k].mean("lead")) for k in _SCORES if k in s}
        row["abs_mean_bias"] = abs(row["bias"])
        row["drift"] = float(s["drift"].mean("lead"))
        rows[str(m)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("source")


def plot_rollout_skill(result: xr.Dataset | Sequence[xr.Dataset], *, space: str = "log10",
                       scores: Sequence[str] = ("r2", "bias", "rmse", "drift"), axes=None,
                       labels: Sequence[str] | None = None):
    """Skill against lead day, one line per source (and per result when given several).

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        One panel per score.
    """
    import matplotlib.pyplot as plt

    results = [result] if isinstance(result, xr.Dataset) else list(result)
    labels = list(labels) if labels is not None else [""] * len(results)
    if axes is None:
        # constrained: a suptitle over the panels (the report adds one) keeps clear of their titles
        _, axes = plt.subplots(1, len(scores), figsize=(3.6 * len(scores), 3.4), squeeze=False,
                               layout="constrained")
    axes = np.asarray(axes).ravel()
    styles = ["-", "--", ":", "-."]
    for k, (res, lab) in enumerate(zip(results, labels, strict=True)):
        for ax, score in zip(axes, scores, strict=False):
            da = res[score] if score == "drift" else res[score].sel(space=space)
            for i, m in enumerate(da["source"].values):
                if k and m in ("bicubic", "bias_corrected_bicubic"):
                    continue  # the same lines again
                y = da.sel(source=m)
                if not np.isfinite(y).any():
                    continue
                ax.plot(res["lead"], y, ls=styles[k % len(styles)], color=f"C{i}",
                        label=f"{m}{' ' + lab if lab else ''}")
    from matplotlib.ticker import MaxNLocator

    for ax, score in zip(axes, scores, strict=False):
        ax.set_xlabel("lead day")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # lead days are whole days
        unit = "log10" if score == "drift" else space
        ax.set_title(f"{score} ({unit})")
        if score in ("bias", "drift"):
            ax.axhline(0, color="0.6", lw=0.8)
    axes[0].legend(fontsize="x-small")
    return axes


def pseudo_start(est, fine_days: pd.DatetimeIndex, season: str, days: int):
    """Start of the last ``days`` consecutive fine days of ``season`` with ``n_lags`` fine days
    before them (a window :func:`evaluate_rollout` can score), or None when there is none."""
    n_lags = est.config_.n_lags
    ok = fine_days[season_of(fine_days) == season]
    have = set(fine_days)
    for end in ok[::-1]:
        run = pd.date_range(end - pd.Timedelta(days=days + n_lags - 1), end, freq="D")
        if all(d in have for d in run) and (season_of(run[n_lags:]) == season).all():
            return run[n_lags]
    return None
