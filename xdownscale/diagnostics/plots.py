"""Figures of the paper's diagnostics (Figures 3-9), several datasets overlaid.

Each function takes one or more datasets (raw daily fields, or the Datasets returned by the
matching diagnostic, so that a result is not computed twice), draws with matplotlib (imported
here, on call) and returns the Axes. Plotting needs numbers, so these functions compute.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from ..errors import ConfigError, DimensionError
from ._common import field, is_result, maybe_log10

__all__ = ["plot_semivariogram", "plot_acf", "plot_lag_metrics", "plot_map"]


def _labels(objs: Sequence, labels: Sequence[str] | None) -> list[str]:
    if labels is None:
        names = []
        for i, obj in enumerate(objs):
            name = obj.name if isinstance(obj, xr.DataArray) else obj.attrs.get("label")
            names.append(str(name) if name is not None else f"dataset {i}")
        return names
    if len(labels) != len(objs):
        raise ConfigError(f"got {len(labels)} labels for {len(objs)} datasets")
    return [str(x) for x in labels]


def _axes(n: int, axes, *, width: float = 4.5, height: float = 3.8) -> np.ndarray:
    if axes is not None:
        axes = np.atleast_1d(np.asarray(axes, dtype=object)).ravel()
        if axes.size != n:
            raise ConfigError(f"expected {n} Axes, got {axes.size}")
        return axes
    import matplotlib.pyplot as plt

    _, axs = plt.subplots(1, n, figsize=(width * n, height), constrained_layout=True,
                          squeeze=False)
    return axs.ravel()


def plot_semivariogram(obj, *others, labels: Sequence[str] | None = None, ax=None,
                       var: Hashable | None = None, counts: bool = True, **kwargs):
    """Mean semivariogram(s) with the fitted model and pair-count bars (Figures 4 and 8).

    Parameters
    ----------
    obj, *others : xarray.Dataset or xarray.DataArray
        Daily fields, or results of :func:`xdownscale.diagnostics.semivariogram`.
    labels : sequence of str, optional
        One legend label per dataset.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    var : hashable, optional
        Variable of raw fields.
    counts : bool
        Draw the pair counts per bin as bars on a twin y axis.
    **kwargs
        Passed to :func:`~xdownscale.diagnostics.semivariogram` for raw fields.

    Returns
    -------
    matplotlib.axes.Axes
        The semivariance axis (the count axis is ``ax.twin`` when drawn).

    Raises
    ------
    ConfigError
        Wrong number of labels.
    """
    from .variogram import model_function, semivariogram

    objs = [obj, *others]
    names = _labels(objs, labels)
    ax = _axes(1, ax)[0]
    twin = ax.twinx() if counts else None
    width = None
    for i, (o, label) in enumerate(zip(objs, names, strict=True)):
        res = o if is_result(o, "semivariogram") else semivariogram(o, var=var, **kwargs)
        res = res.compute()
        h = np.asarray(res["bin"])
        width = np.diff(np.asarray(res["bin_upper"]))[0] if h.size > 1 else 1.0
        line = ax.plot(h, np.asarray(res["gamma_mean"]), "o-", ms=3, label=label)[0]
        params = [float(res[k]) for k in ("range", "partial_sill", "nugget")]
        if np.isfinite(params).all():
            fine = np.linspace(0.0, float(res["bin_upper"][-1]), 200)
            curve = model_function(res.attrs.get("model", "spherical"))(fine, *params)
            ax.plot(fine, curve, "--", color=line.get_color(),
                    label=f"{label} fit (range {params[0]:.0f} km)")
        if twin is not None:
            w = 0.8 * width / len(objs)
            twin.bar(h - 0.4 * width + (i + 0.5) * w, np.asarray(res["counts_total"]), width=w,
                     color=line.get_color(), alpha=0.25)
    if twin is not None:
        twin.set_ylabel("pixel pairs")
        ax.set_zorder(twin.get_zorder() + 1)  # lines above the bars
        ax.patch.set_visible(False)
        ax.twin = twin
    ax.set_xlabel("distance (km)")
    ax.set_ylabel("semivariance")
    ax.legend(fontsize="small")
    return ax


def _band(ax, lag, lo, hi, color) -> None:
    ax.fill_between(lag[1:], lo[1:], hi[1:], color=color, alpha=0.15, lw=0)


def plot_acf(obj, *others, labels: Sequence[str] | None = None, axes=None,
             var: Hashable | None = None, nlags: int = 30, **kwargs) -> np.ndarray:
    """ACF and PACF of the regional-mean series with their bands (Figures 5 and 9).

    Parameters
    ----------
    obj, *others : xarray.Dataset or xarray.DataArray
        Daily fields, or results of :func:`xdownscale.diagnostics.temporal.correlogram`.
    labels : sequence of str, optional
        One legend label per dataset.
    axes : two matplotlib Axes, optional
        Where to draw the ACF and the PACF; a new figure when None.
    var : hashable, optional
        Variable of raw fields.
    nlags : int
        Largest lag for raw fields.
    **kwargs
        Passed to :func:`~xdownscale.diagnostics.temporal.correlogram`.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        ``[acf_axes, pacf_axes]``.

    Raises
    ------
    ConfigError
        Wrong number of labels or Axes.
    """
    from .temporal import correlogram

    objs = [obj, *others]
    names = _labels(objs, labels)
    axs = _axes(2, axes)
    offset = np.linspace(-0.2, 0.2, len(objs)) if len(objs) > 1 else [0.0]
    for o, label, dx in zip(objs, names, offset, strict=True):
        res = o if is_result(o, "correlogram") else correlogram(o, nlags, var=var, **kwargs)
        res = res.compute()
        lag = np.asarray(res["lag"], float)
        for ax, key in zip(axs, ("acf", "pacf"), strict=True):
            val = np.asarray(res[key])
            mark = ax.plot(lag + dx, val, "o", ms=3, label=label)[0]
            ax.vlines(lag + dx, 0, val, color=mark.get_color(), lw=1)
            _band(ax, lag, np.asarray(res[f"{key}_lower"]), np.asarray(res[f"{key}_upper"]),
                  mark.get_color())
    for ax, title in zip(axs, ("ACF", "PACF"), strict=True):
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("lag (days)")
        ax.set_title(title)
        ax.legend(fontsize="small")
    return axs


def plot_lag_metrics(obj, *others, labels: Sequence[str] | None = None, axes=None,
                     var: Hashable | None = None, max_lag: int = 10, **kwargs) -> np.ndarray:
    """Image-wise R^2 and RMSE against lag (Figure 3).

    Parameters
    ----------
    obj, *others : xarray.Dataset or xarray.DataArray
        Daily fields, or results of :func:`xdownscale.diagnostics.lag_metrics`.
    labels : sequence of str, optional
        One legend label per dataset.
    axes : two matplotlib Axes, optional
        Where to draw R^2 and RMSE; a new figure when None.
    var : hashable, optional
        Variable of raw fields.
    max_lag : int
        Largest lag for raw fields.
    **kwargs
        Passed to :func:`~xdownscale.diagnostics.lag_metrics`.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        ``[r2_axes, rmse_axes]``.

    Raises
    ------
    ConfigError
        Wrong number of labels or Axes.
    """
    from .temporal import lag_metrics

    objs = [obj, *others]
    names = _labels(objs, labels)
    axs = _axes(2, axes)
    for o, label in zip(objs, names, strict=True):
        res = o if is_result(o, "lag_metrics") else lag_metrics(o, max_lag, var=var, **kwargs)
        res = res[["r2", "rmse", "r2_std", "rmse_std"]].compute()
        for ax, key in zip(axs, ("r2", "rmse"), strict=True):
            ax.errorbar(np.asarray(res["lag"]), np.asarray(res[key]),
                        yerr=np.asarray(res[f"{key}_std"]), marker="o", ms=3, capsize=2,
                        label=label)
    for ax, title in zip(axs, ("R²", "RMSE"), strict=True):
        ax.set_xlabel("lag (days)")
        ax.set_title(f"image-wise {title}")
        ax.legend(fontsize="small")
    return axs


def _map_of(obj, var, time, log10: bool) -> xr.DataArray:
    da = maybe_log10(field(obj, var), log10)
    if "time" in da.dims:
        da = da.sel(time=time)
    if "member" in da.dims:
        da = da.mean("member")
    extra = [d for d in da.dims if d not in ("lat", "lon")]
    if extra:
        raise DimensionError(f"plot_map draws lat/lon maps; select or reduce the dims {extra}")
    return da.transpose("lat", "lon").compute()


def plot_map(obj, *others, labels: Sequence[str] | None = None, axes=None,
             var: Hashable | None = None, time=None, log10: bool = True,
             cmap: str = "viridis", diff_cmap: str = "RdBu_r") -> np.ndarray:
    """Maps of one day, one panel per dataset, plus their difference for two datasets.

    Parameters
    ----------
    obj, *others : xarray.Dataset or xarray.DataArray
        Fields (daily or single maps); grids may differ (e.g. native MERRA-2 next to G5NR).
    labels : sequence of str, optional
        One panel title per dataset.
    axes : matplotlib Axes, optional
        One per panel; a new figure when None. Passing one Axes per dataset leaves out the
        difference panel.
    var : hashable, optional
        Variable to draw.
    time : datetime-like, optional
        Day to draw; default the first day all datasets have. Ensemble members are averaged.
    log10 : bool
        Draw ``log10(max(x, 1e-6))``.
    cmap, diff_cmap : str
        Colour maps of the fields and of the difference (second minus first).

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        One per panel; the difference panel is last.

    Raises
    ------
    ConfigError
        Wrong number of labels or Axes, or no day shared by all datasets.
    DimensionError
        A field keeps dims other than ``lat``/``lon`` (and ``member``) once the day is chosen.
    """
    objs = [obj, *others]
    names = _labels(objs, labels)
    if time is None:
        days = [set(np.asarray(field(o, var)["time"])) for o in objs
                if "time" in field(o, var).dims]
        common = sorted(set.intersection(*days)) if days else [None]
        if not common:
            raise ConfigError("the datasets share no day; pass time= to choose one")
        time = common[0]
    maps = [_map_of(o, var, time, log10) for o in objs]
    same_grid = len(maps) == 2 and all(
        maps[0][d].shape == maps[1][d].shape
        and np.allclose(maps[0][d], maps[1][d], atol=1e-6) for d in ("lat", "lon"))
    if axes is not None and np.size(axes) == len(maps):
        same_grid = False  # the caller gave room for the fields only
    axs = _axes(len(maps) + int(same_grid), axes)
    vals = np.concatenate([np.asarray(m).ravel() for m in maps])
    vmin, vmax = np.nanpercentile(vals, [1, 99]) if np.isfinite(vals).any() else (0, 1)
    for ax, m, label in zip(axs, maps, names, strict=False):
        mesh = ax.pcolormesh(np.asarray(m["lon"]), np.asarray(m["lat"]), np.asarray(m),
                             cmap=cmap, vmin=vmin, vmax=vmax, shading="nearest")
        ax.set_title(label)
        ax.figure.colorbar(mesh, ax=ax, shrink=0.8)
    if same_grid:
        diff = np.asarray(maps[1]) - np.asarray(maps[0])
        lim = np.nanmax(np.abs(diff)) if np.isfinite(diff).any() else 1.0
        mesh = axs[-1].pcolormesh(np.asarray(maps[0]["lon"]), np.asarray(maps[0]["lat"]),
                                  diff, cmap=diff_cmap, vmin=-lim, vmax=lim, shading="nearest")
        axs[-1].set_title(f"{names[1]} − {names[0]}")
        axs[-1].figure.colorbar(mesh, ax=axs[-1], shrink=0.8)
    for ax in axs:
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
    return axs
