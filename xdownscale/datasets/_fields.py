"""The generative model of the synthetic pair (see ``docs/synthetic.rst``).

A fine "truth" in log10 AOD is built on an extended G5NR grid for any set of consecutive days:

    log10 AOD = level(season) + terrain
                + spread(season) * (hot spots + basins + large + small) + dust events

Every term of day ``d`` depends only on ``(seed, d, place)``: the random terms draw addressable
innovations (:mod:`._noise`, :mod:`._events`) and persistence is a finite moving average over
the previous ``K`` days, so any window and any time chunking give the same numbers. The coarse
(MERRA-2-like) field is the conservative area mean of the truth in data units, times a smooth
multiplicative bias (about 0.8) and persistent coarse-scale multiplicative noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.ndimage
import xarray as xr
from scipy.interpolate import CubicSpline

from ..data.regions import REGIONS
from ..data.regrid import regrid_like
from ._elevation import _read, elevation_at_points, elevation_on, fine_index
from ._events import MAX_LIFE, EventParams, add_events, births
from ._grids import Grids
from ._noise import ar2_taps, seed_key, smooth_field

EPOCH = pd.Timestamp("2000-01-01")
_YEAR = 365.2425
# Mid-season days of year (15 Jan, 15 Apr, 15 Jul, 15 Oct) where the seasonal values are pinned.
_SEASON_DOY = np.array([15.0, 105.0, 196.0, 288.0])
_STREAMS = {"large": 1, "small": 2, "static": 3, "bias": 4, "coarse": 5}
_EVENT_STREAM = 60  # plus the area number: events are drawn over the whole area
_N_TAPS = 21
LOG10_MIN, LOG10_MAX = -3.0, np.log10(5.0)


@dataclass(frozen=True)
class AreaParams:
    """Calibrated constants of one area (seasonal tuples are DJF, MAM, JJA, SON)."""

    level: tuple[float, float, float, float]       # log10 AOD at sea level, zero anomalies
    spread: tuple[float, float, float, float]      # multiplier of the spatial contrasts
    event_rate: tuple[float, float, float, float]  # events born per day per 100 square degrees
    terrain_per_km: float                          # log10 AOD change per km of elevation
    basin_per_km: float                            # per km of local relief (< 0 in basins)
    static_sd: float                               # fixed large-scale pattern (hot spots)
    large_sd: float                                # synoptic anomaly
    small_sd: float                                # mesoscale anomaly
    events: EventParams
    bias: float                                    # mean coarse / fine-mean ratio
    bias_pattern_sd: float                         # log10 sd of its smooth spatial pattern
    coarse_noise_sd: float                         # log10 sd of the coarse-scale noise


# Correlation scales (degrees) and AR(2) coefficients of the random terms.
LARGE = {"spacing": 1.0, "sigma": 1.5, "ar": (0.45, 0.35)}
SMALL = {"spacing": 0.25, "sigma": 0.3, "ar": (0.55, 0.2)}
STATIC = {"spacing": 2.0, "sigma": 2.5}
BIAS = {"spacing": 3.0, "sigma": 3.5}
COARSE = {"spacing": 0.5, "sigma": 0.6, "ar": (0.6, 0.2)}
RELIEF_SIGMA_PX = 8  # local relief = elevation minus its ~0.5-degree Gaussian mean

PARAMS: dict[str, AreaParams] = {
    "A1": AreaParams(
        level=(-0.81, -0.55, -0.35, -0.50), spread=(1.05, 1.05, 0.65, 0.95),
        event_rate=(0.4, 0.8, 0.6, 0.6), terrain_per_km=-0.45, basin_per_km=-0.5,
        static_sd=0.1, large_sd=0.17, small_sd=0.14,
        events=EventParams(heading_deg=135.0, heading_spread_deg=35.0, speed=(1.5, 4.5),
                           size=(0.5, 1.3), amplitude_mean=0.45, source_scale_m=900.0),
        bias=0.8, bias_pattern_sd=0.06, coarse_noise_sd=0.06),
    "A0": AreaParams(
        level=(-1.13, -0.66, -0.56, -0.77), spread=(1.3, 1.1, 1.05, 1.2),
        event_rate=(0.3, 0.7, 0.8, 0.7), terrain_per_km=-0.15, basin_per_km=-0.5,
        static_sd=0.1, large_sd=0.14, small_sd=0.18,
        events=EventParams(heading_deg=160.0, heading_spread_deg=35.0, speed=(1.5, 4.0),
                           size=(0.5, 1.2), amplitude_mean=0.55, source_scale_m=900.0),
        bias=0.75, bias_pattern_sd=0.06, coarse_noise_sd=0.06),
}


def day_numbers(times) -> np.ndarray:
    """Days since 2000-01-01 (the generator's clock; negative before it)."""
    return ((pd.DatetimeIndex(times) - EPOCH) // pd.Timedelta(days=1)).to_numpy(np.int64)


def _seasonal(values, days: np.ndarray) -> np.ndarray:
    """A smooth periodic curve through the four mid-season values, at each day."""
    x = np.append(_SEASON_DOY, _SEASON_DOY[0] + _YEAR)
    spline = CubicSpline(x, np.append(values, values[0]), bc_type="periodic")
    doy = np.mod(days, _YEAR)  # day 0 is 1 January
    return spline(np.where(doy < x[0], doy + _YEAR, doy))


@lru_cache(maxsize=4)
def _relief(area: str) -> np.ndarray:
    elev = _read(area, "0.0625")[0].astype(np.float64)
    return elev - scipy.ndimage.gaussian_filter(elev, RELIEF_SIGMA_PX, mode="nearest")


def _relief_on(area: str, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    rows, cols = fine_index(area, lat, lon)
    return _relief(area)[np.ix_(rows, cols)]


def _exp10(x: np.ndarray) -> np.ndarray:
    # exp is SIMD-vectorised for float32 in NumPy, power is not (several times slower here).
    return np.exp(x * np.float32(np.log(10.0)))


class TruthModel:
    """The synthetic truth and its coarse counterpart for one area, seed and set of grids.

    Holds only small static maps; :meth:`log10_truth`, :meth:`coarse` and :meth:`fine` compute
    any block of consecutive days from scratch (this object is what dask tasks carry).
    """

    def __init__(self, area: str, seed: int, grids: Grids, params: AreaParams | None = None):
        self.area, self.seed, self.grids = area, int(seed), grids
        self.p = params or PARAMS[area]
        g, p = grids, self.p
        self.keys = {name: seed_key(seed, s) for name, s in _STREAMS.items()}
        self.taps_large = ar2_taps(*LARGE["ar"], _N_TAPS)
        self.taps_small = ar2_taps(*SMALL["ar"], _N_TAPS)
        self.taps_coarse = ar2_taps(*COARSE["ar"], _N_TAPS)
        self.elevation = elevation_on(area, g.truth_lat, g.truth_lon)
        elev_km = self.elevation.astype(np.float64) / 1000.0
        static = smooth_field(self.keys["static"], np.array([0]), g.truth_lat, g.truth_lon,
                              spacing=STATIC["spacing"], sigma=STATIC["sigma"],
                              dtype=np.float64)[0]
        self.terrain = (p.terrain_per_km * elev_km).astype(np.float32)
        # Hot spots and basins scale with the season's contrast (the spread), the plain
        # elevation effect does not.
        self.contrast = (p.static_sd * static
                         + p.basin_per_km * _relief_on(area, g.truth_lat, g.truth_lon) / 1000.0
                         ).astype(np.float32)
        # Events fade over high ground (they are lifted from low basins and blocked by ranges).
        self.atten = np.exp(-self.elevation / 2500.0).astype(np.float32)
        bias = smooth_field(self.keys["bias"], np.array([0]), g.coarse_lat, g.coarse_lon,
                            spacing=BIAS["spacing"], sigma=BIAS["sigma"], dtype=np.float64)[0]
        self.bias = (p.bias * 10.0 ** (p.bias_pattern_sd * bias)).astype(np.float32)
        box = REGIONS[area]
        self.event_box = box
        self._sqdeg = (box.lat_max - box.lat_min + 4.0) * (box.lon_max - box.lon_min + 4.0)
        self._event_key = seed_key(seed, _EVENT_STREAM + int(area[1:]))

    def _elevation_at(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        return elevation_at_points(self.area, lat, lon)

    def log10_truth(self, days: np.ndarray) -> np.ndarray:
        """log10 AOD on the truth grid, ``(len(days), ny, nx)`` float32, consecutive ``days``."""
        g, p = self.grids, self.p
        days = np.asarray(days, dtype=np.int64)
        spread = _seasonal(p.spread, days).astype(np.float32)[:, None, None]
        level = _seasonal(p.level, days).astype(np.float32)[:, None, None]
        large = smooth_field(self.keys["large"], days, g.truth_lat, g.truth_lon,
                             spacing=LARGE["spacing"], sigma=LARGE["sigma"], taps=self.taps_large)
        small = smooth_field(self.keys["small"], days, g.truth_lat, g.truth_lon,
                             spacing=SMALL["spacing"], sigma=SMALL["sigma"], taps=self.taps_small)
        # In place: these arrays are the size of the whole block.
        out = large
        out *= np.float32(p.large_sd)
        small *= np.float32(p.small_sd)
        out += small
        out += self.contrast
        out *= spread
        out += self.terrain
        out += level
        born = np.arange(days[0] - MAX_LIFE + 1, days[-1] + 1)
        rates = _seasonal(p.event_rate, born) * self._sqdeg / 100.0
        events = births(self._event_key, born, rates,
                        self.event_box, self._elevation_at, p.events)
        add_events(out, days, g.truth_lat, g.truth_lon, self.atten, events)
        return np.clip(out, LOG10_MIN, LOG10_MAX, out=out)

    def coarse(self, days: np.ndarray, log10_truth: np.ndarray | None = None) -> np.ndarray:
        """The MERRA-2-like field ``(len(days), n_lat, n_lon)`` float32 on the coarse grid."""
        g, p = self.grids, self.p
        if log10_truth is None:
            log10_truth = self.log10_truth(days)
        aod = xr.DataArray(_exp10(log10_truth), dims=("time", "lat", "lon"),
                           coords={"lat": g.truth_lat, "lon": g.truth_lon})
        target = xr.Dataset(coords={"lat": g.coarse_lat, "lon": g.coarse_lon})
        mean = regrid_like(aod, target, method="conservative").values
        noise = smooth_field(self.keys["coarse"], days, g.coarse_lat, g.coarse_lon,
                             spacing=COARSE["spacing"], sigma=COARSE["sigma"],
                             taps=self.taps_coarse)
        return (mean * self.bias * _exp10(np.float32(p.coarse_noise_sd) * noise)
                ).astype(np.float32)

    def fine(self, days: np.ndarray, log10_truth: np.ndarray | None = None) -> np.ndarray:
        """The G5NR-like field ``(len(days), n_lat, n_lon)`` float32 on the window."""
        g = self.grids
        if log10_truth is None:
            log10_truth = self.log10_truth(days)
        return _exp10(log10_truth[:, g.fine_rows, g.fine_cols])
