"""The coarse cells of a fine grid: per-cell means, offsets and the coarse-consistency shift.

A coarse field's value is (nearly) the mean of the fine field over its cell. These kernels
find the cell of every fine pixel, average a fine field over each cell, and shift a predicted
log10 field so that its mean over every cell minus the driver's equals a target offset; the
per-cell shifts are spread to the fine pixels by linear interpolation between cell centres,
so no cell edge is imprinted on the field. ``predict`` and rollouts apply the shift with the
training days' offsets (:mod:`xdownscale.predict.drift`). NumPy only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import GridMismatchError
from ._regrid_kernels import _interp_matrix, cell_edges

__all__ = ["CellGeometry", "cell_offsets", "tie_days"]


@dataclass(frozen=True)
class CellGeometry:
    """Which coarse cell each fine pixel lies in, and how to spread per-cell values back."""

    ylab: np.ndarray  # (ny,) coarse row of each fine row
    xlab: np.ndarray  # (nx,)
    wy: object  # sparse (ny, ncy): linear interpolation from cell centres
    wx: object  # sparse (nx, ncx)

    @classmethod
    def from_grids(cls, fine_lat, fine_lon, coarse_lat, coarse_lon) -> CellGeometry:
        fine_lat, fine_lon = np.asarray(fine_lat, float), np.asarray(fine_lon, float)
        coarse_lat, coarse_lon = np.asarray(coarse_lat, float), np.asarray(coarse_lon, float)
        labs = []
        for f, c, name in ((fine_lat, coarse_lat, "lat"), (fine_lon, coarse_lon, "lon")):
            if c.size < 2:
                raise GridMismatchError(f"the coarse grid needs at least 2 {name} values")
            lab = np.searchsorted(cell_edges(c), f, side="right") - 1
            if lab.min() < 0 or lab.max() >= c.size:
                raise GridMismatchError(
                    f"the fine grid reaches outside the coarse cells along {name!r}; the coarse "
                    "record must cover the fine grid")
            labs.append(lab)
        # np.interp-like clamping at the ends: fine pixels beyond the outer cell centres take
        # the outer cell's value.
        wy = _interp_matrix(coarse_lat, np.clip(fine_lat, coarse_lat[0], coarse_lat[-1]), "linear")
        wx = _interp_matrix(coarse_lon, np.clip(fine_lon, coarse_lon[0], coarse_lon[-1]), "linear")
        return cls(labs[0], labs[1], wy, wx)

    @property
    def coarse_shape(self) -> tuple[int, int]:
        return self.wy.shape[1], self.wx.shape[1]


def _cell_means(arr: np.ndarray, geom: CellGeometry) -> np.ndarray:
    """NaN-skipping mean of ``(ny, nx)`` over each coarse cell -> ``(ncy, ncx)`` (NaN if empty)."""
    ncy, ncx = geom.coarse_shape
    lab = geom.ylab[:, None] * ncx + geom.xlab[None, :]
    ok = np.isfinite(arr)
    total = np.bincount(lab[ok], weights=arr[ok], minlength=ncy * ncx)
    count = np.bincount(lab[ok], minlength=ncy * ncx)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).reshape(ncy, ncx)


def _spread(cell: np.ndarray, geom: CellGeometry) -> np.ndarray:
    """Per-cell values -> fine pixels, linear between cell centres (empty cells count as 0)."""
    cell = np.nan_to_num(cell, nan=0.0)
    return np.asarray(geom.wy @ (geom.wx @ cell.T).T)


def cell_offsets(fine_log: np.ndarray, drv_log: np.ndarray, geom: CellGeometry) -> np.ndarray:
    """Per coarse cell, the mean over days of the fine field's log10 mean minus the driver's
    (``(n, ny, nx)`` inputs -> ``(ncy, ncx)``; NaN for a cell no fine pixel falls in)."""
    fine_log, drv_log = np.asarray(fine_log, np.float64), np.asarray(drv_log, np.float64)
    both = np.isfinite(fine_log) & np.isfinite(drv_log)
    diffs = [_cell_means(np.where(ok, f, np.nan), geom) - _cell_means(np.where(ok, d, np.nan), geom)
             for f, d, ok in zip(fine_log, drv_log, both, strict=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell empty on every day -> NaN
        return np.nanmean(np.stack(diffs), axis=0)


def _coarse_consistent(pred_log: np.ndarray, drv_log: np.ndarray, geom: CellGeometry,
                       offset: np.ndarray | float = 0.0) -> np.ndarray:
    """Shift ``pred_log`` (ny, nx) so that, cell by cell, its mean minus the driver's mean is
    ``offset`` (per cell, or one number); the shifts are spread linearly between cell centres."""
    ok = np.isfinite(pred_log) & np.isfinite(drv_log)
    gap = (_cell_means(np.where(ok, pred_log, np.nan), geom)
           - _cell_means(np.where(ok, drv_log, np.nan), geom))
    return pred_log + _spread(np.asarray(offset) - gap, geom)


def _tie_members(vals: np.ndarray, drv_log: np.ndarray, geom: CellGeometry,
                 offset: np.ndarray | float, eps: float) -> np.ndarray:
    """``vals`` (members, ny, nx) in data units, multiplied pixel by pixel by the factor that
    makes their mean coarse consistent (:func:`_coarse_consistent` of its log10): every member
    moves alike, so the ensemble's relative spread is kept."""
    mean_log = np.log10(np.maximum(vals.mean(axis=0), eps))
    fixed = _coarse_consistent(mean_log, drv_log, geom, offset)
    return (vals * np.power(10.0, fixed - mean_log)[None]).astype(vals.dtype)


def tie_days(vals: np.ndarray, drv_log: np.ndarray, offsets, geom: CellGeometry,
             eps: float) -> np.ndarray:
    """The coarse-consistency step on a block of predicted days: ``vals`` (members, n, ny, nx)
    in data units, ``drv_log`` (n, ny, nx) the log10 driver on the fine grid, ``offsets`` one
    per-cell offset array (or number) per day."""
    out = np.empty_like(vals)
    for i, offset in enumerate(offsets):
        out[:, i] = _tie_members(vals[:, i], drv_log[i], geom, offset, eps)
    return out
