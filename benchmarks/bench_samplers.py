"""Samplers and patch fusion: skill, ensemble calibration and speed of one fitted DDPM.

One conditional DDPM (``DownscaleConfig.fast()``, season JJA, the synthetic A1 demo pair:
64 x 64 fine pixels, stride 4 at inference, 169 patches a day) is fitted once and cached with
``Downscaler.save`` under ``--cache``, so reruns skip training. It is then sampled on the JJA
test days with DDPM ancestral sampling over all T = 1000 steps (the paper), DDIM with 10, 20
and 50 steps (eta 0) and second-order DPM-Solver++ with 20 steps, each with the patches fused
once after sampling (``posthoc``, the paper) and at every denoising step (``per_step``).

Every row is an ensemble of ``--members`` members. Scores per day, mean over days:

* R², RMSE: log10 space, on the log10 ensemble mean (R² = 1 - SSE/SST);
* CRPS: fair ensemble CRPS (Ferro 2014) of the members, in log10 space and in data units;
* SSR: spread-skill ratio sqrt((m+1)/m) * spread / RMSE in log10 space (1 = calibrated);
* s/day: wall-clock seconds of ``est.predict`` per day (all members), ``--threads`` threads.

DDPM-1000 costs 50-100x a DDIM row, so it runs on the first ``--ddpm-days`` test days only;
every row is also scored on that common subset, where all rows are comparable. Bicubic
interpolation of the coarse field is printed as the floor. The recommendation line is
computed from the table: the fewest steps (then the fastest) whose CRPS is within
``--tolerance`` of the best CRPS on all test days.

Run::

    python benchmarks/bench_samplers.py --cache /tmp/xds-bench-samplers

About 110 minutes on 2 CPU cores (measured 108 min, 2.5 of them fitting, with another job
running): the two DDPM-1000 rows take 75 of them. ``--ddpm-days 1 --members 2`` cuts that
to about a quarter.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import cached_fit

import xdownscale
from xdownscale import DownscaleConfig, Downscaler
from xdownscale.data.regrid import regrid_like

VAR = "DUEXTTAU"
# (sampler, steps): DDPM over the trained T, DDIM at three budgets, one higher-order solver.
SAMPLERS = [("ddpm", 1000), ("ddim", 10), ("ddim", 20), ("ddim", 50), ("dpmsolver", 20)]


def fit_or_load(args, coarse, fine, elev) -> tuple[Downscaler, float]:
    """The fitted model from the cache, or fit it and write the cache (fit seconds, 0 if read)."""
    def fit():
        cfg = DownscaleConfig.fast(seed=args.seed, verbose=False)
        return coarse.downscale.fit(fine, elevation=elev, model="ddpm", config=cfg,
                                    seasons=[args.season])

    path = Path(args.cache) / f"ddpm_{args.area}_{args.season}_seed{args.seed}"
    return cached_fit(path, fit, "the DDPM")


def scores(pred, truth) -> pd.DataFrame:
    """Per-day scores of an ensemble DataArray (member, time, lat, lon) against the truth."""
    sk = xdownscale.diagnostics.skill(pred, truth, spaces=("log10", "data"))
    log, data = sk.sel(space="log10"), sk.sel(space="data")
    return pd.DataFrame({
        "r2": log["r2"].values, "rmse": log["rmse"].values, "crps": log["crps"].values,
        "crps_data": data["crps"].values, "ssr": log["ssr"].values,
    }, index=pd.DatetimeIndex(sk["time"].values))


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache", help="folder for the fitted model")
    p.add_argument("--season", default="JJA")
    p.add_argument("--area", default="A1")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--days", type=int, default=None, help="test days for the fast samplers "
                   "(default: all)")
    p.add_argument("--ddpm-days", type=int, default=3, help="test days for DDPM-1000")
    p.add_argument("--tolerance", type=float, default=0.01, help="relative CRPS tolerance of "
                   "the recommendation")
    p.add_argument("--seed", type=int, default=0)
    # One thread by default: on a shared 2-core machine, 2 OpenMP threads of small convolutions
    # spin at every barrier against other jobs (measured 24x slower than 1 thread under load).
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    coarse, fine, elev = xdownscale.datasets.synthetic(area=args.area, seed=args.seed)
    est, _ = fit_or_load(args, coarse, fine, elev)

    days = pd.DatetimeIndex(est.test_days_[args.season])
    days = days[: args.days] if args.days else days
    common = days[: args.ddpm_days]
    ddpm = f"DDPM-{dict(SAMPLERS)['ddpm']}"
    truth = fine[VAR].sel(time=days)
    bic = regrid_like(coarse[VAR].sel(time=days), fine[VAR].isel(time=0, drop=True))
    bic_sk = xdownscale.diagnostics.skill(bic, truth, spaces=("log10",)).sel(space="log10")
    bic_day = pd.DataFrame({"r2": bic_sk["r2"].values, "rmse": bic_sk["rmse"].values},
                           index=days)
    print(f"{len(days)} JJA test days ({days[0].date()} .. {days[-1].date()}), "
          f"{ddpm} on the first {len(common)}, {args.members} members, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}", flush=True)

    per_day, rows = {}, []
    for sampler, steps in SAMPLERS:
        run_days = common if sampler == "ddpm" else days
        for fusion in ("posthoc", "per_step"):
            t0 = time.perf_counter()
            pred = est.predict(coarse.sel(time=run_days), history=fine, members=args.members,
                               sampler=sampler, steps=steps, fusion=fusion, keep_members=True)
            members = pred[f"{VAR}_members"].load().rename(VAR)
            s_day = (time.perf_counter() - t0) / len(run_days)
            sc = scores(members, truth.sel(time=run_days))
            per_day[(sampler, steps, fusion)] = sc
            rows.append({"sampler": sampler, "steps": steps, "fusion": fusion,
                         "days": len(run_days), "s_day": s_day, **sc.mean().to_dict(),
                         **{f"{k}_common": v for k, v in sc.loc[common].mean().items()}})
            print(f"  {sampler:9s} {steps:4d} {fusion:8s} {len(run_days):3d} days "
                  f"{s_day:7.2f} s/day  CRPS {sc['crps'].mean():.4f}", flush=True)

    df = pd.DataFrame(rows)
    fmt = {"float_format": "{:.4f}".format, "index": False}
    floor = bic_day.mean()
    floor_c = bic_day.loc[common].mean()
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (other jobs inflate s_day)")
    print(f"\nsynthetic {args.area} demo pair, {args.season} test days, seed {args.seed}; "
          "R2/RMSE/CRPS/SSR in log10 space, crps_data in AOD units")
    print(f"\n(a) each row on its own days ({ddpm}: {len(common)}, others: {len(days)})")
    print(df[["sampler", "steps", "fusion", "days", "s_day", "r2", "rmse", "crps", "crps_data",
              "ssr"]].to_string(**fmt))
    print(f"bicubic floor on the {len(days)} days: R2 {floor.r2:.4f}, RMSE {floor.rmse:.4f}")
    print(f"\n(b) every row on the common {len(common)} days: "
          f"{', '.join(str(d.date()) for d in common)}")
    common_cols = ["r2", "rmse", "crps", "crps_data", "ssr"]
    view = df[["sampler", "steps", "fusion", "s_day"]
              + [f"{c}_common" for c in common_cols]].rename(
        columns={f"{c}_common": c for c in common_cols})
    print(view.to_string(**fmt))
    print(f"bicubic floor on the {len(common)} days: R2 {floor_c.r2:.4f}, "
          f"RMSE {floor_c.rmse:.4f}")

    # Per-step fusion against post-hoc, sampler by sampler: the default is chosen on these.
    print("\n(c) per_step vs posthoc, same sampler and days: CRPS change and time ratio")
    for (sampler, steps), g in df.groupby(["sampler", "steps"], sort=False):
        post, step = g.set_index("fusion").loc["posthoc"], g.set_index("fusion").loc["per_step"]
        print(f"  {sampler:9s} {steps:4d}: CRPS {100 * (step.crps / post.crps - 1):+6.2f} %, "
              f"R2 {step.r2 - post.r2:+.4f}, time x{step.s_day / post.s_day:.2f}")

    # Recommendation on the rows that ran on every test day (a 3-day subset is too noisy to
    # rank on); DDPM-1000 is then compared with it on the common days.
    full = df[df.days == len(days)]
    best = full.crps.min()
    ok = full[full.crps <= best * (1 + args.tolerance)].sort_values(["steps", "s_day"])
    rec = ok.iloc[0]
    ref = df[(df.sampler == "ddpm") & (df.fusion == rec.fusion)].iloc[0]
    print(f"\nrecommendation: {rec.sampler}-{rec.steps} with {rec.fusion} fusion: fewest steps "
          f"within {100 * args.tolerance:g} % of the best CRPS on {len(days)} days "
          f"({rec.crps:.4f} vs {best:.4f}), {rec.s_day:.2f} s/day; on the common "
          f"{len(common)} days {ddpm} ({rec.fusion}) has CRPS {ref.crps_common:.4f} vs "
          f"{rec.crps_common:.4f} at {ref.s_day / rec.s_day:.0f}x the time")
    return df


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
