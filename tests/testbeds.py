"""A family of coarse/fine test-beds that :mod:`xdownscale.datasets.synthetic` does not make.

A model is judged on data it was not tuned to. Each :class:`TestBed` turns one knob the shipped
synthetic pair keeps fixed: the record length, the window, the coarse operator (area mean or
point sample, multiplicative and additive bias, noise) and the dynamics (advection speed and
direction, terrain coupling, plume persistence, heavy tails). The truth is a log10 field on
the G5NR grid over real terrain (the package's shipped GLOBE extract); the coarse record on the
MERRA-2 grid is made from it by the bed's operator, over a longer period than the fine record.

This is a test tool (``tests/`` and ``benchmarks/bench_skill.py`` use it), not user data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import xarray as xr

from xdownscale.data.regions import Region
from xdownscale.datasets._elevation import elevation_on
from xdownscale.datasets._grids import COARSE_DLAT, COARSE_DLON, FINE_D, make_grids

__all__ = ["TestBed", "BEDS", "make_pair"]

_ATTRS = {"units": "1", "long_name": "Dust Extinction AOT [550 nm]"}


@dataclass(frozen=True)
class TestBed:
    """The knobs of one coarse/fine pair (sizes in fine pixels, speeds in fine pixels/day)."""

    name: str
    fine_days: int = 200  # length of the fine record, starting on fine_start
    fine_start: str = "2006-04-10"
    coarse_start: str = "2004-01-01"  # the coarse record runs from here to the fine record's end
    shape: tuple[int, int] = (48, 64)  # fine window (lat, lon)
    origin: tuple[float, float] = (32.0, 44.0)  # south-west fine pixel centre (A1: Tigris/Zagros)
    operator: str = "mean"  # "mean": area mean over each coarse cell; "point": the centre value
    mult_bias: float = 1.0  # coarse = mult_bias * operator(fine) + add_bias, then noise
    add_bias: float = 0.0
    noise: float = 0.05  # log-normal multiplicative noise of the coarse cells (sd of ln)
    advection: tuple[float, float] = (0.6, 1.2)  # (rows, cols) per day
    persistence: float = 0.85  # AR(1) coefficient of the plume field along its advection
    plume_length: float = 6.0  # correlation length of new plumes (fine pixels)
    plume_amp: float = 0.25  # log10 amplitude of the plume field
    tails: float = 0.0  # extra log10 on the plumes' upper side (heavy right tail)
    terrain: float = 0.35  # log10 decrease per km of elevation above the window's mean
    seed: int = 0


BEDS: dict[str, TestBed] = {bed.name: bed for bed in (
    TestBed("base"),
    TestBed("biased-noisy", mult_bias=1.5, add_bias=0.01, noise=0.2),
    TestBed("point-sample", operator="point", noise=0.1),
    TestBed("fast-wind", advection=(-3.0, 4.0), persistence=0.6, plume_length=4.0),
    TestBed("heavy-tails", tails=0.05, plume_amp=0.3, terrain=0.2),
    TestBed("short-record", fine_days=120, fine_start="2006-04-20", shape=(40, 40),
            origin=(30.0, 61.0)),  # A0: Sistan basin against the Afghan highlands
    TestBed("long-small", fine_days=730, fine_start="2005-03-01", shape=(32, 32),
            terrain=0.5, advection=(1.5, -0.5)),
)}


def _grf_spectrum(shape: tuple[int, int], length: float) -> np.ndarray:
    """Amplitude filter of a unit-variance Gaussian random field with a Gaussian covariance."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    amp = np.exp(-((2 * np.pi * length) ** 2) * (kx**2 + ky**2) / 4)
    # normalise so the filtered white noise has unit variance
    return amp / np.sqrt((amp**2).mean())


def _plumes(bed: TestBed, n_days: int, shape: tuple[int, int], rng) -> np.ndarray:
    """Advected AR(1) plume field (n_days, *shape), unit variance, on a padded periodic domain
    so that nothing wraps into the cropped window."""
    pad = int(np.ceil(4 * bed.plume_length + 8 * max(abs(a) for a in bed.advection)))
    big = tuple(int(2 ** np.ceil(np.log2(n + 2 * pad))) for n in shape)
    filt = _grf_spectrum(big, bed.plume_length)
    ky = np.fft.fftfreq(big[0])[:, None]
    kx = np.fft.fftfreq(big[1])[None, :]
    shift = np.exp(-2j * np.pi * (ky * bed.advection[0] + kx * bed.advection[1]))
    rho = bed.persistence
    out = np.empty((n_days, *shape), np.float32)
    state = np.fft.fft2(rng.standard_normal(big)) * filt
    for t in range(n_days):
        new = np.fft.fft2(rng.standard_normal(big)) * filt
        state = rho * shift * state + np.sqrt(1 - rho**2) * new
        out[t] = np.fft.ifft2(state).real[pad:pad + shape[0], pad:pad + shape[1]]
    return out


