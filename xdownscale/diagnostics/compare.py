"""One area x season comparison: the paper's tables and figures in one call."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import dask
import numpy as np
import xarray as xr

from ..data.seasons import SEASONS
from ..errors import ConfigError, GridMismatchError
from ._common import check_same_grid, field, product_label, target_days
from .distance import wasserstein
from .skill import skill
from .summary import summary
from .temporal import correlogram, lag_metrics
from .variogram import semivariogram


def _season_days(obj, var, season: str | None) -> xr.DataArray:
    da = target_days(field(obj, var))
    if season is None:
        return da
    labels = np.asarray(da["time"].dt.season)
    return da.isel(time=np.flatnonzero(labels == season))


def _stack(results: dict[str, xr.Dataset], names: Sequence[str],
           prefix: str | None = None) -> xr.Dataset:
    """Concatenate per-dataset results along ``dataset``, variables renamed ``prefix_name``."""
    labels = list(results)
    ds = xr.concat([results[k][list(names)] for k in labels], dim="dataset",
                   coords="minimal", compat="override", join="outer")
    ds = ds.assign_coords(dataset=labels)
    return ds.rename({n: f"{prefix}_{n}" for n in names}) if prefix else ds


def compare(
    truth: xr.Dataset | xr.DataArray | None,
    prediction: xr.Dataset | xr.DataArray,
    coarse: xr.Dataset | xr.DataArray | None = None,
    *,
    season: str | None = None,
    var: Hashable | None = None,
    labels: Sequence[str] | None = None,
    bins: int = 100,
    n_pairs: int = 30000,
    max_dist_km: float = 600,
    n_bins: int = 30,
    model: str = "spherical",
    nlags: int = 30,
    max_lag: int = 10,
    seed: int = 0,
    figures: bool = True,
    day=None,
) -> tuple[xr.Dataset, dict]:
    """The paper's Tables 1-3/A1 and Figures 3-5, 8-9 for one area and season.

    Parameters
    ----------
    truth : xarray.Dataset or xarray.DataArray or None
        High-resolution truth (G5NR); None for out-of-data periods (Section 4), which drops
        the skill table.
    prediction : xarray.Dataset or xarray.DataArray
        Downscaled fields (optionally with a ``member`` dim).
    coarse : xarray.Dataset or xarray.DataArray, optional
        The coarse driver (MERRA-2), at its native grid or regridded; the Wasserstein table
        needs it on the truth grid and is left out (``attrs["wasserstein"]`` says why)
        otherwise.
    season : {"DJF", "MAM", "JJA", "SON"}, optional
        Keep that season's days (target days only); None keeps every day.
    var : hashable, optional
        Variable name in every input; default ``"DUEXTTAU"``.
    labels : sequence of 3 str, optional
        Names of truth, prediction and coarse along the ``dataset`` dim and in figures;
        default from the data's own metadata (``"fine (G5NR)"`` for what
        :func:`~xdownscale.open_g5nr` read, else ``"fine"``; ``"prediction"``; ``"coarse"``
        or ``"coarse (MERRA-2)"``).
    bins, n_pairs, max_dist_km, n_bins, model, nlags, max_lag, seed
        Passed to :func:`wasserstein`, :func:`semivariogram`, :func:`acf`/:func:`pacf` and
        :func:`lag_metrics`.
    figures : bool
        Also draw the figures (needs matplotlib).
    day : datetime-like, optional
        Day of the map figure; default the first shared day.

    Returns
    -------
    (xarray.Dataset, dict)
        A computed Dataset with ``summary_*(dataset, season)`` (Table 1), ``w1_*`` (Table 2:
        ``w1_daily_mean``, ``w1_p10``, ``w1_p90``, ``w1_pooled``, coarse vs truth),
        ``skill_*(space)`` (Tables 3/A1: ``<metric>_mean`` and ``_std``), ``lag_*(dataset,
        lag)`` (Figure 3), ``vario_*(dataset, bin)`` and fitted parameters (Figures 4, 8),
        ``acf_*``/``pacf_*(dataset, acf_lag)`` (Figures 5, 9; lags from 0); and a dict of figures
        ``{"lag_metrics", "semivariogram", "acf", "map"}``. The tables and curves are computed
        in one dask pass (this function exists to produce numbers); the map figure reads
        its day again.

    Raises
    ------
    ConfigError
        Unknown ``season`` or wrong number of labels.
    """
    if season is not None and season not in SEASONS:
        raise ConfigError(f"season must be one of {SEASONS} or None, got {season!r}")
    if labels is None:
        labels = (product_label(truth, "fine"), "prediction", product_label(coarse, "coarse"))
    if len(labels) != 3:
        raise ConfigError(f"labels must name truth, prediction and coarse, got {list(labels)}")
    inputs = {lab: _season_days(o, var, season)
              for lab, o in zip(labels, (truth, prediction, coarse), strict=True)
              if o is not None}
    t_lab, p_lab, c_lab = labels

    notes: dict[str, str] = {}
    w = sk = None
    summ = {k: summary(v, by="season" if season else None) for k, v in inputs.items()}
    if truth is not None and coarse is not None:
        try:
            check_same_grid(inputs[c_lab], inputs[t_lab], "wasserstein")
        except GridMismatchError as err:
            notes["wasserstein"] = f"skipped: {err}"
        else:
            w = wasserstein(inputs[c_lab], inputs[t_lab], bins=bins)
    if truth is not None:
        sk = skill(inputs[p_lab], inputs[t_lab])
    fields = {k: (v.mean("member") if "member" in v.dims else v) for k, v in inputs.items()}
    lags = {k: lag_metrics(v, max_lag) for k, v in fields.items()}
    vario = {k: semivariogram(v, n_pairs, max_dist_km, n_bins, model, seed)
             for k, v in fields.items()}
    corr = {k: correlogram(v, nlags) for k, v in fields.items()}
    # One pass over the data for every table and curve.
    summ, w, sk, lags, vario, corr = dask.compute(summ, w, sk, lags, vario, corr)

    parts = [_stack(summ, list(next(iter(summ.values())).data_vars), "summary")]
    if w is not None:
        keys = ("daily_mean", "p10", "p90", "pooled")
        parts.append(w[list(keys)].rename({k: f"w1_{k}" for k in keys}))
    if sk is not None:
        means = [v for v in sk.data_vars if v.endswith(("_mean", "_std"))]
        parts.append(sk[means].rename({v: f"skill_{v}" for v in means}))
    parts.append(_stack(lags, ["rmse", "r2", "rmse_std", "r2_std", "n_days"], "lag"))
    parts.append(_stack(vario, ["gamma_mean", "counts_total", "fitted", "range",
                                "partial_sill", "nugget", "sill"], "vario"))
    parts.append(_stack(corr, ["acf", "acf_lower", "acf_upper", "pacf", "pacf_lower",
                               "pacf_upper", "n_obs"]).rename({"n_obs": "acf_n_obs",
                                                               "lag": "acf_lag"}))
    out = xr.merge(parts, compat="override", join="outer", combine_attrs="drop")
    out.attrs.update({"season": season or "all", **notes})

    figs: dict = {}
    if figures:
        from .plots import plot_acf, plot_lag_metrics, plot_map, plot_semivariogram

        names = list(inputs)
        figs["lag_metrics"] = plot_lag_metrics(*lags.values(), labels=names)[0].figure
        figs["semivariogram"] = plot_semivariogram(*vario.values(), labels=names).figure
        figs["acf"] = plot_acf(*corr.values(), labels=names)[0].figure
        # Figure 6 (truth, prediction, difference), or Figure 7 (driver, prediction) OOD.
        reference = t_lab if truth is not None else c_lab if coarse is not None else None
        pair = [p_lab] if reference is None else [reference, p_lab]
        figs["map"] = plot_map(*(fields[k] for k in pair), labels=pair, time=day)[0].figure
    return out, figs
