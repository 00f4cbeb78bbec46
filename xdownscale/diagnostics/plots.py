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

__all__ = ["plot_semivariogram", "plot_acf", "plot_lag_metrics", "plot_map", "label_from_attrs"]


def _labels(objs: Sequence, labels: Sequence[str] | None) -> list[str]:
    if labels is None:
        # what the data say it is: an explicit label, the product's title, else its name
        names = []
        for i, obj in enumerate(objs):
            name = obj.attrs.get("label") or obj.attrs.get("title") or (
                obj.name if isinstance(obj, xr.DataArray) else None)
            names.append(str(name) if name is not None else f"dataset {i + 1}")
        return names
    if len(labels) != len(objs):
        raise ConfigError(f"got {len(labels)} labels for {len(objs)} datasets")
    return [str(x) for x in labels]


def label_from_attrs(da: xr.DataArray, *, log10: bool = False, prefix: str = "") -> str:
    """An axis or colour-bar label from ``long_name`` (or the name) and ``units``.

    Like xarray's own ``.plot()`` labels, with the ``log10`` a figure applied made explicit.
    """
    attrs = da.attrs
    name = attrs.get("long_name") or attrs.get("standard_name") or da.name or ""
    units = attrs.get("units")
    if log10:
        name = f"log10 {name}"
        # the log of a quantity in units U is in "decades of U"; say so unless dimensionless
        units = None if units in (None, "", "1") else f"log10 {units}"
    text = f"{prefix}{name}"
    return f"{text} [{units}]" if units not in (None, "") else text


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


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
    ax = _axes(1, ax, width=6.5, height=4.2)[0]
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
            bound = bool(res["range_at_bound"]) if "range_at_bound" in res else False
            rng = (f"range ≥ {params[0]:.0f} km: fit hit its bound, no sill reached" if bound
                   else f"range {params[0]:.0f} km")
            ax.plot(fine, curve, "--", color=line.get_color(), label=f"{label} fit ({rng})")
        if twin is not None:
            w = 0.8 * width / len(objs)
            twin.bar(h - 0.4 * width + (i + 0.5) * w, np.asarray(res["counts_total"]), width=w,
                     color=line.get_color(), alpha=0.25)
    if twin is not None:
        twin.set_ylabel("pixel pairs per distance bin")
        lo, hi = twin.get_ylim()
        twin.set_ylim(0, 3 * hi)  # the bars fill the lower third, under the curves
        ax.set_zorder(twin.get_zorder() + 1)  # lines above the bars
        ax.patch.set_visible(False)
        ax.twin = twin
    ax.set_xlabel("distance (km)")
    transform = res.attrs.get("transform", "none")
    ax.set_ylabel("semivariance" + (" of log10 field" if transform.startswith("log10") else ""))
    ax.set_ylim(bottom=0)
    # below the axes: inside, the legend would cover curves or count bars, wherever it sat
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
              frameon=False)
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
    n_obs = []
    for o, label, dx in zip(objs, names, offset, strict=True):
        res = o if is_result(o, "correlogram") else correlogram(o, nlags, var=var, **kwargs)
        res = res.compute()
        n_obs.append(int(res["n_obs"]) if res["n_obs"].ndim == 0 else None)
        lag = np.asarray(res["lag"], float)
        for ax, key in zip(axs, ("acf", "pacf"), strict=True):
            val = np.asarray(res[key])
            mark = ax.plot(lag + dx, val, "o", ms=3, label=label)[0]
            ax.vlines(lag + dx, 0, val, color=mark.get_color(), lw=1)
            _band(ax, lag, np.asarray(res[f"{key}_lower"]), np.asarray(res[f"{key}_upper"]),
                  mark.get_color())
    days = sorted({n for n in n_obs if n is not None})
    note = f" ({' / '.join(map(str, days))} days; {1 - res.attrs.get('alpha', 0.05):.0%} band)" \
        if days else ""
    for ax, title in zip(axs, ("ACF", "PACF"), strict=True):
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("lag (days)")
        ax.set_ylabel("correlation of the regional-mean series")
        _integer_ticks(ax)
        ax.set_title(title + note)
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
            val, sd = np.asarray(res[key]), np.asarray(res[f"{key}_std"])
            # +- one std over days, but R2 cannot exceed 1 nor an RMSE fall below 0
            lower = np.minimum(sd, val) if key == "rmse" else sd
            upper = np.clip(1.0 - val, 0, None) if key == "r2" else sd
            upper = np.minimum(sd, upper)
            ax.errorbar(np.asarray(res["lag"]), val, yerr=np.vstack([lower, upper]), marker="o",
                        ms=3, capsize=2, label=label)
    space = "log10 " if res.attrs.get("transform", "none").startswith("log10") else ""
    for ax, title in zip(axs, ("R²", "RMSE"), strict=True):
        ax.set_xlabel("lag (days)")
        ax.set_ylabel(f"{space}{title} (mean ± std over days)")
        _integer_ticks(ax)
        ax.set_title(f"image-wise {space}{title}, day t vs day t − lag")
        ax.legend(fontsize="small")
    return axs


