"""The grids of the synthetic pair: MERRA-2 and G5NR pixel centres, demo windows, margins."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.regions import REGIONS, Region
from ..errors import ConfigError, RegionError

# MERRA-2: centres at lat -90 + 0.5 k, lon -180 + 0.625 k. G5NR: centres at multiples of
# 0.0625 degrees (its 2881 x 5760 global grid).
COARSE_DLAT, COARSE_DLON = 0.5, 0.625
FINE_D = 0.0625
# Two coarse cells beyond the window on each side: bicubic (4-tap) interpolation to any fine
# pixel centre of the window then has full support.
COARSE_MARGIN = (2 * COARSE_DLAT, 2 * COARSE_DLON)

# Demo windows: 64 x 64 G5NR pixels (4 x 4 degrees) over strong terrain contrast. Edges sit
# half a fine pixel below the first centre so exactly 64 centres fall inside.
_H = FINE_D / 2
DEMO_WINDOWS: dict[str, tuple[float, float, float, float]] = {
    # Mesopotamian lowland (Tigris, Baghdad) against the Zagros range.
    "A1": (32.0 - _H, 36.0 - _H, 44.0 - _H, 48.0 - _H),
    # Helmand / Sistan basin against the central Afghan highlands.
    "A0": (30.0 - _H, 34.0 - _H, 61.0 - _H, 65.0 - _H),
}


def multiples_inside(lo: float, hi: float, step: float) -> np.ndarray:
    """Centres ``k * step`` with ``lo <= k * step <= hi`` (1e-9 tolerance), ascending."""
    k0 = int(np.ceil(lo / step - 1e-9))
    k1 = int(np.floor(hi / step + 1e-9))
    return np.arange(k0, k1 + 1) * step


@dataclass(frozen=True)
class Grids:
    """All coordinates one synthetic call needs.

    ``truth_lat/lon`` is the extended fine grid on which the truth is generated: it covers the
    footprint of every coarse cell (a fine pixel whose centre sits on a coarse cell edge is half
    inside and is kept, the conservative weights take half of it). ``fine_rows/cols`` index the
    window inside the truth grid.
    """

    area: str
    window: Region
    fine_lat: np.ndarray
    fine_lon: np.ndarray
    coarse_lat: np.ndarray
    coarse_lon: np.ndarray
    truth_lat: np.ndarray
    truth_lon: np.ndarray
    fine_rows: slice
    fine_cols: slice


def make_grids(area: str, window: Region) -> Grids:
    """Coarse, fine and truth grids for ``window`` (already checked to lie in ``area``)."""
    fine_lat = multiples_inside(window.lat_min, window.lat_max, FINE_D)
    fine_lon = multiples_inside(window.lon_min, window.lon_max, FINE_D)
    if fine_lat.size < 2 or fine_lon.size < 2:
        raise RegionError(
            f"window {window.bounds} holds {fine_lat.size} x {fine_lon.size} G5NR pixel centres "
            f"(spacing {FINE_D} degrees); it needs at least 2 x 2"
        )
    coarse_lat = multiples_inside(fine_lat[0] - COARSE_MARGIN[0], fine_lat[-1] + COARSE_MARGIN[0],
                                  COARSE_DLAT)
    coarse_lon = multiples_inside(fine_lon[0] - COARSE_MARGIN[1], fine_lon[-1] + COARSE_MARGIN[1],
                                  COARSE_DLON)
    truth_lat = multiples_inside(coarse_lat[0] - COARSE_DLAT / 2, coarse_lat[-1] + COARSE_DLAT / 2,
                                 FINE_D)
    truth_lon = multiples_inside(coarse_lon[0] - COARSE_DLON / 2, coarse_lon[-1] + COARSE_DLON / 2,
                                 FINE_D)
    r0 = int(round((fine_lat[0] - truth_lat[0]) / FINE_D))
    c0 = int(round((fine_lon[0] - truth_lon[0]) / FINE_D))
    return Grids(area, window, fine_lat, fine_lon, coarse_lat, coarse_lon, truth_lat, truth_lon,
                 slice(r0, r0 + fine_lat.size), slice(c0, c0 + fine_lon.size))


def resolve_window(area: str, size: str, window) -> Region:
    """The window of a call: the demo window, the whole area, or a custom box inside the area."""
    if not isinstance(area, str) or area not in REGIONS or area not in DEMO_WINDOWS:
        raise RegionError(
            f"unknown area {area!r}: the synthetic data exists for {sorted(DEMO_WINDOWS)} (the "
            "paper's two regions, whose terrain is shipped with the package)"
        )
    if size not in ("demo", "full"):
        raise ConfigError(f"size must be 'demo' or 'full', got {size!r}")
    box = REGIONS[area]
    if window is None:
        return Region(f"{area}-demo", *DEMO_WINDOWS[area]) if size == "demo" else box
    if isinstance(window, Region):
        custom = window
    else:
        try:
            values = [float(v) for v in window]
        except (TypeError, ValueError):
            raise RegionError(
                f"window must be (lat_min, lat_max, lon_min, lon_max) in degrees, got {window!r}"
            ) from None
        if len(values) != 4:
            raise RegionError(
                f"window must have 4 numbers (lat_min, lat_max, lon_min, lon_max), got {window!r}"
            )
        custom = Region(f"{area}-window", *values)
    tol = 1e-9
    inside = (custom.lat_min >= box.lat_min - tol and custom.lat_max <= box.lat_max + tol
              and custom.lon_min >= box.lon_min - tol and custom.lon_max <= box.lon_max + tol)
    if not inside:
        raise RegionError(
            f"window {custom.bounds} is not inside area {area} (lat {box.lat_min}..{box.lat_max}, "
            f"lon {box.lon_min}..{box.lon_max}); pass a box inside it, or window=None"
        )
    return custom
