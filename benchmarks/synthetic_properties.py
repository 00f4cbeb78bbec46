"""Measured properties of the synthetic pair (the figures quoted in docs/synthetic.rst).

Run: ``OMP_NUM_THREADS=1 python benchmarks/synthetic_properties.py [--step 4] [--seed 0]``

Prints, per area:

1. generation time of the demo pair (eager) and of the full-size lazy pair (construction, and
   one 32-day chunk computed);
2. Table-1 statistics (mean, std, q05, q50, q95 in data units) per season over the full area,
   on every ``step``-th day of the fine record, next to the paper's Table 1;
3. skill on the demo window, test = last 20 % of the fine record, per-day R^2 = 1 - SSE/SST and
   RMSE in log10 AOD, averaged over test days: the floor (bicubic coarse, raw and with a linear
   correction fitted on the first 80 %) and an "oracle" linear regression of the fine field on
   [bicubic coarse, elevation, yesterday's fine field];
4. PACF at lags 1-4 of the regional-mean log10 series (statsmodels) within each season,
   averaged over 23 years, fine and coarse (inside the window);
5. grid semivariogram of log10 AOD along longitude at 1-32 fine pixels, fine vs bicubic coarse
   (demo window), and the project's pair-sampled semivariogram with a spherical fit over the
   full area on every 8th JJA day (nugget, sill, range; paper Fig. 4).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from xdownscale.data.regions import REGIONS
from xdownscale.data.regrid import regrid_like
from xdownscale.datasets import synthetic
from xdownscale.datasets._fields import TruthModel, day_numbers
from xdownscale.datasets._grids import make_grids, resolve_window

SEASONS = ("DJF", "MAM", "JJA", "SON")
STATS = ("mean", "std", "q05", "q50", "q95")
# Paper, Table 1 (section 3.1): per season DJF, MAM, JJA, SON -> mean, std, q05, q50, q95.
PAPER = {
    ("A0", "G5NR"): [(0.08, 0.10, 0.00, 0.05, 0.26), (0.19, 0.20, 0.01, 0.13, 0.57),
                     (0.25, 0.26, 0.03, 0.16, 0.77), (0.16, 0.19, 0.02, 0.09, 0.59)],
    ("A1", "G5NR"): [(0.15, 0.14, 0.01, 0.11, 0.42), (0.26, 0.24, 0.02, 0.19, 0.74),
                     (0.37, 0.27, 0.05, 0.31, 0.88), (0.28, 0.25, 0.03, 0.21, 0.74)],
    ("A0", "MERRA-2"): [(0.07, 0.06, 0.01, 0.05, 0.18), (0.15, 0.14, 0.02, 0.12, 0.38),
                        (0.18, 0.17, 0.03, 0.14, 0.45), (0.12, 0.13, 0.01, 0.09, 0.32)],
    ("A1", "MERRA-2"): [(0.12, 0.10, 0.02, 0.09, 0.32), (0.22, 0.17, 0.04, 0.17, 0.57),
                        (0.30, 0.19, 0.07, 0.26, 0.64), (0.19, 0.15, 0.03, 0.15, 0.47)],
}


def timing(area: str) -> None:
    t0 = time.perf_counter()
    coarse, fine, _ = synthetic(area)
    t1 = time.perf_counter()
    lazy_c, lazy_f, _ = synthetic(area, size="full")
    t2 = time.perf_counter()
    lazy_c["DUEXTTAU"].isel(time=slice(0, 32)).compute()  # warms caches (terrain, imports)
    t3 = time.perf_counter()
    lazy_c["DUEXTTAU"].isel(time=slice(32, 64)).compute()
    t4 = time.perf_counter()
    n_chunks = len(lazy_c["DUEXTTAU"].chunks[0])
    print(f"  demo pair (eager, fine {dict(fine.sizes)}, coarse {coarse.sizes['time']} days): "
          f"{t1 - t0:.2f} s")
    print(f"  full pair (lazy, fine {tuple(lazy_f['DUEXTTAU'].shape)}): construction "
          f"{1e3 * (t2 - t1):.0f} ms; one 32-day coarse chunk {t4 - t3:.2f} s "
          f"(x {n_chunks} chunks for the whole coarse record)")


def table1(area: str, step: int, seed: int) -> None:
    grids = make_grids(area, resolve_window(area, "full", None))
    model = TruthModel(area, seed, grids)
    box = REGIONS[area]
    ci = (grids.coarse_lat >= box.lat_min) & (grids.coarse_lat <= box.lat_max)
    cj = (grids.coarse_lon >= box.lon_min) & (grids.coarse_lon <= box.lon_max)
    times = pd.date_range("2005-05-15", periods=763)[::step]
    fine, coarse = [], []
    for day in times:  # one day at a time: any subset of days gives the same numbers
        d = day_numbers([day])
        truth = model.log10_truth(d)
        fine.append(model.fine(d, truth)[0])
        coarse.append(model.coarse(d, truth)[0][np.ix_(ci, cj)])
    season = np.array([SEASONS[(m % 12) // 3] for m in times.month])
    for name, arr in (("G5NR", np.array(fine)), ("MERRA-2", np.array(coarse))):
        print(f"  {name:8s} " + " ".join(f"{s:>13s}" for s in STATS) + "   (synthetic / paper)")
        for k, s in enumerate(SEASONS):
            v = arr[season == s].ravel()
            ours = (v.mean(), v.std(), *np.quantile(v, [0.05, 0.5, 0.95]))
            cells = [f"{a:6.3f}/{b:4.2f}" for a, b in zip(ours, PAPER[(area, name)][k],
                                                          strict=True)]
            print(f"    {s}    " + " ".join(f"{c:>13s}" for c in cells))


def _r2_rmse(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    sse = ((truth - pred) ** 2).sum(axis=(1, 2))
    sst = ((truth - truth.mean(axis=(1, 2), keepdims=True)) ** 2).sum(axis=(1, 2))
    return float(np.mean(1 - sse / sst)), float(np.mean(np.sqrt(sse / truth[0].size)))


def skill_and_structure(area: str, seed: int) -> None:
    from statsmodels.tsa.stattools import pacf

    coarse, fine, elev = synthetic(area, seed=seed)
    y = np.log10(fine["DUEXTTAU"].values)
    bic = np.log10(regrid_like(coarse["DUEXTTAU"].sel(time=fine.time), fine,
                               method="cubic").values)
    elev_km = np.broadcast_to(regrid_like(elev, fine, method="mean").values / 1000.0, y.shape)
    yesterday = np.concatenate([y[:1], y[:-1]])
    n = y.shape[0]
    train, test = slice(1, int(0.8 * n)), slice(int(0.8 * n), n)

    def linear(features):
        a = np.stack([np.ones_like(y), *features], axis=-1)
        coef, *_ = np.linalg.lstsq(a[train].reshape(-1, a.shape[-1]), y[train].ravel(),
                                   rcond=None)
        return _r2_rmse(y[test], a[test] @ coef)

    rows = [("bicubic coarse (floor)", _r2_rmse(y[test], bic[test])),
            ("linear(bicubic)", linear([bic])),
            ("linear(bicubic, elevation)", linear([bic, elev_km])),
            ("oracle linear(bicubic, elevation, fine t-1)", linear([bic, elev_km, yesterday]))]
    print("  skill on test days (log10):      R2     RMSE")
    for name, (r2, rmse) in rows:
        print(f"    {name:44s} {r2:5.2f}  {rmse:6.3f}")

    # PACF within each season of each year (the paper's Season x Area split), averaged over the
    # 2001-2023 seasons of a 25-year fine record of the demo window: one 92-day season alone
    # gives PACF estimates with a standard error of about 0.1.
    _, long_fine, _ = synthetic(area, seed=seed, fine_start="2000-01-01", fine_days=9132)
    long_coarse = coarse.sel(lat=slice(fine.lat[0], fine.lat[-1]),
                             lon=slice(fine.lon[0], fine.lon[-1]))
    for name, ds in (("fine", long_fine), ("coarse", long_coarse)):
        series = np.log10(ds["DUEXTTAU"]).mean(("lat", "lon")).to_series()
        seasons = np.array([SEASONS[(m % 12) // 3] for m in series.index.month])
        for s in SEASONS:
            coefs = [pacf(series[(seasons == s) & (series.index.year == y)].to_numpy(),
                          nlags=4)[1:] for y in range(2001, 2024)]
            print(f"  PACF lags 1-4 of the regional mean, {name:6s} {s} (mean of 23 seasons): "
                  + " ".join(f"{c:5.2f}" for c in np.mean(coefs, axis=0)))

    lags = (1, 2, 4, 8, 16, 32)
    for name, arr in (("fine", y), ("bicubic coarse", bic)):
        gamma = [0.5 * np.mean((arr[:, :, k:] - arr[:, :, :-k]) ** 2) for k in lags]
        print(f"  semivariance at {lags} px: {name:15s} " + " ".join(f"{g:.4f}" for g in gamma))


def full_area_variogram(area: str, seed: int) -> None:
    from xdownscale.diagnostics.variogram import semivariogram

    coarse, fine, _ = synthetic(area, seed=seed, size="full")
    days = fine.time[(fine.time.dt.season == "JJA").values][::8]
    fine_days = fine.sel(time=days).load()
    coarse_days = coarse.sel(time=days).load()
    fields = {"fine": fine_days,
              "bicubic coarse": regrid_like(coarse_days, fine_days, method="cubic"),
              "coarse (native)": coarse_days}
    print(f"  semivariogram, full area, {days.size} JJA days, log10, spherical fit to 800 km:")
    for name, ds in fields.items():
        v = semivariogram(ds, n_pairs=20000, max_dist_km=800, n_bins=20, seed=seed)
        first = np.nanmin(v["gamma_mean"].values[:2])
        print(f"    {name:16s} first-bin gamma {first:.4f}  nugget {float(v['nugget']):.4f}  "
              f"sill {float(v['sill']):.4f}  range {float(v['range']):.0f} km")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", type=int, default=4, help="every n-th fine day for Table 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--areas", default="A1,A0")
    args = parser.parse_args()
    for area in args.areas.split(","):
        print(f"== {area} ==")
        timing(area)
        table1(area, args.step, args.seed)
        skill_and_structure(area, args.seed)
        full_area_variogram(area, args.seed)


if __name__ == "__main__":
    main()
