"""Peak memory of ``est.rollout`` for 30 and 365 days, in memory and into a zarr store.

A rollout keeps only an ``n_lags``-day history buffer and the current day in flight, so its
peak memory should not grow with the number of days: with ``store=`` each finished day is
written to zarr and dropped; without it only the result array grows (days x ny x nx
float32, printed below, a few MB for this window).

A tiny DDPM (``DownscaleConfig.fast()`` with 8/16/32-channel U-Nets, one epoch per stage) is
fitted for all four seasons, since a year-long rollout crosses them all, on the synthetic A1
demo window (64 x 64 fine pixels) with a 400-day G5NR period, and cached with
``Downscaler.save``. Each rollout (starting the day after the fine record, one member,
DDIM with ``--steps`` steps, default 5, since memory does not depend on the step count)
runs in a fresh subprocess so the peaks of different runs do not mix; the child reports its
resident memory after loading the model and the data (baseline), resets the kernel's
high-water mark, and reports the high-water mark after the rollout (peak: the rollout's own,
not the loading's), and the rollout's wall time. The whole coarse record (2005-2007) is passed to every
run, so only the rollout length differs between rows.

Run::

    python benchmarks/bench_rollout_memory.py --cache /tmp/xds-bench/rollout

About 10 minutes on 2 CPU cores (fitting ~2, the four rollouts the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import cached_fit, current_mb, peak_mb, reset_peak

VAR = "DUEXTTAU"
FINE_START = "2005-01-01"


def load_pair(args):
    import xdownscale

    # The coarse record must cover the longest rollout after the fine record ends.
    return xdownscale.datasets.synthetic(area="A1", seed=args.seed, coarse_start=FINE_START,
                                         coarse_end="2007-12-31", fine_start=FINE_START,
                                         fine_days=args.fine_days)


def model_path(args) -> Path:
    return Path(args.cache) / f"tiny_ddpm_A1_{args.fine_days}d_seed{args.seed}"


def fit_if_needed(args) -> None:
    import torch

    from xdownscale import DownscaleConfig

    torch.set_num_threads(args.threads)

    def fit():
        coarse, fine, elev = load_pair(args)
        cfg = DownscaleConfig.fast(small_widths=(8, 16, 32), large_widths=(8, 16, 32),
                                   small_epochs=1, epochs=1, small_max_days=40,
                                   patches_per_day=32, seed=args.seed, verbose=False)
        return coarse.downscale.fit(fine, elevation=elev, model="ddpm", config=cfg)

    cached_fit(model_path(args), fit, "tiny DDPM, all four seasons")


def child(args) -> dict:
    """Runs in a fresh process: one rollout of args.days days, with or without a store."""
    import torch

    from xdownscale import Downscaler

    torch.set_num_threads(args.threads)
    est = Downscaler.load(model_path(args))
    coarse, fine, _ = load_pair(args)
    start = pd.Timestamp(fine["time"].values[-1]) + pd.Timedelta(days=1)
    end = start + pd.Timedelta(days=args.days - 1)
    baseline = current_mb()  # resident now, model and data loaded
    reset = reset_peak()
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "rollout.zarr") if args.store else None
        t0 = time.perf_counter()
        out = est.rollout(coarse, history=fine, start=start, end=end, store=store,
                          sampler="ddim", steps=args.steps)
        n = int(out.sizes["time"])
        finite = bool(out[VAR].isel(time=-1).notnull().any())  # the last day was produced
        seconds = time.perf_counter() - t0
        peak = peak_mb()
    return {"days": n, "store": bool(args.store), "seconds": seconds, "baseline": baseline,
            "peak": peak, "reset": reset, "finite": finite, "start": str(start.date()), "end": str(end.date()),
            "day_mb": est.lat_.size * est.lon_.size * 4 / 2**20}


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache", help="folder for the fitted model")
    p.add_argument("--lengths", type=int, nargs="+", default=[30, 365])
    p.add_argument("--fine-days", type=int, default=400)
    # Memory does not depend on the step count; few steps keep a 365-day run to minutes.
    p.add_argument("--steps", type=int, default=5, help="DDIM steps per day")
    p.add_argument("--seed", type=int, default=0)
    # One thread by default: on a shared 2-core machine, 2 OpenMP threads of small convolutions
    # spin at every barrier against other jobs (measured 24x slower than 1 thread under load).
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--days", type=int, help=argparse.SUPPRESS)
    p.add_argument("--store", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return None
    fit_if_needed(args)
    rows = []
    common = ["--cache", args.cache, "--fine-days", str(args.fine_days), "--seed",
              str(args.seed), "--threads", str(args.threads), "--steps", str(args.steps)]
    for store in (False, True):
        for days in args.lengths:
            cmd = [sys.executable, __file__, "--child", "--days", str(days), *common]
            cmd += ["--store"] if store else []
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            assert r["finite"], "the rollout's last day is empty"
            how = "VmHWM reset after loading" if r["reset"] else "ru_maxrss, incl. loading"
            rows.append({"store": "zarr" if store else "memory", "days": r["days"],
                         "seconds": r["seconds"], "s_per_day": r["seconds"] / r["days"],
                         "baseline_mb": r["baseline"], "peak_mb": r["peak"],
                         "growth_mb": r["peak"] - r["baseline"],
                         "result_mb": r["days"] * r["day_mb"] if not store else 0.0})
            print(f"  {rows[-1]['store']:6s} {r['days']:4d} days: {r['seconds']:6.1f} s, peak "
                  f"{r['peak']:.0f} MB ({r['start']} .. {r['end']})", flush=True)
    df = pd.DataFrame(rows)
    print(f"\nrollout of a tiny DDPM, synthetic A1 demo window (64 x 64), DDIM-{args.steps}, "
          f"1 member, {args.threads} threads, load average {os.getloadavg()[0]:.1f}; "
          f"each row a fresh process; peak = {how}, baseline = RSS after loading")
    print(df.to_string(index=False, float_format="{:.1f}".format))
    lo, hi = min(args.lengths), max(args.lengths)
    for store, g in df.groupby("store", sort=False):
        g = g.set_index("days")
        change = 100 * (g.loc[hi, "peak_mb"] / g.loc[lo, "peak_mb"] - 1)
        print(f"{store}: peak {g.loc[lo, 'peak_mb']:.0f} MB at {lo} days -> "
              f"{g.loc[hi, 'peak_mb']:.0f} MB at {hi} days ({change:+.1f} %, "
              f"{'flat' if abs(change) <= 15 else 'NOT flat'} within 15 %)")
    return df


if __name__ == "__main__":
    main()