def _map_of(obj, var, time, log10: bool) -> xr.DataArray:
    raw = field(obj, var)
    da = maybe_log10(raw, log10)
    if "time" in da.dims:
        da = da.sel(time=time)
    if "member" in da.dims:
        da = da.mean("member")
    extra = [d for d in da.dims if d not in ("lat", "lon")]
    if extra:
        raise DimensionError(f"plot_map draws lat/lon maps; select or reduce the dims {extra}")
    da = da.transpose("lat", "lon").compute()
    da.attrs = dict(raw.attrs)  # label from the field's own long_name and units
    return da


def _edges(c: np.ndarray) -> tuple[float, float]:
    """Outer cell edges of 1-D pixel centres (half a spacing past the outer centres)."""
    half = abs(c[1] - c[0]) / 2 if c.size > 1 else 0.5
    return float(c.min() - half), float(c.max() + half)


def _date(time) -> str:
    import pandas as pd

    return "" if time is None else str(pd.Timestamp(time).date())


def plot_map(obj, *others, labels: Sequence[str] | None = None, axes=None,
             var: Hashable | None = None, time=None, log10: bool = True,
             cmap: str = "viridis", diff_cmap: str = "RdBu_r",
             difference: tuple[int, int] | bool | None = None,
             same_extent: bool = True) -> np.ndarray:
    """Maps of one day, one panel per dataset, plus a difference panel.

    Colour bars are labelled from the fields' ``long_name`` and ``units`` (as xarray's
    ``.plot()`` does), every title carries the day, all panels share one colour scale and,
    by default, one map extent (the area every field covers), drawn with the aspect of the
    degrees at that latitude.

    Parameters
    ----------
    obj, *others : xarray.Dataset or xarray.DataArray
        Fields (daily or single maps); grids may differ (e.g. native MERRA-2 next to G5NR).
    labels : sequence of str, optional
        One panel title per dataset; default from each dataset's ``label`` or ``title``
        attribute, else its name.
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
        Colour maps of the fields and of the difference.
    difference : (i, j), bool or None
        Draw dataset ``j`` minus dataset ``i``; None (default) means ``(0, 1)`` for two
        datasets on the same grid and no difference otherwise; False never.
    same_extent : bool, default True
        Limit every panel to the area all fields cover, so coarse and fine panels compare
        like for like.

    Returns
    -------
    numpy.ndarray of matplotlib.axes.Axes
        One per panel; the difference panel is last.

    Raises
    ------
    ConfigError
        Wrong number of labels or Axes, no day shared by all datasets, or a difference of
        two fields on different grids.
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

    def same_grid(a, b):
        return all(a[d].shape == b[d].shape and np.allclose(a[d], b[d], atol=1e-6)
                   for d in ("lat", "lon"))

    if difference is None:
        pair = (0, 1) if len(maps) == 2 and same_grid(*maps) else None
    elif difference is False:
        pair = None
    else:
        pair = (0, 1) if difference is True else tuple(difference)
        if not same_grid(maps[pair[0]], maps[pair[1]]):
            raise ConfigError("a difference map needs both fields on the same grid; regrid "
                              "one onto the other first")
    if axes is not None and np.size(axes) == len(maps):
        pair = None  # the caller gave room for the fields only
    axs = _axes(len(maps) + int(pair is not None), axes)
    vals = np.concatenate([np.asarray(m).ravel() for m in maps])
    vmin, vmax = np.nanpercentile(vals, [1, 99]) if np.isfinite(vals).any() else (0, 1)
    day = _date(time)
    for ax, m, label in zip(axs, maps, names, strict=False):
        mesh = ax.pcolormesh(np.asarray(m["lon"]), np.asarray(m["lat"]), np.asarray(m),
                             cmap=cmap, vmin=vmin, vmax=vmax, shading="nearest")
        ax.set_title(f"{label}\n{day}" if day else label)
        ax.figure.colorbar(mesh, ax=ax, shrink=0.8, label=label_from_attrs(m, log10=log10))
    if pair is not None:
        a, b = maps[pair[0]], maps[pair[1]]
        diff = np.asarray(b) - np.asarray(a)
        lim = np.nanmax(np.abs(diff)) if np.isfinite(diff).any() else 1.0
        mesh = axs[-1].pcolormesh(np.asarray(a["lon"]), np.asarray(a["lat"]), diff,
                                  cmap=diff_cmap, vmin=-lim, vmax=lim, shading="nearest")
        title = f"{names[pair[1]]} − {names[pair[0]]}"
        axs[-1].set_title(f"{title}\n{day}" if day else title)
        axs[-1].figure.colorbar(mesh, ax=axs[-1], shrink=0.8,
                                label=label_from_attrs(a, log10=log10, prefix="difference of "))
    lat_ext = [_edges(np.asarray(m["lat"])) for m in maps]
    lon_ext = [_edges(np.asarray(m["lon"])) for m in maps]
    ylim = (max(e[0] for e in lat_ext), min(e[1] for e in lat_ext))
    xlim = (max(e[0] for e in lon_ext), min(e[1] for e in lon_ext))
    aspect = 1.0 / max(np.cos(np.deg2rad(np.mean(ylim))), 0.1)
    for ax in axs:
        if same_extent and ylim[0] < ylim[1] and xlim[0] < xlim[1]:
            ax.set_xlim(*xlim)
            ax.set_ylim(*ylim)
        ax.set_aspect(aspect)
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
    return axs
