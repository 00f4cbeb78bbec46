"""NumPy/SciPy kernels of :mod:`xdownscale.data.regrid`: per-axis weights, applied separably.

Every method is separable on a latitude/longitude grid, so a 2-D regridding is
``out = Wy @ field @ Wx.T`` with one sparse ``(n_dst, n_src)`` matrix per axis. The matrices are
built once from the coordinates and applied to every day in one sparse-dense product, which is
what makes a year of days cost about as much as a handful of per-day library calls.

Conventions of this module: source and destination coordinates are 1-D, strictly ascending
float64 arrays (the wrapper sorts them); a destination row without entries means "no support"
and comes out NaN.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "INTERP_METHODS",
    "AGG_METHODS",
    "cell_edges",
    "_interp_matrix",
    "_bin_mean_matrices",
    "_overlap_matrix",
    "_apply_separable",
    "_bracket",
]

INTERP_METHODS = ("cubic", "linear", "nearest", "spline")
AGG_METHODS = ("mean", "conservative")


def cell_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges (n + 1,) of ascending centres: midpoints inside, half a spacing outside."""
    c = np.asarray(centres, dtype=np.float64)
    if c.size < 2:
        raise ValueError("need at least two centres to infer cell edges")
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _three_point_derivative(x: np.ndarray) -> sp.csr_matrix:
    """Sparse ``D`` (n, n) with ``D @ f`` the derivative at each node of the parabola through
    that node and its two neighbours (one-sided parabola at the two ends).

    On a uniform grid this is the central difference of Keys' cubic convolution and, at the
    ends, the derivative implied by Keys' boundary extension ``f[-1] = 3 f0 - 3 f1 + f2``.
    """
    n = x.size
    if n == 2:  # only a secant is available: the cubic degenerates to linear interpolation
        s = 1.0 / (x[1] - x[0])
        return sp.csr_matrix(np.array([[-s, s], [-s, s]]))
    rows, cols, vals = [], [], []
    h = np.diff(x)
    hl, hr = h[:-1], h[1:]  # spacings left and right of interior nodes 1..n-2
    i = np.arange(1, n - 1)
    for off, w in ((-1, -hr / (hl * (hl + hr))), (0, (hr - hl) / (hl * hr)),
                   (1, hl / (hr * (hl + hr)))):
        rows.append(i)
        cols.append(i + off)
        vals.append(w)
    h1, h2 = h[0], h[1]
    rows.append(np.zeros(3, int))
    cols.append(np.arange(3))
    vals.append(np.array([-(2 * h1 + h2) / (h1 * (h1 + h2)), (h1 + h2) / (h1 * h2),
                          -h1 / (h2 * (h1 + h2))]))
    h1, h2 = h[-2], h[-1]
    rows.append(np.full(3, n - 1))
    cols.append(np.arange(n - 3, n))
    vals.append(np.array([h2 / (h1 * (h1 + h2)), -(h1 + h2) / (h1 * h2),
                          (2 * h2 + h1) / (h2 * (h1 + h2))]))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, n))


