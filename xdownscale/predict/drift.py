"""Drift of an autoregressive rollout against its coarse driver, and a coarse-consistency step.

Past the end of the fine record nothing tells a rollout it is wrong except the coarse driver.
Two things follow from it, both checkable every day without fine truth:

* **drift**: the domain mean of ``log10(prediction) - log10(driver on the fine grid)``, minus
  the same quantity for the true fine days that seeded the rollout (fine and coarse fields do
  not share their mean log even when they share their mean, since the fine field varies more;
  the seed window measures that offset). A rollout whose errors feed back shows a drift that
  grows day after day; :class:`RolloutCheck` warns once it passes a threshold.
* **coarse consistency** (``DownscaleConfig.coarse_consistency``, on by default for the
  generative models): shift the
  log10 prediction so that its mean over each coarse cell minus the driver's mean over that
  cell equals the offset the fine record had there: the training days' of the day's season
  (``est.cell_offsets_``, the same step ``predict`` applies, so a rollout's first day equals
  the prediction of that day from the true history), or the seed window's for an estimator
  saved without them. The per-cell shifts are spread to the fine pixels by linear
  interpolation between cell centres, so no cell edge is imprinted on the history.

The cell kernels live in :mod:`xdownscale.data.cells` (``predict`` and ``fit`` use them too);
:func:`drift_series` and :func:`coarse_consistent` are the xarray wrappers.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable

import numpy as np
import pandas as pd
import xarray as xr

from ..data.cells import CellGeometry, _coarse_consistent, _tie_members, cell_offsets
from ..data.seasons import season_of
from ..data.transforms import inverse_log10, log10_transform
from ..diagnostics._common import field
from ..errors import XDownscaleWarning

__all__ = ["RolloutCheck", "CellGeometry", "drift_series", "coarse_consistent",
           "DEFAULT_DRIFT_THRESHOLD", "DEFAULT_COARSE_CONSISTENCY"]

#: |drift| in log10 units past which a rollout warns: 0.1 is a factor 1.26 in the domain mean.
DEFAULT_DRIFT_THRESHOLD = 0.1
#: The default of :class:`RolloutCheck` (a fitted estimator's rollouts follow its
#: ``config.coarse_consistency``, on for the generative models): on the demo pair and six
#: test-beds it raised the R² of lead days 21-30 by 0.04-0.22 and kept |bias| <= 0.014
#: (``benchmarks/bench_rollout_skill.py``; the table is in the rollout guide).
DEFAULT_COARSE_CONSISTENCY = True


# -- kernels ----------------------------------------------------------------------------------
def _domain_log_bias(pred_log: np.ndarray, drv_log: np.ndarray) -> np.ndarray:
    """Mean of ``pred_log - drv_log`` over the pixels finite in both: ``(..., ny, nx) -> (...)``."""
    ok = np.isfinite(pred_log) & np.isfinite(drv_log)
    n = ok.sum(axis=(-2, -1))
    total = np.where(ok, pred_log - drv_log, 0.0).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


# -- the per-day check the rollout calls --------------------------------------------------------
class RolloutCheck:
    """Checks (and optionally corrects) each rolled-out day against its coarse driver.

    Parameters
    ----------
    threshold : float or None
        Warn (:class:`~xdownscale.errors.XDownscaleWarning`, once per rollout) when
        ``|drift|`` passes it, in log10 units; None never warns.
    coarse_consistency : bool, default True
        Apply the coarse-consistency step to each day before it becomes history.
    keep_members : bool
        Keep every day's members (for scoring an ensemble rollout).

    After a rollout, ``days``, ``drift`` (log10, per day, after any correction) and, with
    ``keep_members``, ``members`` (list of (members, ny, nx) arrays) hold what was seen.
    """

    def __init__(self, threshold: float | None = DEFAULT_DRIFT_THRESHOLD,
                 coarse_consistency: bool = DEFAULT_COARSE_CONSISTENCY,
                 keep_members: bool = False) -> None:
        self.threshold = threshold
        self.coarse_consistency = bool(coarse_consistency)
        self.keep_members = keep_members
        self.days: list[pd.Timestamp] = []
        self.drift: list[float] = []
        self.members: list[np.ndarray] = []
        self.warned = False
        self.reference = 0.0
        self.offset: np.ndarray | float = 0.0  # the seed window's
        self._season_offsets: dict = {}  # the fitted per-season offsets, when the model has them
        self._eps = 1e-6
        self._geom: CellGeometry | None = None

    def start(self, est, coarse_log: xr.DataArray, seed_log: np.ndarray, first_day) -> None:
        """Measure the fine-vs-driver offsets on the seed window (the true days before the
        rollout; the drift reference, and the per-cell target of the step for a model without
        fitted offsets); without the driver on those days they are taken as zero."""
        self._eps = est.config_.eps
        need = pd.date_range(pd.Timestamp(first_day) - pd.Timedelta(days=len(seed_log)),
                             periods=len(seed_log), freq="D")
        have = need.intersection(pd.DatetimeIndex(coarse_log["time"].values))
        if self.coarse_consistency:
            grid = est.coarse_grid_
            self._geom = CellGeometry.from_grids(est.lat_, est.lon_, grid["lat"], grid["lon"])
            self._season_offsets = dict(getattr(est, "cell_offsets_", None) or {})
        if len(have) == 0:
            return
        drv = np.asarray(coarse_log.sel(time=have).values, np.float64)
        fine = np.asarray(seed_log, np.float64)[need.get_indexer(have)]
        self.reference = float(np.nanmean(_domain_log_bias(fine, drv)))
        if self._geom is not None:
            self.offset = cell_offsets(fine, drv, self._geom)

    def tie(self, day, vals: np.ndarray, drv_log: np.ndarray) -> np.ndarray:
        """``vals`` (members, 1, ny, nx) in data units, tied to the driver when the step is on
        (nothing recorded: what :meth:`__call__` and a rollout's carried mean share)."""
        if self._geom is None:
            return vals
        offset = self._season_offsets.get(str(season_of(pd.DatetimeIndex([day]))[0]),
                                          self.offset)
        return _tie_members(vals[:, 0], drv_log, self._geom, offset, self._eps)[:, None]

    def __call__(self, day, vals: np.ndarray, drv_log: np.ndarray) -> np.ndarray:
        """``vals`` (members, 1, ny, nx) in data units -> the same, corrected if asked."""
        vals = self.tie(day, vals, drv_log)
        mean_log = np.log10(np.maximum(vals.mean(axis=0)[0], self._eps))
        drift = float(_domain_log_bias(mean_log, drv_log)) - self.reference
        self.days.append(pd.Timestamp(day))
        self.drift.append(drift)
        if self.keep_members:
            self.members.append(np.array(vals[:, 0]))
        if (self.threshold is not None and not self.warned and np.isfinite(drift)
                and abs(drift) > self.threshold):
            self.warned = True
            hint = "" if self.coarse_consistency else "coarse_consistency=True, "
            warnings.warn(
                f"the rollout drifts from its coarse driver: on {pd.Timestamp(day).date()} "
                f"(day {len(self.days)}) its domain-mean log10 bias against the driver is "
                f"{drift:+.3f} beyond the seed window's, past the threshold {self.threshold}. "
                f"Errors are feeding back through the history; try {hint}shorter rollouts, "
                "or judge the result with evaluate_rollout().",
                XDownscaleWarning, stacklevel=4)
        return vals


# -- xarray wrappers ------------------------------------------------------------------------------
def _on_grid(coarse: xr.DataArray, like: xr.DataArray, method: str,
             clamp: bool = False) -> xr.DataArray:
    from ..data.regrid import regrid_like

    same = all(coarse.sizes.get(d) == like.sizes[d] and np.allclose(coarse[d], like[d])
               for d in ("lat", "lon"))
    if same:
        return coarse.assign_coords(lat=like["lat"], lon=like["lon"])
    return regrid_like(coarse, like.isel(time=0, drop=True), method=method, clamp=clamp)


def _fields(prediction, coarse, var, method, clamp=False):
    p = field(prediction, var)
    c = field(coarse, var).sel(time=p["time"])  # regrid only the days needed
    return p, _on_grid(c, p, method, clamp)


def drift_series(prediction: xr.Dataset | xr.DataArray, coarse: xr.Dataset | xr.DataArray, *,
                 reference: xr.Dataset | xr.DataArray | None = None, var: Hashable | None = None,
                 eps: float = 1e-6, method: str = "cubic", clamp: bool = False) -> xr.DataArray:
    """Per-day domain-mean log10 bias of a prediction against its coarse driver.

    Parameters
    ----------
    prediction : xarray.Dataset or xarray.DataArray
        Daily fields on the fine grid (e.g. a rollout), data units.
    coarse : xarray.Dataset or xarray.DataArray
        The coarse record covering the prediction's days, on its own grid (regridded with
        ``method``) or already on the fine grid.
    reference : xarray.Dataset or xarray.DataArray, optional
        True fine days (e.g. the end of the fine record); their mean bias against the same
        driver is subtracted, so a perfect rollout scores about 0.
    var : hashable, optional
        Variable name; default ``"DUEXTTAU"``.
    eps : float
        Floor before ``log10``.
    method : str
        Regridding method for ``coarse``.
    clamp : bool
        Clamp the regridded driver (:func:`~xdownscale.data.regrid.regrid_like`); an
        estimator's driver is clamped when its ``config_.regrid_clamp`` is.

    Returns
    -------
    xarray.DataArray
        ``drift(time)`` in log10 units; lazy on dask input.
    """
    p, c = _fields(prediction, coarse, var, method, clamp)

    def bias(a, b):
        return xr.apply_ufunc(_domain_log_bias, log10_transform(a, eps), log10_transform(b, eps),
                              input_core_dims=[["lat", "lon"]] * 2, dask="parallelized",
                              output_dtypes=[np.float64])

    out = bias(p, c)
    if reference is not None:
        r, rc = _fields(reference, coarse, var, method, clamp)
        out = out - bias(r, rc).mean("time")
    return out.rename("drift").assign_attrs(units="log10", long_name="domain-mean log10 bias "
                                            "against the coarse driver")


def coarse_consistent(prediction: xr.Dataset | xr.DataArray, coarse: xr.Dataset | xr.DataArray,
                      *, reference: xr.Dataset | xr.DataArray | None = None,
                      var: Hashable | None = None, eps: float = 1e-6,
                      method: str = "cubic", clamp: bool = False) -> xr.DataArray:
    """The coarse-consistency step applied to every day of a prediction (after the fact).

    Each day's log10 field is shifted so that its mean over each coarse cell minus the
    driver's mean there equals the same difference averaged over ``reference`` (true fine
    days), or 0 without one. ``coarse`` must be on its native grid: its cells are the unit.
    ``method`` and ``clamp`` regrid the driver; to reproduce an estimator's step, pass its
    ``config_.regrid_method`` and ``config_.regrid_clamp``.

    Returns
    -------
    xarray.DataArray
        The corrected prediction in data units, same grid and days; lazy on dask input.
    """
    p = field(prediction, var)
    c_native = field(coarse, var)
    geom = CellGeometry.from_grids(p["lat"], p["lon"], c_native["lat"], c_native["lon"])
    c = _on_grid(c_native.sel(time=p["time"]), p, method, clamp)
    offset: np.ndarray | float = 0.0
    if reference is not None:
        r = field(reference, var)
        rc = _on_grid(c_native.sel(time=r["time"]), p, method, clamp)
        offset = cell_offsets(np.asarray(log10_transform(r, eps).values, np.float64),
                              np.asarray(log10_transform(rc, eps).values, np.float64), geom)
    out = xr.apply_ufunc(
        _coarse_consistent, log10_transform(p, eps), log10_transform(c, eps),
        input_core_dims=[["lat", "lon"]] * 2, output_core_dims=[["lat", "lon"]],
        kwargs={"geom": geom, "offset": offset}, vectorize=True, dask="parallelized",
        output_dtypes=[np.float64])
    return inverse_log10(out).astype(p.dtype).transpose(*p.dims).assign_attrs(p.attrs)
