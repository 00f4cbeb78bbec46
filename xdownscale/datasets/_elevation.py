"""The shipped GLOBE terrain: loading it, and putting it on the synthetic grids."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

import numpy as np
import xarray as xr

from ..errors import ConfigError, RegionError
from ._grids import FINE_D, Grids

__all__ = ["load_elevation", "fine_index", "elevation_on", "elevation_at_points",
           "elevation_for_window"]

RESOLUTIONS = ("30s", "0.0625")
_FILES = {"30s": "globe_dem_30s_{area}_demo.npz", "0.0625": "globe_dem_0p0625_{area}.npz"}
_SOURCE = ("GLOBE 30-arc-second digital elevation model (GLOBE Task Team et al. 1999, NOAA "
           "National Geophysical Data Center); public domain")
_REDUCTION = {
    "30s": "native 30-arc-second samples, cut to the demo window plus 0.25 degrees",
    "0.0625": ("mean of all 30-arc-second samples whose centres fall in each 0.0625-degree "
               "G5NR pixel (xdownscale.data.regrid.regrid_like(method='mean')), rounded to whole metres"),
}


@lru_cache(maxsize=8)
def _read(area: str, resolution: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    if area not in ("A0", "A1"):
        raise RegionError(f"no elevation is shipped for area {area!r}; shipped areas: A0, A1")
    with files(__package__).joinpath(_FILES[resolution].format(area=area)).open("rb") as fh:
        data = np.load(fh)
        elev, lat, lon = data["elevation"], data["lat"], data["lon"]
    for arr in (elev, lat, lon):
        arr.setflags(write=False)  # cached: callers get copies or read-only views
    return elev, lat, lon


def _attrs(area: str, resolution: str) -> dict:
    return {
        "long_name": "surface elevation above mean sea level",
        "standard_name": "surface_altitude",
        "units": "m",
        "resolution": resolution,
        "area": area,
        "source": _SOURCE,
        "reduction": _REDUCTION[resolution],
        "comment": "sea and land below sea level are 0 m in GLOBE",
    }


def _latlon_coords(lat: np.ndarray, lon: np.ndarray) -> dict:
    return {
        "lat": ("lat", np.asarray(lat, dtype=np.float64),
                {"standard_name": "latitude", "units": "degrees_north", "long_name": "latitude"}),
        "lon": ("lon", np.asarray(lon, dtype=np.float64),
                {"standard_name": "longitude", "units": "degrees_east", "long_name": "longitude"}),
    }


def load_elevation(area: str = "A1", resolution: str = "30s") -> xr.DataArray:
    """The terrain shipped with xdownscale for one of the paper's areas.

    Parameters
    ----------
    area : {"A0", "A1"}
        The paper's area.
    resolution : {"30s", "0.0625"}
        ``"30s"``: the native 30-arc-second GLOBE samples of the demo window (plus 0.25
        degrees). ``"0.0625"``: the whole area plus about a degree, averaged into G5NR pixels.

    Returns
    -------
    xarray.DataArray
        ``elevation`` (lat, lon), float32 metres, latitude ascending, with provenance attrs.

    Raises
    ------
    RegionError
        No elevation is shipped for ``area``.
    ConfigError
        Unknown ``resolution``.

    Examples
    --------
    >>> from xdownscale.datasets import load_elevation
    >>> load_elevation("A1", "0.0625").shape
    (455, 383)
    """
    elev, lat, lon = _read(area, resolution)
    return xr.DataArray(elev.astype(np.float32), dims=("lat", "lon"),
                        coords=_latlon_coords(lat, lon), name="elevation",
                        attrs=_attrs(area, resolution))


def fine_index(area: str, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the shipped 0.0625-degree grid nearest to ``lat`` and ``lon``.

    Points beyond the shipped tile (only the outer rim of the largest coarse footprints) take
    the nearest edge pixel.
    """
    _, lat0, lon0 = _read(area, "0.0625")
    rows = np.clip(np.rint((np.asarray(lat) - lat0[0]) / FINE_D).astype(int), 0, lat0.size - 1)
    cols = np.clip(np.rint((np.asarray(lon) - lon0[0]) / FINE_D).astype(int), 0, lon0.size - 1)
    return rows, cols


def elevation_on(area: str, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The shipped 0.0625-degree elevation on the grid ``lat`` x ``lon`` (float32 metres)."""
    rows, cols = fine_index(area, lat, lon)
    return _read(area, "0.0625")[0][np.ix_(rows, cols)].astype(np.float32)


def elevation_at_points(area: str, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The shipped 0.0625-degree elevation at the points ``(lat[i], lon[i])``."""
    rows, cols = fine_index(area, lat, lon)
    return _read(area, "0.0625")[0][rows, cols].astype(np.float32)


def elevation_for_window(grids: Grids) -> xr.DataArray:
    """The elevation returned with a synthetic pair.

    At 30 arc-seconds when the fine pixels' whole footprint lies in the shipped 30" tile (the
    demo windows), cut to that footprint so ``regrid_like(elev, fine, method="mean")`` finds
    every sample of every fine pixel; otherwise the 0.0625-degree values on the fine grid (the
    ones the generator used).
    """
    elev, lat, lon = _read(grids.area, "30s")
    half_tile = 0.5 * float(lat[1] - lat[0])
    half_fine = FINE_D / 2
    lo_lat, hi_lat = grids.fine_lat[0] - half_fine, grids.fine_lat[-1] + half_fine
    lo_lon, hi_lon = grids.fine_lon[0] - half_fine, grids.fine_lon[-1] + half_fine
    inside = (lo_lat >= lat[0] - half_tile and hi_lat <= lat[-1] + half_tile
              and lo_lon >= lon[0] - half_tile and hi_lon <= lon[-1] + half_tile)
    if inside:
        # Samples whose cells overlap the footprint: the straddling ones at the border make the
        # samples' cell edges cover the fine pixels' edges (regrid_like checks that).
        rows = (lat > lo_lat - half_tile) & (lat < hi_lat + half_tile)
        cols = (lon > lo_lon - half_tile) & (lon < hi_lon + half_tile)
        out = xr.DataArray(elev[np.ix_(rows, cols)].astype(np.float32), dims=("lat", "lon"),
                           coords=_latlon_coords(lat[rows], lon[cols]), name="elevation",
                           attrs=_attrs(grids.area, "30s"))
        out.attrs["reduction"] = ("native 30-arc-second samples overlapping the fine pixels' "
                                  "footprint")
        return out
    values = elevation_on(grids.area, grids.fine_lat, grids.fine_lon)
    return xr.DataArray(values, dims=("lat", "lon"),
                        coords=_latlon_coords(grids.fine_lat, grids.fine_lon), name="elevation",
                        attrs=_attrs(grids.area, "0.0625"))
