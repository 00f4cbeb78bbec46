"""A year-long rollout against the fine/coarse envelopes (the paper's out-of-data checks).

A tiny DDPM (``DownscaleConfig.fast()`` with 8/16/32-channel U-Nets, one epoch per stage, 32
patches a day; DDIM with ``--steps`` steps at inference), fitted for all four seasons since a year
crosses them all, on the synthetic A1 demo window (64 x 64 fine pixels) with a 400-day fine
record from 2005-01-01, is rolled out for ``--days`` days from the day after the fine record,
with and without ``coarse_consistency``. ``xdownscale.diagnostics.ood_checks`` then cuts the
rollout, the fine record and the coarse record (regridded bicubically, 2005-01-01 to the end
of the rollout) into season blocks and tells, per rolled-out block, whether its semivariogram
sill, lag-1 ACF and lag-1 image R² lie in the season's envelope of the two records. The
fine truth of the rolled-out days (the synthetic generator with a longer fine record) is checked
the same way, as a perfect rollout would be, and each rollout's statistics are printed minus
the truth's.

Run::

    python benchmarks/bench_rollout_envelopes.py --cache /tmp/xds-bench/rollout --out /tmp/xds-bench/envelopes

The tiny model is the one ``bench_rollout_memory.py`` caches (same path and settings), so
either script reuses the other's fit. ``--config fast`` fits ``DownscaleConfig.fast()`` as
shipped instead (22 minutes of fit on 2 shared cores, 4 minutes per 365-day rollout; the table
is in the rollout guide). Measured 28 minutes on 2 shared CPU cores at a load
average of 10 (2 fitting, 12 per rollout, under a minute per check; 4.5 CPU minutes in all).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch
from _common import cached_fit

import xdownscale
from xdownscale import DownscaleConfig
from xdownscale.data.regrid import regrid_like
from xdownscale.diagnostics.ood import ood_checks, plot_ood_checks

VAR = "DUEXTTAU"
FINE_START = "2005-01-01"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache")
    p.add_argument("--out", default=None)
    p.add_argument("--fine-days", type=int, default=400)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--n-pairs", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--config", choices=["tiny", "fast"], default="tiny",
                   help="tiny: the one-epoch model of bench_rollout_memory.py; fast: "
                   "DownscaleConfig.fast() as shipped (validation and spread calibration off)")
    p.add_argument("--demo", action="store_true",
                   help="the shipped demo pair as it is (763 fine days from 2005-05-15, coarse "
                   "from 2000) instead of the 400-day record from 2005-01-01")
    p.add_argument("--ref-start", default=None,
                   help="first day of the coarse record in the envelopes (default: the first "
                   "fine day; the paper's envelopes span the whole MERRA-2 record)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.demo:
        coarse, fine, elev = xdownscale.datasets.synthetic(area="A1", seed=args.seed)
        args.fine_days = fine.sizes["time"]
    else:
        coarse, fine, elev = xdownscale.datasets.synthetic(
            area="A1", seed=args.seed, coarse_start=FINE_START, coarse_end="2007-12-31",
            fine_start=FINE_START, fine_days=args.fine_days)
    ref_start = pd.Timestamp(args.ref_start or fine["time"].values[0])

    def fit():
        if args.config == "tiny":  # the settings of bench_rollout_memory.py
            cfg = DownscaleConfig.fast(small_widths=(8, 16, 32), large_widths=(8, 16, 32),
                                       small_epochs=1, epochs=1, small_max_days=40,
                                       patches_per_day=32, seed=args.seed, verbose=False)
        else:  # one member is rolled out: the spread factor would not enter
            cfg = DownscaleConfig.fast(seed=args.seed, verbose=False, validation=False,
                                       calibrate_spread=False)
        return coarse.downscale.fit(fine, elevation=elev, model="ddpm", seasons=None,
                                    config=cfg)

    path = Path(args.cache) / (f"{args.config}_ddpm_A1_{'demo' if args.demo else ''}"
                               f"{args.fine_days}d_seed{args.seed}")
    est, fit_s = cached_fit(path, fit, f"the {args.config} DDPM")
    start = pd.Timestamp(fine["time"].values[-1]) + pd.Timedelta(days=1)
    end = start + pd.Timedelta(days=args.days - 1)
    ref = regrid_like(coarse[VAR].sel(time=slice(ref_start, end)),
                      fine[VAR].isel(time=0, drop=True))
    # The pair is synthetic, so the fine truth of the rolled-out days exists: the same generator
    # with a longer fine record (same seed: the same numbers on the days both cover). Checked
    # like a rollout, it says what a perfect model would score against the envelopes.
    _, longer, _ = xdownscale.datasets.synthetic(
        area="A1", seed=args.seed, coarse_start=coarse["time"].values[0],
        coarse_end=coarse["time"].values[-1], fine_start=fine["time"].values[0],
        fine_days=args.fine_days + args.days)
    if not longer[VAR].isel(time=slice(0, args.fine_days)).equals(fine[VAR]):
        raise RuntimeError("the longer synthetic fine record does not repeat the fine record")
    truth = longer.sel(time=slice(start, end))
    tables, checks = {}, {}
    t0 = time.perf_counter()
    checks["truth"] = ood_checks(truth, fine, ref, n_pairs=args.n_pairs)
    print(f"truth: the fine truth of {start.date()}..{end.date()} checked like a rollout "
          f"{time.perf_counter() - t0:.0f} s; " + ", ".join(
              f"inside_{k}={checks['truth'].attrs[f'inside_{k}']}" for k in ("sill", "acf1", "lag1_r2")))
    for name, cc in (("no step", False), ("coarse consistency", True)):
        t0 = time.perf_counter()
        roll = est.rollout(coarse, history=fine, start=start, end=end, steps=args.steps,
                           seed=args.seed, coarse_consistency=cc, drift_threshold=None)
        t_roll = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = ood_checks(roll, fine, ref, n_pairs=args.n_pairs)
        t_chk = time.perf_counter() - t0
        checks[name] = res
        print(f"{name}: rollout {start.date()}..{end.date()} {t_roll:.0f} s, checks {t_chk:.0f} s; "
              + ", ".join(f"inside_{k}={res.attrs[f'inside_{k}']}" for k in
                          ("sill", "acf1", "lag1_r2")))
    cols = ["sill", "acf1", "lag1_r2", "sill_inside", "acf1_inside", "lag1_r2_inside"]
    for name, res in checks.items():
        df = res[cols].to_dataframe()
        tables[name] = df[df["product"] == "rollout"].drop(columns=["product"])
    env = checks["no step"]
    print(f"\nfit {fit_s:.0f} s (0 = cached); envelopes from the fine record "
          f"{pd.Timestamp(fine.time.values[0]).date()}..{pd.Timestamp(fine.time.values[-1]).date()}"
          f" and the coarse record {ref_start.date()}..{end.date()}")
    print("\nenvelopes (season, reference: lower..upper)")
    for stat in ("sill", "acf1", "lag1_r2"):
        e = env[f"{stat}_envelope"].to_dataframe(name=stat)[stat].unstack("bound")
        print(f"-- {stat}\n{e.round(3).to_string()}")
    for name, df in tables.items():
        what = ("the fine truth of the rolled-out days" if name == "truth"
                else f"rolled-out blocks, {name}")
        print(f"\n{what}\n" + df.reset_index(drop=True).to_string(
            index=False, float_format="{:.3f}".format))
    stats = ["sill", "acf1", "lag1_r2"]
    for name in ("no step", "coarse consistency"):
        diff = tables[name][stats].values - tables["truth"][stats].values
        print(f"\n{name} minus the truth, per block (" + ", ".join(tables[name]["season"])
              + "): " + "; ".join(f"{s} " + " ".join(f"{v:+.3f}" for v in diff[:, i])
                                 for i, s in enumerate(stats)))
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, res in checks.items():
            tag = name.replace(" ", "_")
            axes = plot_ood_checks(res)
            axes[0].figure.savefig(out / f"envelopes_{tag}.png", dpi=110, bbox_inches="tight")
            tables[name].to_csv(out / f"envelopes_{tag}.csv")
    return tables


if __name__ == "__main__":
    main()
