"""Time and memory of the daily semivariogram on a season of A1-sized fields.

92 days of a 432 x 357 field (the A1 G5NR grid, 0.0625 deg), 30 000 pairs a day within
600 km, 30 bins, spherical fit: the paper's Figure 4/8 setting. Prints the seconds and the
peak memory, for numpy input and for dask input chunked one day per task (dask's default
threaded scheduler).

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_variogram.py [--days 92] [--pairs 30000]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd
import xarray as xr

from xdownscale.diagnostics import semivariogram


def make_season(days: int, ny: int = 432, nx: int = 357, seed: int = 0) -> xr.DataArray:
    """Log-normal AOD-like fields with spatial correlation (FFT-smoothed noise), NaN corner."""
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    spectrum = 1.0 / (1.0 + (np.hypot(ky, kx) / 0.02) ** 2)
    out = np.empty((days, ny, nx))
    for d in range(days):
        noise = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(ny, nx))) * spectrum, s=(ny, nx))
        out[d] = 0.3 * np.exp(noise / noise.std() * 0.8)
    out[:, :40, :60] = np.nan  # a corner outside the countries
    return xr.DataArray(
        out, dims=("time", "lat", "lon"), name="DUEXTTAU",
        coords={"time": pd.date_range("2006-06-01", periods=days),
                "lat": 10.9 + 0.0625 * np.arange(ny), "lon": 34.4 + 0.0625 * np.arange(nx)},
    )


def run(da: xr.DataArray, pairs: int) -> tuple[float, float, xr.Dataset]:
    """Seconds of an untraced run, then the traced peak (MiB) of a second run."""
    t0 = time.perf_counter()
    res = semivariogram(da, n_pairs=pairs, max_dist_km=600, n_bins=30).compute()
    seconds = time.perf_counter() - t0
    # tracemalloc slows Python-level allocation (dask's graph code), so it is not timed.
    tracemalloc.start()
    semivariogram(da, n_pairs=pairs, max_dist_km=600, n_bins=30).compute()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=92)
    parser.add_argument("--pairs", type=int, default=30000)
    args = parser.parse_args()

    da = make_season(args.days)
    print(f"field: {args.days} days x {da.sizes['lat']} x {da.sizes['lon']} "
          f"({da.nbytes / 2**20:.0f} MiB), {args.pairs} pairs/day, 600 km, 30 bins")
    # Warm up the imports and scikit-gstat's numba model so they are not timed.
    semivariogram(da.isel(time=[0]), n_pairs=100, max_dist_km=600, n_bins=30).compute()
    for label, arr in (("numpy", da), ("dask, 1 day/chunk", da.chunk({"time": 1}))):
        seconds, peak, res = run(arr, args.pairs)
        print(f"{label:>18}: {seconds:6.2f} s ({1000 * seconds / args.days:5.1f} ms/day), "
              f"peak traced memory above the input {peak:7.1f} MiB")
    print(f"fit: range {float(res['range']):.0f} km, sill {float(res['sill']):.3f}, "
          f"nugget {float(res['nugget']):.3f}; pairs/day {int(res['counts'].sum('bin').min())}")
    print(f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
          " MiB")


if __name__ == "__main__":
    main()
