"""The baselines every downscaling model is judged against: interpolating the coarse map.

``bicubic`` is the coarse day interpolated to the fine grid (the method the estimator uses
to feed the coarse driver to its models, bicubic by default); ``bicubic_bc`` removes from it
the mean log10 bias against the fine truth on the training days. A model that does not beat
both is not worth its cost; :func:`score_against_baselines` puts the three side by side.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import ensure_dataarray
from ..data.regions import normalize_lonlat
from ..data.regrid import regrid_like
from ._common import LOG_EPS, log10
from .skill import skill

__all__ = ["interpolated", "log_bias", "bias_corrected", "score_against_baselines"]


def interpolated(coarse, fine_like: xr.DataArray, *, var=None, method: str = "cubic",
                 clamp: bool = False) -> xr.DataArray:
    """The coarse record interpolated to the fine grid of ``fine_like`` (lazy over time);
    ``clamp`` as for :func:`~xdownscale.data.regrid.regrid_like` (the baselines of the
    benchmarks and the report are plain bicubic)."""
    cda = normalize_lonlat(ensure_dataarray(coarse, var)).transpose("time", "lat", "lon")
    grid = fine_like.isel(time=0, drop=True) if "time" in fine_like.dims else fine_like
    return regrid_like(cda, grid, method=method, clamp=clamp)


def log_bias(baseline: xr.DataArray, truth: xr.DataArray, days, *, eps: float = LOG_EPS) -> float:
    """Mean of ``log10(truth) - log10(baseline)`` over ``days`` and all valid pixels."""
    days = pd.DatetimeIndex(days)
    diff = log10(truth.sel(time=days), eps) - log10(baseline.sel(time=days), eps)
    value = float(diff.mean(skipna=True).compute())
    if not np.isfinite(value):
        raise ValueError("no valid pixel to learn the baseline's bias from")
    return value


def bias_corrected(baseline: xr.DataArray, bias: float) -> xr.DataArray:
    """``baseline`` with a log10 bias removed (a multiplicative factor ``10**bias``)."""
    out = baseline * 10.0 ** float(bias)
    out.attrs = dict(baseline.attrs)
    return out


def score_against_baselines(predictions: Mapping[str, xr.Dataset | xr.DataArray],
                            truth: xr.DataArray, *, eps: float = LOG_EPS) -> pd.DataFrame:
    """One row per candidate: mean per-day R² and RMSE (and CRPS for ensembles) in log10 and
    data units, and the number of days scored.

    ``predictions`` maps a name to a prediction (a Dataset as ``Downscaler.predict`` returns,
    possibly with members, or a DataArray such as a baseline).
    """
    rows = {}
    for name, pred in predictions.items():
        sk = skill(pred, truth, eps=eps).compute()
        row = {}
        for space in ("log10", "data"):
            s = sk.sel(space=space)
            row[f"r2_{space}"] = float(s["r2_mean"])
            row[f"rmse_{space}"] = float(s["rmse_mean"])
            row[f"bias_{space}"] = float(s["bias_mean"])
            if "crps_mean" in s:
                row[f"crps_{space}"] = float(s["crps_mean"])
        row["n_days"] = int(sk.sizes.get("time", 0))
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
