"""Rebuild the elevation files shipped in ``xdownscale/datasets/`` from the GLOBE 30" DEM.

Inputs: ``/work/shared/data/globe_dem_30s_A{0,1}.npz`` (GLOBE Task Team 1999, NOAA NGDC; public
domain; int16 metres, sea = 0), or another folder given as the first argument. Outputs, per area:

* ``globe_dem_0p0625_{area}.npz`` -- the mean of all 30" samples whose centres fall inside each
  0.0625-degree G5NR pixel (``xdownscale.data.regrid.regrid_like(..., method="mean")``), over every
  G5NR pixel lying wholly inside the DEM tile (the area plus about a degree), rounded to int16.
* ``globe_dem_30s_{area}_demo.npz`` -- the 30" samples of the demo window plus 0.25 degrees.

Run: ``python benchmarks/make_shipped_elevation.py [DATA_DIR]``. The output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

from xdownscale.data.regions import Region, clip
from xdownscale.data.regrid import regrid_like
from xdownscale.datasets._grids import DEMO_WINDOWS, FINE_D, multiples_inside

OUT = Path(__file__).resolve().parents[1] / "xdownscale" / "datasets"
TILE_MARGIN = 0.25


def _save(path: Path, elevation: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> None:
    np.savez_compressed(path, elevation=elevation.astype(np.int16), lat=lat, lon=lon)
    print(f"{path.name}: {elevation.shape}, {path.stat().st_size / 1e3:.0f} kB")


def main(data_dir: Path) -> None:
    for area in ("A0", "A1"):
        src = np.load(data_dir / f"globe_dem_30s_{area}.npz")
        dem = xr.DataArray(src["elevation"].astype(np.float32), dims=("lat", "lon"),
                           coords={"lat": src["lat"], "lon": src["lon"]}, name="elevation")
        half_src = 0.5 * float(np.diff(src["lat"][:2])[0])
        edges = (src["lat"][0] - half_src, src["lat"][-1] + half_src,
                 src["lon"][0] - half_src, src["lon"][-1] + half_src)
        # Fine pixels whose whole footprint lies in the tile.
        lat = multiples_inside(edges[0] + FINE_D / 2, edges[1] - FINE_D / 2, FINE_D)
        lon = multiples_inside(edges[2] + FINE_D / 2, edges[3] - FINE_D / 2, FINE_D)
        target = xr.Dataset(coords={"lat": lat, "lon": lon})
        mean = regrid_like(dem, target, method="mean").values
        if np.isnan(mean).any():
            raise RuntimeError(f"{area}: empty fine pixels in the 0.0625-degree aggregation")
        _save(OUT / f"globe_dem_0p0625_{area}.npz", np.rint(mean), lat, lon)

        box = Region(f"{area}-demo-tile", *DEMO_WINDOWS[area]).pad(TILE_MARGIN)
        tile = clip(dem, box)
        _save(OUT / f"globe_dem_30s_{area}_demo.npz", tile.values, tile["lat"].values,
              tile["lon"].values)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data"))