def _coarse_operator(bed: TestBed, truth: np.ndarray, grids, rng) -> np.ndarray:
    """The coarse record from the truth (data units) on the coarse grid."""
    ry = int(round(COARSE_DLAT / FINE_D))
    rx = int(round(COARSE_DLON / FINE_D))
    ny, nx = grids.coarse_lat.size, grids.coarse_lon.size
    out = np.empty((truth.shape[0], ny, nx), np.float32)
    for i, clat in enumerate(grids.coarse_lat):
        r = int(round((clat - grids.truth_lat[0]) / FINE_D))
        for j, clon in enumerate(grids.coarse_lon):
            c = int(round((clon - grids.truth_lon[0]) / FINE_D))
            if bed.operator == "point":
                out[:, i, j] = truth[:, r, c]
            else:
                rows = slice(max(r - ry // 2, 0), r + ry // 2 + 1)
                cols = slice(max(c - rx // 2, 0), c + rx // 2 + 1)
                out[:, i, j] = truth[:, rows, cols].mean(axis=(1, 2))
    out = bed.mult_bias * out + bed.add_bias
    out *= np.exp(bed.noise * rng.standard_normal(out.shape)).astype(np.float32)
    return np.maximum(out, 0.0)


def make_pair(bed: TestBed | str, seed: int | None = None):
    """``(coarse, fine, elevation)`` of one test-bed, in the layout ``fit`` takes.

    ``seed`` overrides the bed's (a different draw of the same dynamics).
    """
    bed = BEDS[bed] if isinstance(bed, str) else bed
    if seed is not None:
        bed = replace(bed, seed=seed)
    rng = np.random.default_rng([bed.seed, 2024])
    ny, nx = bed.shape
    lat0, lon0 = bed.origin
    half = FINE_D / 2
    window = Region(bed.name, lat0 - half, lat0 + (ny - 1) * FINE_D + half,
                    lon0 - half, lon0 + (nx - 1) * FINE_D + half)
    area = "A0" if lon0 > 55 else "A1"  # whose shipped terrain covers the window
    grids = make_grids(area, window)
    elev_truth = elevation_on(area, grids.truth_lat, grids.truth_lon).astype(np.float64)

    fine_start = pd.Timestamp(bed.fine_start)
    times = pd.date_range(bed.coarse_start, fine_start + pd.Timedelta(days=bed.fine_days - 1))
    n = len(times)
    shape = (grids.truth_lat.size, grids.truth_lon.size)
    doy = times.day_of_year.to_numpy()
    # regional mean: seasonal cycle + AR(1) weather
    anomaly = np.zeros(n)
    e = rng.standard_normal(n)
    for t in range(1, n):
        anomaly[t] = 0.8 * anomaly[t - 1] + 0.6 * 0.15 * e[t]
    mean = -0.9 + 0.25 * np.sin(2 * np.pi * (doy - 100) / 365.25) + anomaly
    elev_km = (elev_truth - elev_truth[grids.fine_rows, grids.fine_cols].mean()) / 1000.0
    # terrain coupling, a little stronger in the dusty season
    slope = bed.terrain * (1 + 0.3 * np.sin(2 * np.pi * (doy - 100) / 365.25))
    plumes = _plumes(bed, n, shape, rng)
    plume_log = bed.plume_amp * plumes + bed.tails * np.maximum(plumes, 0.0) ** 2
    log_truth = (mean[:, None, None] - slope[:, None, None] * elev_km[None]
                 + plume_log + 0.03 * rng.standard_normal((n, *shape)))
    truth = (10.0 ** log_truth).astype(np.float32)

    coarse_vals = _coarse_operator(bed, truth, grids, rng)
    fine_idx = np.flatnonzero(times >= fine_start)
    fine_vals = truth[fine_idx][:, grids.fine_rows, grids.fine_cols]
    coarse = xr.Dataset(
        {"DUEXTTAU": (("time", "lat", "lon"), coarse_vals, _ATTRS)},
        coords={"time": times, "lat": grids.coarse_lat, "lon": grids.coarse_lon},
        attrs={"title": f"test-bed {bed.name} (coarse)"})
    fine = xr.Dataset(
        {"DUEXTTAU": (("time", "lat", "lon"), fine_vals, _ATTRS)},
        coords={"time": times[fine_idx], "lat": grids.fine_lat, "lon": grids.fine_lon},
        attrs={"title": f"test-bed {bed.name} (fine)"})
    elev = xr.DataArray(elev_truth[grids.fine_rows, grids.fine_cols].astype(np.float32),
                        dims=("lat", "lon"),
                        coords={"lat": grids.fine_lat, "lon": grids.fine_lon},
                        name="elevation", attrs={"units": "m"})
    return coarse, fine, elev
