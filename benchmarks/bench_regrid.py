"""Regridding throughput: a year of A1 MERRA-2-grid days to the 432 x 357 G5NR grid.

Compares xdownscale's separable sparse-matrix path (one product for all days) with one scipy
call per day, and the lazy dask path with time chunks; then times ``method="mean"`` on the real
30-arc-second GLOBE DEM of A1 against :func:`scipy.stats.binned_statistic_2d`.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/bench_regrid.py            # 365 days
    OMP_NUM_THREADS=1 python benchmarks/bench_regrid.py --days 60  # quicker

Figures are fine (target) pixels per second, best of ``--repeat`` runs, single process.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import dask
import numpy as np
import scipy.interpolate as si
import xarray as xr
from scipy.stats import binned_statistic_2d

from xdownscale.data.regions import REGIONS, clip
from xdownscale.data.regrid import regrid_like

DEM = Path("/work/shared/data/globe_dem_30s_A1.npz")


def _grids(days: int):
    """A1 MERRA-2 grid with a 1-degree margin, and the G5NR grid of A1."""
    box = REGIONS["A1"]
    lat = 0.5 * np.arange(-180, 181)
    lon = -180 + 0.625 * np.arange(576)
    glob = xr.DataArray(np.zeros((lat.size, lon.size), "float32"), dims=("lat", "lon"),
                        coords={"lat": lat, "lon": lon})
    native = clip(glob, "A1", pad=1.0)
    rng = np.random.default_rng(0)
    data = rng.gamma(2.0, 0.1, (days, native.sizes["lat"], native.sizes["lon"])).astype("float32")
    coarse = xr.DataArray(data, dims=("time", "lat", "lon"),
                          coords={"time": np.arange(days), "lat": native.lat, "lon": native.lon},
                          name="DUEXTTAU")
    step = 0.0625
    flat = step * np.arange(np.ceil(box.lat_min / step), np.floor(box.lat_max / step) + 1)
    flon = step * np.arange(np.ceil(box.lon_min / step), np.floor(box.lon_max / step) + 1)
    return coarse, xr.Dataset(coords={"lat": flat, "lon": flon})


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _per_day_scipy(coarse: xr.DataArray, target: xr.Dataset) -> np.ndarray:
    y, x = coarse.lat.values, coarse.lon.values
    ty, tx = target.lat.values, target.lon.values
    return np.stack([si.RectBivariateSpline(y, x, day, kx=3, ky=3)(ty, tx)
                     for day in coarse.values])


def _row(label: str, seconds: float, pixels: int) -> str:
    return f"| {label:<54} | {seconds:8.3f} | {pixels / seconds / 1e6:10.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=30, help="time chunk of the dask path")
    args = parser.parse_args()

    coarse, target = _grids(args.days)
    pixels = args.days * target.sizes["lat"] * target.sizes["lon"]
    print(f"source {dict(coarse.sizes)} -> target {dict(target.sizes)}, {args.days} days, "
          f"{pixels / 1e6:.1f} M fine pixels")
    print("| path                                                   |  seconds | Mpixel/s   |")
    print("| ------------------------------------------------------ | -------- | ---------- |")
    for method in ("cubic", "linear"):
        sec, ours = _best(lambda m=method: regrid_like(coarse, target, m), args.repeat)
        print(_row(f"xdownscale {method}, separable sparse (numpy)", sec, pixels))
    sec, ours = _best(lambda: regrid_like(coarse, target, "cubic"), 1)
    sec_sp, ref = _best(lambda: _per_day_scipy(coarse, target), 1)
    print(_row("scipy RectBivariateSpline, one call per day", sec_sp, pixels))
    lazy = regrid_like(coarse.chunk(time=args.chunk), target, "cubic")
    with dask.config.set(scheduler="synchronous"):
        sec, lazy_out = _best(lambda: lazy.compute(), args.repeat)
    print(_row(f"xdownscale cubic, dask time chunks of {args.chunk} (1 thread)", sec, pixels))
    with dask.config.set(scheduler="threads", num_workers=2):
        sec, _ = _best(lambda: lazy.compute(), args.repeat)
    print(_row(f"xdownscale cubic, dask time chunks of {args.chunk} (2 threads)", sec, pixels))
    np.testing.assert_allclose(lazy_out.values, ours.values, rtol=1e-5, atol=1e-6)
    # Keys convolution and a cubic spline differ, but only by the interpolants' own error.
    print(f"cubic (Keys) vs scipy cubic spline: median |diff| "
          f"{np.median(np.abs(ours.values - ref)):.3g} (data mean {coarse.values.mean():.3g})")

    if not DEM.exists():
        print(f"{DEM} not found: skipping the DEM aggregation")
        return
    with np.load(DEM) as npz:
        dem = xr.DataArray(npz["elevation"], dims=("lat", "lon"),
                           coords={"lat": npz["lat"], "lon": npz["lon"]}, name="elevation")
    fine_pixels = target.sizes["lat"] * target.sizes["lon"]
    print(f"\nDEM {dict(dem.sizes)} (30 arc-seconds) -> {dict(target.sizes)} (0.0625 deg)")
    print("| path                                                   |  seconds | Mpixel/s   |")
    print("| ------------------------------------------------------ | -------- | ---------- |")
    sec, mean = _best(lambda: regrid_like(dem, target, "mean"), args.repeat)
    print(_row("xdownscale mean (matrices built + applied)", sec, fine_pixels))
    half = 0.0625 / 2
    edges = [np.append(target[d].values - half, target[d].values[-1] + half) for d in ("lat",
                                                                                       "lon")]

    def binned():
        yy, xx = np.meshgrid(dem.lat.values, dem.lon.values, indexing="ij")
        return binned_statistic_2d(yy.ravel(), xx.ravel(), dem.values.ravel().astype(float),
                                   "mean", bins=edges).statistic

    sec_b, ref = _best(binned, 1)
    print(_row("scipy.stats.binned_statistic_2d", sec_b, fine_pixels))
    print(f"max |mean - binned_statistic_2d| = {np.nanmax(np.abs(mean.values - ref)):.3g} m")
    sec, _ = _best(lambda: regrid_like(dem, target, "conservative"), args.repeat)
    print(_row("xdownscale conservative", sec, fine_pixels))


if __name__ == "__main__":
    main()
