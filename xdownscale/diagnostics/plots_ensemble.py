"""Figures of ensemble calibration and texture: rank histograms and power spectra.

Like :mod:`xdownscale.diagnostics.plots`, each function takes raw fields or the Dataset of the
matching diagnostic (so a result is not computed twice), imports matplotlib on call and
returns the Axes.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import xarray as xr

from ..errors import ConfigError
from ._common import is_result

__all__ = ["plot_rank_histogram", "plot_power_spectrum"]


def _ax(ax, size=(5.0, 3.8)):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, constrained_layout=True)[1]


def plot_rank_histogram(prediction, truth=None, *, ax=None, label: str | None = None,
                        var: Hashable | None = None, **kwargs):
    """Bars of the truth's rank frequency with the flat level of a calibrated ensemble.

    Parameters
    ----------
    prediction : xarray.Dataset or xarray.DataArray
        An ensemble (then ``truth`` is needed) or a result of
        :func:`xdownscale.diagnostics.rank_histogram`.
    truth : xarray.Dataset or xarray.DataArray, optional
        True fields, when ``prediction`` is an ensemble.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    label : str, optional
        Title prefix.
    var : hashable, optional
        Variable of raw fields.
    **kwargs
        Passed to :func:`~xdownscale.diagnostics.rank_histogram` for raw fields.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ConfigError
        Raw fields given without ``truth``.
    """
    from .ensemble import rank_histogram

    if is_result(prediction, "rank_histogram"):
        res = prediction
    elif truth is None:
        raise ConfigError("plot_rank_histogram needs truth= unless given a rank_histogram "
                          "result")
    else:
        res = rank_histogram(prediction, truth, var=var, **kwargs)
    freq = np.asarray(res["frequency"], float)
    rank = np.asarray(res["rank"])
    ax = _ax(ax)
    ax.bar(rank, freq, width=0.85, color="C0")
    ax.axhline(1.0 / rank.size, color="k", ls="--", lw=1, label="flat (calibrated)")
    ax.set_xlabel("rank of the truth among the members")
    ax.set_ylabel("relative frequency")
    ax.set_xticks(rank)
    title = f"outer ranks x{float(res['extreme_ratio']):.2f} of flat"
    ax.set_title(f"{label}: {title}" if label else title)
    ax.legend(loc="upper center")
    return ax


def plot_power_spectrum(obj, *others, labels: Sequence[str] | None = None, ax=None,
                        var: Hashable | None = None, **kwargs):
    """Mean radial power spectra against wavelength (log-log; short wavelengths to the right).

    Parameters
    ----------
    obj, *others : xarray.Dataset or xarray.DataArray
        Daily fields (e.g. the truth and one ensemble member), or results of
        :func:`xdownscale.diagnostics.power_spectrum`.
    labels : sequence of str, optional
        One legend label per dataset.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when None.
    var : hashable, optional
        Variable of raw fields.
    **kwargs
        Passed to :func:`~xdownscale.diagnostics.power_spectrum` for raw fields.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ConfigError
        Wrong number of labels.
    """
    from .spectrum import power_spectrum

    objs = [obj, *others]
    if labels is not None and len(labels) != len(objs):
        raise ConfigError(f"got {len(labels)} labels for {len(objs)} datasets")
    ax = _ax(ax)
    for i, o in enumerate(objs):
        res = o if is_result(o, "power_spectrum") else power_spectrum(o, var=var, **kwargs)
        mean = res["power_mean"]
        extra = [d for d in mean.dims if d != "wavenumber"]
        if extra:  # e.g. a member dim: average the spectra
            mean = mean.mean(extra)
        if labels is not None:
            name = labels[i]
        else:
            name = o.name if isinstance(o, xr.DataArray) else o.attrs.get("label", f"dataset {i}")
        ax.loglog(np.asarray(res["wavelength"]), np.asarray(mean), marker=".", label=str(name))
    ax.invert_xaxis()
    ax.set_xlabel("wavelength (km)")
    ax.set_ylabel("power per annulus")
    ax.legend()
    return ax
