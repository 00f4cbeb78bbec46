"""Analysis windows (the paper's A0 and A1) and clipping to them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

from .._coords import get_latlon_names
from ..errors import RegionError

__all__ = ["Region", "REGIONS", "get_region", "clip", "normalize_lonlat"]


@dataclass(frozen=True)
class Region:
    """A latitude/longitude box in degrees north/east (longitudes in [-180, 180)).

    Pixel centres on the box's edges are inside it.
    """

    name: str
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def __post_init__(self) -> None:
        if not (-90 <= self.lat_min < self.lat_max <= 90):
            raise RegionError(
                f"region {self.name!r}: need -90 <= lat_min < lat_max <= 90, "
                f"got lat_min={self.lat_min}, lat_max={self.lat_max}"
            )
        if not (-180 <= self.lon_min < self.lon_max <= 180):
            raise RegionError(
                f"region {self.name!r}: need -180 <= lon_min < lon_max <= 180 (boxes across the "
                f"antimeridian are not supported), got lon_min={self.lon_min}, lon_max={self.lon_max}"
            )

    def pad(self, degrees: float) -> Region:
        """The same box grown by ``degrees`` on every side (clamped to the globe)."""
        return Region(
            self.name,
            max(-90.0, self.lat_min - degrees),
            min(90.0, self.lat_max + degrees),
            max(-180.0, self.lon_min - degrees),
            min(180.0, self.lon_max + degrees),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.lat_min, self.lat_max, self.lon_min, self.lon_max)


# Boxes are the countries' total bounds, snapped so the G5NR 0.0625-degree pixel centres inside
# them give the grids the paper's scripts used: A1 432 x 357, A0 224 x 318 (lat x lon).
REGIONS: dict[str, Region] = {
    # Afghanistan + Kyrgyzstan
    "A0": Region("A0", 29.30, 43.30, 60.40, 80.30),
    # UAE, Iraq, Kuwait, Qatar, Saudi Arabia, Djibouti
    "A1": Region("A1", 10.90, 37.90, 34.40, 56.70),
}


def get_region(spec) -> Region:
    """A :class:`Region` from a name in :data:`REGIONS`, a Region, or a 4-tuple
    ``(lat_min, lat_max, lon_min, lon_max)``."""
    if isinstance(spec, Region):
        return spec
    if isinstance(spec, str):
        try:
            return REGIONS[spec]
        except KeyError:
            raise RegionError(
                f"unknown region {spec!r}; known regions are {sorted(REGIONS)}, or pass a "
                "Region or a (lat_min, lat_max, lon_min, lon_max) tuple"
            ) from None
    if isinstance(spec, dict):
        return Region(**spec)
    try:
        lat_min, lat_max, lon_min, lon_max = (float(v) for v in spec)
    except (TypeError, ValueError):
        raise RegionError(
            f"cannot make a region from {spec!r}: expected a name, a Region, or "
            "(lat_min, lat_max, lon_min, lon_max)"
        ) from None
    return Region("custom", lat_min, lat_max, lon_min, lon_max)


def normalize_lonlat(obj: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """Rename lat/lon dims to ``lat``/``lon``, wrap longitudes to [-180, 180) and sort both
    ascending. Only coordinates are touched; data stay lazy."""
    lat, lon = get_latlon_names(obj)
    rename = {k: v for k, v in ((lat, "lat"), (lon, "lon")) if k != v}
    if rename:
        obj = obj.rename(rename)
    lons = obj["lon"].values
    wrapped = ((lons + 180.0) % 360.0) - 180.0
    if not np.array_equal(wrapped, lons):
        obj = obj.assign_coords(lon=obj["lon"].copy(data=wrapped))
    if obj.indexes["lon"].has_duplicates or obj.indexes["lat"].has_duplicates:
        raise RegionError("duplicated latitude or longitude values after wrapping longitudes")
    if not obj.indexes["lon"].is_monotonic_increasing:
        obj = obj.sortby("lon")
    if not obj.indexes["lat"].is_monotonic_increasing:
        obj = obj.sortby("lat")
    return obj


def clip(obj: xr.Dataset | xr.DataArray, region, *, pad: float = 0.0):
    """Select the pixel centres inside ``region`` (grown by ``pad`` degrees).

    Works with descending latitudes and 0-360 longitudes: both are normalised first (lat
    ascending, lon in [-180, 180)), so a slice never comes back empty by accident.

    Raises
    ------
    RegionError
        If no pixel centre of ``obj`` falls inside the box.
    """
    box = get_region(region)
    if pad:
        box = box.pad(pad)
    obj = normalize_lonlat(obj)
    tol = 1e-9
    out = obj.sel(lat=slice(box.lat_min - tol, box.lat_max + tol),
                  lon=slice(box.lon_min - tol, box.lon_max + tol))
    if out.sizes["lat"] == 0 or out.sizes["lon"] == 0:
        raise RegionError(
            f"no grid point of the data lies in region {box.name!r} "
            f"(lat {box.lat_min}..{box.lat_max}, lon {box.lon_min}..{box.lon_max}); the data covers "
            f"lat {float(obj.lat.min())}..{float(obj.lat.max())}, "
            f"lon {float(obj.lon.min())}..{float(obj.lon.max())}"
        )
    out.attrs = {**obj.attrs, "xdownscale_region": box.name}
    return out
