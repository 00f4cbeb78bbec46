"""Tile inference against the paper's patches, and few-step samplers: skill and time.

The shipped demo pair (``xdownscale.datasets.synthetic()``, A1, 64 x 64 fine pixels) with a
``DownscaleConfig.fast()`` DDPM and U-Net, season JJA, fitted once and cached under
``--cache`` (``_common.cached_fit``). Every row predicts the JJA test days with the *same*
fitted model; only how a day is cut changes:

* ``patches s2``: 16 x 16 patches at stride 2, halo 4 (the paper; 625 patches a day);
* ``tiles T/H/O``: tiles of T pixels, halo H, neighbouring cores overlapping by O pixels
  (``tile``, ``tile_halo``, ``tile_overlap``; T = 64 is the whole demo image, so one tile).

(a) DDPM with DDIM-20 and the U-Net, patches against tiles; (b) DDIM and DPM-Solver++ at
4-10 steps on the default tiles. Scores from ``pred.dustdiag.skill(truth)``, log10 space, mean
over days: R², RMSE, fair CRPS of ``--members`` members and the spread-skill ratio (DDPM
only); ``seam``: the mean jump of one member's log10 error across the tiles' core edges over
its mean jump between any two neighbouring pixels (about 1 without seams). s/day: wall
seconds of ``est.predict`` per day (all members), ``--threads`` threads.

With ``--bed NAME --skill-cache DIR`` the same rows for a test-bed of ``tests/testbeds.py``
(or ``--bed demo``), with the fits of ``bench_skill.py --cache DIR`` (fitted there when
missing). ``--patches 2,4`` adds patch rows at other strides (the first is the reference).
``--calibrate``: before scoring, each layout's spread factor is fitted on the first ``--days``
validation days *with that layout* (``Downscaler.calibrate``'s rule), so CRPS compares
calibrated ensembles, as ``fit`` ships them; the factor and the validation spread/skill
ratio are printed. ``--member-shift off`` cuts every member on the same pieces (the
behaviour before ``DownscaleConfig.member_shift``; ``on``, the default, is today's).

Run::

    python benchmarks/bench_tiles.py --cache /tmp/xds-bench-tiles
    python benchmarks/bench_tiles.py --bed base --skill-cache .bench-cache/max840 \
        --set max_steps=840 --models ddpm --skip b --calibrate --patches 2,4 \
        --tiles 24/4/4,24/4/8 --days 8

The stride-2 DDPM patch rows are nearly all of the time (625 patches x steps x members a
day). Measured on 2 shared CPU cores: ``--models ddpm --members 2 --days 3 --a-steps 10
--skip b`` 17 min at a load average of 11; ``--models ddpm --members 4 --days 6 --skip a``
12 min at 11; ``--models unet --days 100 --skip b`` 15 s at 2. Fitting both models the
first time took 66 min at a load average of 10 (cached afterwards).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import cached_fit, load_pair, parse_overrides, skill_fit

from xdownscale import DownscaleConfig

VAR = "DUEXTTAU"


def fit_or_load(args, model, coarse, fine, elev):
    if args.skill_cache is None:
        def fit():
            cfg = DownscaleConfig.fast(seed=args.seed, verbose=False)
            return coarse.downscale.fit(fine, elevation=elev, model=model, config=cfg,
                                        seasons=[args.season])

        path = Path(args.cache) / f"{model}_A1_{args.season}_seed{args.seed}"
        return cached_fit(path, fit, f"the {model}")[0]
    overrides, tag = parse_overrides(args.set)
    return skill_fit(args.skill_cache, args.bed, args.season, model, (coarse, fine, elev),
                     seed=args.seed, overrides=overrides, tag=tag)[0]


def seam_ratio(error: np.ndarray, cfg, inference: str) -> float:
    """Mean |step| of ``error`` (time, y, x) across the pieces' core edges over its mean
    |step| everywhere: about 1 without seams; a piece-wise offset makes it larger. For
    patches at a stride below the core every pixel is near some edge, so about 1."""
    from xdownscale.predict.day import piece_layout
    from xdownscale.tiling.patches import patch_starts

    ny, nx = error.shape[-2:]
    side, stride, halo = piece_layout(cfg, (ny, nx), inference)
    if side >= min(ny, nx):
        return float("nan")
    steps, at = [], []
    for axis, n in ((-1, nx), (-2, ny)):
        starts = np.unique(patch_starts((n, n), patch=side, stride=stride)[:, 0])
        edges = {s + halo for s in starts if s > 0} | {s + side - halo for s in starts
                                                         if s + side < n}
        d = np.abs(np.diff(error, axis=axis))
        steps.append(d.ravel())
        at.append(np.take(d, [e - 1 for e in sorted(edges)], axis=axis).ravel())
    return float(np.concatenate(at).mean() / np.concatenate(steps).mean())


def run(est, coarse, fine, days, *, inference, tile, halo, members, sampler="ddim", steps=20,
        overlap=0, stride=2, calibrate_on=None, member_shift=True):
    """Scores and seconds per day of one way of predicting; with ``calibrate_on`` (days) the
    spread factor is first fitted on those days with the same way (``factor``, ``ssr_val``)."""
    from xdownscale.estimator.stages import calibrate_spread

    cfg0, spread0 = est.config_, dict(est.spread_)
    est.config_ = cfg0.replace(infer_stride=stride, tile=tile, tile_halo=halo,
                               tile_overlap=overlap, inference=inference,
                               member_shift=member_shift)
    row = {}
    try:
        if calibrate_on is not None and members > 1:
            season = est.seasons_[0]
            rep = calibrate_spread(est, coarse, fine, days=calibrate_on, members=members)
            row.update(factor=rep[season]["factor"], ssr_val=rep[season]["ssr"])
        t0 = time.perf_counter()
        kw = dict(members=members, sampler=sampler, steps=steps, keep_members=members > 1)
        pred = est.predict(coarse.sel(time=days), history=fine, inference=inference, **kw)
        if members > 1:
            pred = pred[f"{VAR}_members"].rename(VAR)
        pred = pred.load()
        seconds = (time.perf_counter() - t0) / len(days)
        one = pred.isel(member=0) if "member" in pred.dims else pred[VAR]
        error = np.log10(one.transpose("time", ...).values) - np.log10(
            fine[VAR].sel(time=days).values)
        seam = seam_ratio(error, est.config_, inference)
    finally:
        est.config_, est.spread_ = cfg0, spread0
    sk = pred.dustdiag.skill(fine[VAR].sel(time=days), spaces=("log10",)).sel(space="log10")
    row.update(r2=float(sk["r2"].mean()), rmse=float(sk["rmse"].mean()), seam=seam,
               s_day=seconds)
    if "crps" in sk:
        row.update(crps=float(sk["crps"].mean()), ssr=float(sk["ssr"].mean()))
    return row


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache", help="folder for the fitted models")
    p.add_argument("--bed", default=None, help="a test-bed (or 'demo'); needs --skill-cache")
    p.add_argument("--skill-cache", default=None,
                   help="bench_skill.py's --cache: score its fits (fitted there if missing)")
    p.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                   help="the overrides bench_skill.py fitted with (--skill-cache)")
    p.add_argument("--patches", default="2", help="patch strides; the first is the reference")
    p.add_argument("--member-shift", choices=("on", "off"), default="on",
                   help="cut each member on its own shift of the layout (member_shift)")
    p.add_argument("--calibrate", action="store_true",
                   help="fit each layout's spread factor on --days validation days first")
    p.add_argument("--season", default="JJA")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--days", type=int, default=6, help="JJA test days (default 6)")
    p.add_argument("--tiles", default="16/4/3,24/4/4,24/4/8,32/4/0,64/4/0",
                   help="tile/halo/overlap layouts to compare with patches")
    p.add_argument("--steps", default="4,6,10", help="few-step sampler budgets (part b)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip", default="", help="parts to skip: a, b")
    p.add_argument("--models", default="ddpm,unet", help="models of part (a)")
    p.add_argument("--a-steps", type=int, default=20, help="DDIM steps of part (a)")
    args = p.parse_args(argv)
    if (args.bed is None) != (args.skill_cache is None):
        p.error("--bed and --skill-cache go together (the shipped pair alone: neither)")
    torch.set_num_threads(args.threads)
    coarse, fine, elev = load_pair(args.bed, seed=args.seed)
    models = {m: fit_or_load(args, m, coarse, fine, elev) for m in args.models.split(",")}
    first = next(iter(models.values()))
    days = pd.DatetimeIndex(first.test_days_[args.season])[: args.days]
    plan = first.plans_[args.season]
    val = pd.DatetimeIndex(plan.val if plan.val.size else plan.holdout)[: args.days]
    strides = [int(v) for v in args.patches.split(",") if v]
    ref_name = f"patches s{strides[0]}"
    tiles = [tuple(int(v) for v in t.split("/")) for t in args.tiles.split(",") if t]
    print(f"{args.bed or 'demo'} (seed {args.seed}): "
          f"{len(days)} {args.season} test days ({days[0].date()} .. {days[-1].date()}), "
          f"{args.members} DDPM members (member_shift {args.member_shift}), "
          f"{args.threads} thread(s), load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    if "a" not in args.skip:
        for model, est in models.items():
            members = args.members if model == "ddpm" else 1
            ways = ([("patches", 16, 4, 0, s) for s in strides]
                    + [("tiles", *t, 2) for t in tiles])
            for inference, tile, halo, overlap, stride in ways:
                r = run(est, coarse, fine, days, inference=inference, tile=tile, halo=halo,
                        members=members, steps=args.a_steps, overlap=overlap, stride=stride,
                        calibrate_on=val if args.calibrate else None,
                        member_shift=args.member_shift == "on")
                name = (f"patches s{stride}" if inference == "patches"
                        else f"tiles {tile}/{halo}/{overlap}")
                rows.append({"part": "a", "model": model, "inference": name,
                             "sampler": f"ddim-{args.a_steps}" if model == "ddpm" else "-",
                             **r})
                print(f"  {model} {name:14s} R2 {r['r2']:.4f} CRPS {r.get('crps', np.nan):.4f} "
                      f"seam {r['seam']:.2f} {r['s_day']:.2f} s/day", flush=True)
    if "b" not in args.skip:
        default = DownscaleConfig()
        tile, halo, overlap = default.tile, default.tile_halo, default.tile_overlap
        budgets = [int(s) for s in args.steps.split(",") if s]
        for sampler, steps in ([("ddim", 20)] + [(s, n) for s in ("ddim", "dpmsolver")
                                                 for n in budgets]):
            r = run(models["ddpm"], coarse, fine, days, inference="tiles", tile=tile, halo=halo,
                    members=args.members, sampler=sampler, steps=steps, overlap=overlap,
                    member_shift=args.member_shift == "on")
            rows.append({"part": "b", "model": "ddpm", "inference": f"tiles {tile}",
                         "sampler": f"{sampler}-{steps}", **r})
            print(f"  {sampler}-{steps} R2 {r['r2']:.4f} CRPS {r['crps']:.4f} "
                  f"{r['s_day']:.2f} s/day", flush=True)
    df = pd.DataFrame(rows)
    fmt = {"float_format": "{:.4f}".format, "index": False}
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end (other jobs inflate s_day)")
    for part, g in df.groupby("part"):
        print(f"\n({part})")
        print(g.drop(columns="part").to_string(**fmt))
    a = df[df.part == "a"]
    for model, g in a.groupby("model", sort=False):
        ref = g[g.inference == ref_name].iloc[0]
        for _, r in g[g.inference != ref_name].iterrows():
            crps = (f", CRPS {100 * (r.crps / ref.crps - 1):+.2f} %" if "crps" in r and
                    np.isfinite(r.crps) else "")
            print(f"{model} {r.inference} vs {ref_name}: R2 {r.r2 - ref.r2:+.4f}{crps}, "
                  f"time x{r.s_day / ref.s_day:.3f}")
    return df


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