def _interp_matrix(src: np.ndarray, dst: np.ndarray, method: str = "cubic") -> sp.csr_matrix:
    """Interpolation weights of one axis, ``(n_dst, n_src)``.

    Parameters
    ----------
    src : numpy.ndarray
        Strictly ascending source centres, at least two (one for ``"nearest"``).
    dst : numpy.ndarray
        Destination centres, any order.
    method : {"cubic", "linear", "nearest", "spline"}
        ``"cubic"`` is Keys' cubic convolution (a = -0.5) written as a cubic Hermite
        interpolant whose node slopes come from the parabola through three neighbouring nodes.
        On a uniform grid that is exactly Keys' kernel (4 taps, Keys' boundary extension at the
        ends); on a non-uniform grid (MERRA-2: 0.5 by 0.625 degrees, or irregular spacing) the
        slopes use the true local spacings, so it still has 4-tap local support and still
        reproduces quadratics exactly, where rescaling Keys' kernel per interval would not.
        ``"spline"`` is a not-a-knot cubic spline (global support). Points outside
        ``[src[0], src[-1]]`` (outside the outer cell edges for ``"nearest"``) get an empty row.

    Returns
    -------
    scipy.sparse.csr_matrix
        Rows sum to one wherever the destination point is supported.

    Raises
    ------
    ValueError
        Unknown method, or too few source points.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n, m = src.size, dst.size
    if method not in INTERP_METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; expected one of {INTERP_METHODS}")
    if n < (1 if method == "nearest" else 2):
        raise ValueError(f"method {method!r} needs at least 2 source points along an axis, got {n}")
    rows_all = np.arange(m)
    tol = 1e-6 * (np.min(np.diff(src)) if n > 1 else 1.0)

    if method == "nearest":
        lo, hi = (cell_edges(src)[[0, -1]] if n > 1 else (src[0] - tol, src[0] + tol))
        inside = (dst >= lo - tol) & (dst <= hi + tol)
        # Nearest centre; a target exactly halfway goes to the lower neighbour.
        right = np.clip(np.searchsorted(src, dst, side="left"), 0, n - 1)
        left = np.clip(right - 1, 0, n - 1)
        take = np.where(np.abs(dst - src[left]) <= np.abs(src[right] - dst), left, right)
        return sp.csr_matrix((np.ones(inside.sum()), (rows_all[inside], take[inside])),
                             shape=(m, n))

    inside = (dst >= src[0] - tol) & (dst <= src[-1] + tol)
    if method == "spline":
        from scipy.interpolate import make_interp_spline

        # Applying the spline operator to the identity gives its (dense) weight matrix.
        k = 3 if n >= 4 else n - 1
        dense = make_interp_spline(src, np.eye(n), k=k)(np.clip(dst, src[0], src[-1]))
        dense[~inside] = 0.0
        out = sp.csr_matrix(dense)
        out.eliminate_zeros()
        return out

    x = np.clip(dst, src[0], src[-1])
    i = np.clip(np.searchsorted(src, x, side="right") - 1, 0, n - 2)  # interval [i, i+1]
    h = src[i + 1] - src[i]
    t = (x - src[i]) / h
    r, c = rows_all[inside], i[inside]
    if method == "linear":
        tt = t[inside]
        w = sp.csr_matrix((np.concatenate([1 - tt, tt]), (np.concatenate([r, r]),
                           np.concatenate([c, c + 1]))), shape=(m, n))
    else:  # cubic Hermite: values at i, i+1 plus slopes from the 3-point derivative operator
        t = t[inside]
        hh = h[inside]
        h00, h01 = 2 * t**3 - 3 * t**2 + 1, -2 * t**3 + 3 * t**2
        h10, h11 = (t**3 - 2 * t**2 + t) * hh, (t**3 - t**2) * hh
        rr, cc = np.concatenate([r, r]), np.concatenate([c, c + 1])
        values = sp.csr_matrix((np.concatenate([h00, h01]), (rr, cc)), shape=(m, n))
        slopes = sp.csr_matrix((np.concatenate([h10, h11]), (rr, cc)), shape=(m, n))
        w = (values + slopes @ _three_point_derivative(src)).tocsr()
    # Exact hits on a node have zero weight on the other taps; dropping them keeps a NaN
    # neighbour from spoiling a value that does not depend on it.
    w.data[np.abs(w.data) < 1e-14] = 0.0
    w.eliminate_zeros()
    return w


def _bin_mean_matrices(src: np.ndarray, dst_centres: np.ndarray,
                       dst_width: float | None = None) -> sp.csr_matrix:
    """Bin-mean weights of one axis, ``(n_dst, n_src)``: each destination row averages the
    source samples whose centres fall in ``[edge_k, edge_k+1)``.

    Parameters
    ----------
    src : numpy.ndarray
        Ascending source centres.
    dst_centres : numpy.ndarray
        Ascending destination centres.
    dst_width : float, optional
        Destination pixel width; by default the edges are the midpoints between centres (half
        a spacing beyond the outer ones).

    Returns
    -------
    scipy.sparse.csr_matrix
        Rows sum to one; a row is empty when no source centre lies in that pixel.
    """
    dst = np.asarray(dst_centres, dtype=np.float64)
    if dst_width is None:
        edges = cell_edges(dst)
    else:
        edges = np.concatenate([dst - dst_width / 2, [dst[-1] + dst_width / 2]])
    src = np.asarray(src, dtype=np.float64)
    # Half-open bins: a sample on a shared edge counts once, in the upper pixel.
    k = np.searchsorted(edges, src, side="right") - 1
    ok = (k >= 0) & (k < dst.size)
    w = sp.csr_matrix((np.ones(ok.sum()), (k[ok], np.flatnonzero(ok))), shape=(dst.size, src.size))
    counts = np.asarray(w.sum(axis=1)).ravel()
    return (sp.diags(np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)) @ w).tocsr()


def _overlap_matrix(src_edges: np.ndarray, dst_edges: np.ndarray, *,
                    latitude: bool = False) -> sp.csr_matrix:
    """Overlap-weighted mean weights of one axis, ``(n_dst, n_src)``.

    Row k holds the measure of ``[dst_k, dst_k+1] & [src_j, src_j+1]`` for every source cell j,
    normalised to sum to one. Along latitude the measure is ``sin(upper) - sin(lower)`` (the
    integral of cos(lat)), which makes the product of the two axes the exact area of the
    overlap of two latitude-longitude cells on the sphere.
    """
    se = np.asarray(src_edges, dtype=np.float64)
    de = np.asarray(dst_edges, dtype=np.float64)
    # Candidate source cells of each destination cell, then their overlaps (vectorised).
    j0 = np.clip(np.searchsorted(se, de[:-1], side="right") - 1, 0, se.size - 2)
    j1 = np.clip(np.searchsorted(se, de[1:], side="left"), 1, se.size - 1)
    span = j1 - j0
    rows = np.repeat(np.arange(de.size - 1), span)
    cols = np.concatenate([np.arange(a, b) for a, b in zip(j0, j1, strict=True)]) if rows.size \
        else np.zeros(0, int)
    lo = np.maximum(de[:-1][rows], se[cols])
    hi = np.minimum(de[1:][rows], se[cols + 1])
    if latitude:
        meas = np.sin(np.deg2rad(hi)) - np.sin(np.deg2rad(lo))
    else:
        meas = hi - lo
    keep = meas > 0
    w = sp.csr_matrix((meas[keep], (rows[keep], cols[keep])), shape=(de.size - 1, se.size - 1))
    total = np.asarray(w.sum(axis=1)).ravel()
    return (sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)) @ w).tocsr()


def _bracket(w_linear: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """The two source indices that bracket each destination point of one axis, read off the
    linear weights of that axis (one index twice on an exact node hit; ``0, 0`` where the row
    is empty, which the clamp leaves NaN anyway)."""
    nnz = np.diff(w_linear.indptr)
    if w_linear.nnz == 0:
        zero = np.zeros(w_linear.shape[0], np.intp)
        return zero, zero
    first = w_linear.indices[np.minimum(w_linear.indptr[:-1], w_linear.nnz - 1)]
    last = w_linear.indices[np.maximum(w_linear.indptr[1:] - 1, 0)]
    return np.where(nnz > 0, first, 0), np.where(nnz > 0, last, 0)


def _clamp_to_bracket(out: np.ndarray, arr: np.ndarray, by, bx) -> np.ndarray:
    """``out`` (lead, ny_out, nx_out) clipped to the range of the 2 x 2 source values around
    each destination point (``by``/``bx``: :func:`_bracket` of each axis).

    A cubic interpolant overshoots next to a sharp peak: between a plume and a clean
    background it can dip below zero, which a later logarithm turns into a hole at its floor.
    Clipping to the bracketing values (the usual limiter of clamped bicubic resampling) keeps
    the result between its neighbours, hence non-negative for non-negative data, and leaves
    every point that did not overshoot unchanged. NaN outputs stay NaN.
    """
    (y0, y1), (x0, x1) = by, bx
    lo_y = np.fmin(arr[:, y0, :], arr[:, y1, :])
    hi_y = np.fmax(arr[:, y0, :], arr[:, y1, :])
    lo = np.fmin(lo_y[:, :, x0], lo_y[:, :, x1])
    hi = np.fmax(hi_y[:, :, x0], hi_y[:, :, x1])
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(out), out, np.minimum(np.maximum(out, lo), hi)).astype(out.dtype)


def _matmul_axis(arr: np.ndarray, w: sp.csr_matrix, axis: int) -> np.ndarray:
    """``w`` applied along ``axis`` (-2 or -1) of a 3-D array ``(lead, ny, nx)``."""
    if axis == -1:
        lead, ny, nx = arr.shape
        return np.asarray(arr.reshape(lead * ny, nx) @ w.T).reshape(lead, ny, w.shape[0])
    lead, ny, nx = arr.shape
    moved = np.moveaxis(arr, 1, 0).reshape(ny, lead * nx)
    return np.moveaxis(np.asarray(w @ moved).reshape(w.shape[0], lead, nx), 0, 1)


def _separable(arr: np.ndarray, wy: sp.csr_matrix, wx: sp.csr_matrix) -> np.ndarray:
    # Apply the cheaper order first (cost ~ nnz x length of the other axis).
    lead, ny, nx = arr.shape
    cost_y_first = wy.nnz * nx + wx.nnz * wy.shape[0]
    cost_x_first = wx.nnz * ny + wy.nnz * wx.shape[0]
    if cost_y_first <= cost_x_first:
        return _matmul_axis(_matmul_axis(arr, wy, -2), wx, -1)
    return _matmul_axis(_matmul_axis(arr, wx, -1), wy, -2)


def _apply_separable(arr: np.ndarray, wy: sp.csr_matrix, wx: sp.csr_matrix, *,
                     nan: str = "propagate", dtype=None, bracket=None) -> np.ndarray:
    """``Wy @ arr @ Wx.T`` over the last two axes of ``arr`` for all leading indices at once.

    Parameters
    ----------
    arr : numpy.ndarray
        ``(..., ny, nx)``.
    wy, wx : scipy.sparse.csr_matrix
        ``(ny_out, ny)`` and ``(nx_out, nx)`` weights.
    nan : {"propagate", "skip"}
        ``"propagate"`` (interpolation): an output is NaN when any source value with a non-zero
        weight is NaN, so a NaN spoils only its stencil. ``"skip"`` (mean, conservative): the
        weighted mean of the valid sources, NaN where none is valid.
    dtype : numpy dtype, optional
        Output and compute dtype; default: floating version of ``arr.dtype``.
    bracket : tuple, optional
        ``(by, bx)``, the :func:`_bracket` index pairs of each axis: clip the result to the
        range of the bracketing source values (:func:`_clamp_to_bracket`).

    Returns
    -------
    numpy.ndarray
        ``(..., ny_out, nx_out)``; rows without weights in ``wy`` or ``wx`` are NaN.
    """
    dtype = np.dtype(dtype or np.result_type(arr.dtype, np.float32))
    lead_shape = arr.shape[:-2]
    a = np.asarray(arr, dtype=dtype).reshape(-1, *arr.shape[-2:])
    wy_, wx_ = wy.astype(dtype), wx.astype(dtype)
    missing = np.isnan(a) if a.dtype.kind == "f" else None
    if missing is not None and missing.any():
        filled = np.where(missing, 0, a)
        if nan == "skip":
            valid = _separable((~missing).astype(dtype), wy_, wx_)
            num = _separable(filled, wy_, wx_)
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.where(valid > 0, num / valid, np.nan).astype(dtype)
        else:
            out = _separable(filled, wy_, wx_)
            wy_abs, wx_abs = abs(wy_), abs(wx_)
            out[_separable(missing.astype(dtype), wy_abs, wx_abs) > 0] = np.nan
    else:
        out = _separable(a, wy_, wx_)
    empty_y = np.diff(wy.indptr) == 0
    empty_x = np.diff(wx.indptr) == 0
    out[:, empty_y, :] = np.nan
    out[:, :, empty_x] = np.nan
    if bracket is not None:
        out = _clamp_to_bracket(out, a, *bracket)
    return out.reshape(*lead_shape, *out.shape[-2:])
