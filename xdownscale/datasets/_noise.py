"""Addressable random fields for the synthetic data, keyed by (seed, stream, day, lattice index).

The synthetic generator must give the same number for a given place and day whatever window,
time range or dask chunking is asked for. NumPy's generators produce sequences, not values
addressable by position, so the white innovations here come from a counter-based hash
(SplitMix64's finaliser, Steele et al. 2014) of the day and of a *global* lattice index: a
window or time chunk draws exactly its own values and nothing else. Spatial correlation comes
from a Gaussian kernel over lattice knots (separable, so one small matrix per axis), temporal
persistence from a finite moving-average filter (the truncated impulse response of an AR(2)
process), so day ``d`` depends on the innovations of days ``d - K + 1 .. d`` only.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import scipy.special

from ..errors import TimeAxisError

__all__ = ["seed_key", "lattice_uniforms", "lattice_normals", "knot_matrix", "ar2_taps",
           "ma_filter", "smooth_field"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C_I = np.uint64(0xD6E8FEB86659FD93)
_C_J = np.uint64(0xA0761D6478BD642F)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic, as the algorithm needs)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def seed_key(seed: int, stream: int) -> np.uint64:
    """A 64-bit key for one random stream of one seed (via NumPy's SeedSequence)."""
    state = np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, np.uint64)
    return np.uint64(state[0])


def lattice_uniforms(key: np.uint64, days: np.ndarray, ii: np.ndarray,
                     jj: np.ndarray) -> np.ndarray:
    """Independent uniforms on (0, 1) addressed by (day, lattice row, lattice column).

    Parameters
    ----------
    key : numpy.uint64
        Stream key from :func:`seed_key`.
    days : numpy.ndarray of int
        Day numbers (any integers, negative allowed).
    ii, jj : numpy.ndarray of int
        Global lattice row and column indices (or any other integer labels).

    Returns
    -------
    numpy.ndarray
        ``(len(days), len(ii), len(jj))`` float64.
    """
    with np.errstate(over="ignore"):
        d = np.asarray(days, dtype=np.int64).astype(np.uint64)
        i = np.asarray(ii, dtype=np.int64).astype(np.uint64)
        j = np.asarray(jj, dtype=np.int64).astype(np.uint64)
        hd = _mix(key + d * _GOLDEN)
        hij = _mix(i[:, None] * _C_I + j[None, :] * _C_J + _GOLDEN)
        z = _mix(hd[:, None, None] ^ hij[None])
    # 53 random bits, centred in their bin so the uniform is never exactly 0 or 1.
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def lattice_normals(key: np.uint64, days: np.ndarray, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """Standard normals addressed like :func:`lattice_uniforms` (inverse normal CDF of them)."""
    return scipy.special.ndtri(lattice_uniforms(key, days, ii, jj))


def knot_matrix(coords: np.ndarray, spacing: float, sigma: float,
                truncate: float = 3.5) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-kernel weights from lattice knots to points along one axis.

    Knots sit at integer multiples of ``spacing`` (a global lattice, so the same knot has the
    same index in every window). Each row is scaled to unit sum of squares, so unit-variance
    white knots give a unit-variance field; with ``sigma >= spacing`` the field is close to
    stationary (no visible lattice).

    Returns
    -------
    weights : numpy.ndarray
        ``(len(coords), n_knots)`` float64.
    index : numpy.ndarray
        The global lattice index of each knot column.
    """
    coords = np.asarray(coords, dtype=np.float64)
    lo = int(np.floor((coords.min() - truncate * sigma) / spacing))
    hi = int(np.ceil((coords.max() + truncate * sigma) / spacing))
    index = np.arange(lo, hi + 1)
    dist = coords[:, None] - index[None, :] * spacing
    w = np.exp(-0.5 * (dist / sigma) ** 2)
    w[np.abs(dist) > truncate * sigma] = 0.0
    w /= np.sqrt((w**2).sum(axis=1, keepdims=True))
    return w, index


def ar2_taps(phi1: float, phi2: float, n_taps: int) -> np.ndarray:
    """The first ``n_taps`` weights of the AR(2) impulse response, scaled to unit energy.

    A moving average over these taps has (up to truncation) the autocorrelation of the AR(2)
    process ``x_t = phi1 x_{t-1} + phi2 x_{t-2} + e_t`` and unit variance, while every output
    depends on a finite window of innovations.
    """
    impulse = np.zeros(n_taps)
    impulse[0] = 1.0
    taps = scipy.signal.lfilter([1.0], [1.0, -phi1, -phi2], impulse)
    return taps / np.sqrt(np.sum(taps**2))


def ma_filter(innovations: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Moving average over axis 0: output ``t`` is ``sum_j taps[j] * innovations[t + K - 1 - j]``.

    ``innovations`` must start ``K - 1`` days before the first output day; the output has
    ``len(innovations) - K + 1`` days. Each output is summed over ``j`` in the same order
    whatever the block, so time chunks reproduce the one-block result bit for bit (a plain
    shifted sum: ``scipy.signal.lfilter`` along a non-contiguous axis loops per column and is
    ten times slower here).
    """
    k = taps.size
    n = innovations.shape[0] - k + 1
    out = taps[0] * innovations[k - 1:]
    for j in range(1, k):
        out += taps[j] * innovations[k - 1 - j:k - 1 - j + n]
    return out


def smooth_field(key: np.uint64, days: np.ndarray, lat: np.ndarray, lon: np.ndarray, *,
                 spacing: float, sigma: float, taps: np.ndarray | None = None,
                 dtype=np.float32) -> np.ndarray:
    """A unit-variance Gaussian random field on a (lat, lon) grid for each day.

    Parameters
    ----------
    key : numpy.uint64
        Stream key.
    days : numpy.ndarray of int
        Output day numbers (consecutive when ``taps`` is given).
    lat, lon : numpy.ndarray
        Grid centres in degrees.
    spacing, sigma : float
        Knot spacing and kernel width in degrees; the correlation length is about
        ``sigma * sqrt(2)``.
    taps : numpy.ndarray, optional
        Temporal moving-average weights (unit energy); None gives independent days.
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    numpy.ndarray
        ``(len(days), len(lat), len(lon))``.
    """
    days = np.asarray(days, dtype=np.int64)
    wy, iy = knot_matrix(lat, spacing, sigma)
    wx, ix = knot_matrix(lon, spacing, sigma)
    if taps is None:
        knots = lattice_normals(key, days, iy, ix).astype(dtype)
    else:
        k = taps.size
        all_days = np.arange(days[0] - k + 1, days[-1] + 1)
        if all_days.size != days.size + k - 1:
            raise TimeAxisError("days must be consecutive when a temporal filter is used")
        knots = ma_filter(lattice_normals(key, all_days, iy, ix).astype(dtype),
                          taps.astype(dtype))
    # Stacked matmuls: one gemm per day with the same shapes, so a day's numbers do not depend
    # on how many days are computed together.
    return (wy.astype(dtype) @ knots) @ wx.T.astype(dtype)
