"""Ensemble calibration and member texture of the DDPM per sampling setting (issue 13).

One conditional DDPM and one deterministic U-Net (both ``DownscaleConfig.fast()``, season
JJA, the synthetic A1 demo pair: 64 x 64 fine pixels) are fitted once and cached with
``Downscaler.save`` under ``--cache``. The DDPM is then sampled on the JJA test days with
``--members`` members for each sampling setting ``sampler:steps:eta:fusion[:stride]``: DDIM
with eta 0, 0.5 and 1 (0: deterministic given the initial noise, 1: DDPM-like), the ancestral
DDPM sampler at few steps (trailing spacing, so 10 steps start from t = T - 1 like DDIM), 10
and 20 steps, patches fused once after sampling (``posthoc``) or at every step
(``per_step``), and optionally another inference stride (the fast config's is 4). Eta and
stride are set on the fitted estimator's ``config_`` for the run (``predict`` takes neither).

Printed per setting, all in log10 space on the test days:

* ``lssr``: spread/skill ratio sqrt((m+1)/m mean s² / MSE of the ensemble mean), pooled over
  days and pixels (:func:`xdownscale.diagnostics.spread_skill`; 1 = calibrated);
* ``fcrps`` / ``crps``: fair / standard ensemble CRPS, mean over days
  (:func:`xdownscale.diagnostics.skill`), against the U-Net's ``unet MAE`` (printed above);
* ``rh_out``: rank-histogram outer-rank frequency / flat (1 flat, > 1 too little spread) and
  ``rh_delta``: chi² / m against flat (pixels are correlated, so only compare rows);
* ``sv1``: member 0's semivariance at the shortest lag (pairs < 10 km, neighbouring pixels;
  :func:`xdownscale.diagnostics.semivariogram`) over the truth's, and ``sv3`` up to 30 km;
* ``ps_hi``: member 0's mean power in the shortest quarter of wavelengths (about 14-18 km)
  over the truth's (:func:`xdownscale.diagnostics.power_spectrum`);
* ``s_day``: wall-clock seconds of ``est.predict`` per day (all members, ``--threads``).

It also prints, per stride, the factor by which post-hoc halo + Hann stitching would shrink
the pixel variance if the overlapping patch samples were independent (sum w² / (sum w)² averaged
over interior pixels), to set beside the measured ``sv1`` change between strides.

Run::

    python benchmarks/bench_ensembles.py --cache /tmp/xds-bench-ens            # all settings
    python benchmarks/bench_ensembles.py --cache /tmp/xds-bench-ens --quick    # a few minutes
    python benchmarks/bench_ensembles.py --bed base --skill-cache DIR  # bench_skill.py's fits
    python benchmarks/bench_ensembles.py --config default --predictions DIR  # its members

``--predictions DIR`` scores the members ``bench_skill.py --save-predictions DIR`` sampled
(the fit as shipped: its calibrated spread) beside its U-Net's prediction, one row and the
issue's bar, with no sampling here: for the default configuration on a CPU, where a day's
eight members cost minutes.

Members are cut on shifted layouts (``DownscaleConfig.member_shift``) unless
``--member-shift off``; fits saved before that field would otherwise load with one layout.

Measured (2 shared CPU cores, 1 torch thread, load average 10-13 from other jobs)
---------------------------------------------------------------------------------
``--quick`` (the first 9 rows: 9 settings, the first 2 JJA test days 2006-08-30/31, 8 members,
seed 0): 29 min wall, 6 min CPU (320 s user + 42 s system) with both models cached; the last
row, ``--days 2 --settings ddim:10:0:posthoc:2``: 7 min wall, 2.7 min CPU. Fitting the two
models first took 11 min (DDPM) and 27 min (U-Net) wall at that load. The U-Net's MAE is
0.1202, its sv1 0.96 and ps_hi 0.90. ``s_day`` is wall time (about 4-5x the CPU time). Two
days are few, but the gap between SSR 0.1 and 0.6 is far beyond their noise.

========  =====  ====  ========  ======  =====  =====  =====  ======  =====  =====  =====
sampler   steps  eta   fusion    stride  lssr   fcrps  crps   rh_out  sv1    ps_hi  s_day
========  =====  ====  ========  ======  =====  =====  =====  ======  =====  =====  =====
ddim      10     0     posthoc   4       0.093  0.116  0.117  4.26    0.892  0.890  112
ddim      10     0.5   posthoc   4       0.080  0.117  0.118  4.30    0.894  0.887  120
ddim      10     1     posthoc   4       0.065  0.117  0.118  4.35    0.894  0.886  118
ddim      10     1     per_step  4       0.045  0.126  0.126  4.40    0.891  0.886  117
ddpm      10     -     posthoc   4       0.065  0.117  0.118  4.35    0.894  0.886  117
ddpm      10     -     per_step  4       0.045  0.126  0.126  4.40    0.891  0.886   73
ddim      20     1     posthoc   4       0.036  0.123  0.123  4.43    0.897  0.893  107
ddim      10     0     per_step  4       0.058  0.125  0.125  4.35    0.890  0.889   50
ddim      10     0     posthoc   8       0.123  0.111  0.112  4.18    0.895  0.911   11
ddim      10     0     posthoc   2       0.061  0.119  0.119  4.35    0.892  0.891  195
========  =====  ====  ========  ======  =====  =====  =====  ======  =====  =====  =====

What it shows. No sampling setting calibrates the spread: SSR is 0.04-0.12 everywhere and
the rank histogram is a deep U (93-98 % of pixels in the two outer ranks of 9). More
stochasticity *shrinks* the spread: eta 0 -> 0.5 -> 1 gives SSR 0.093 -> 0.080 -> 0.065,
20 steps at eta 1 0.036, per-step fusion 0.045-0.058 with a worse CRPS (0.125 vs 0.116). The
ancestral DDPM sampler at 10 steps gives the same numbers as DDIM at eta 1: on the same
trailing timesteps diffusers' DDIM update with eta = 1 is the DDPM posterior step, and the
per-patch generators draw the same noise. Single members are already rough: their
semivariance at neighbouring pixels is 0.89-0.90 of the truth's and their short-wavelength
power 0.89-0.91, within 30 % at every setting; the deterministic U-Net's is 0.96, so on this
pair the fine texture is predictable from the inputs and lives in the conditional mean.
Stitching: with independent patch samples post-hoc halo + Hann stitching would scale a pixel's
variance by 0.111 (stride 2), 0.456 (stride 4) and 1 (stride 8, one core per pixel). Measured,
stride 2 -> 4 -> 8 raises SSR 0.061 -> 0.093 -> 0.123 (SSR² x4.1 from stride 2 to 8; x9 if all
of the spread were independent between patches) and improves the fair CRPS 0.119 -> 0.116 ->
0.111 with 625 -> 169 -> 49 patches a day, but leaves sv1 at 0.892-0.895: stitching shrinks
the (small) sampled part of a member, not its texture. The fair CRPS is below the U-Net's
MAE for the post-hoc rows at 10 steps (0.111-0.119 < 0.120), not for per-step fusion or 20
steps at eta 1. Recommendation: none of these settings meets SSR in [0.6, 1.4]; the best is DDIM-10,
eta 0, post-hoc at stride 8 (SSR 0.12, fair CRPS 0.111), so calibration has to come from the
model (what it is trained to predict), not from the sampler; keep eta 0.

Since then (residual target, one noise field per day shared by overlapping pieces, 24-pixel
tiles, ``--calibrate``: ``est.calibrate`` on the validation days, median day, factor bounded
to 0.5-2; 8 test days, 8 members, one thread on a loaded machine)
---------------------------------------------------------------------------------------------

=====================  ======  ======  =====  =====  ======  =====  ==========
pair, DDIM steps       factor  lssr    fcrps  r2     rh_out  sv1    unet MAE
=====================  ======  ======  =====  =====  ======  =====  ==========
demo A1 JJA, 20        -       0.436   0.051  0.945  2.52    0.82   0.057
demo A1 JJA, 20        2.10    0.915   0.044  0.945  1.13    0.83
demo A1 JJA, 10        -       0.425   0.051  0.944  2.55    0.83
demo A1 JJA, 10        2.04    0.867   0.045  0.944  1.23    0.84
fast-wind, 20          -       0.911   0.098  0.758  1.16    0.94   0.127
fast-wind, 20          1.14    1.035   0.096  0.758  0.92    1.04
heavy-tails, 20        -       0.616   0.089  0.779  1.87    0.81   0.121
heavy-tails, 20        3.00    1.847   0.084  0.779  0.23    2.47
=====================  ======  ======  =====  =====  ======  =====  ==========

(``--bed fast-wind --skill-cache DIR`` with the models of ``bench_skill.py --cache DIR``.) On the demo pair the calibrated ensemble meets every target:
spread/skill 0.87-0.92, fair CRPS below the U-Net's MAE, one member's short-lag texture
within 20 % of the truth's. On heavy-tails the 9 validation days fall in one extreme event
and asked for 6.6 (capped at the then bound of 3), which over-spreads the test days and
roughens members 2.5-fold; hence the bound of 2 (SSR about 1.2 there, texture still too rough).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import (
    cached_fit,
    load_pair,
    parse_overrides,
    skill_fit,
    skill_fit_name,
    use_prediction_settings,
)

from xdownscale import DownscaleConfig, Downscaler
from xdownscale.diagnostics import (
    power_spectrum,
    rank_histogram,
    semivariogram,
    skill,
    spread_skill,
)
from xdownscale.estimator.stages import calibrate_spread
from xdownscale.predict.day import scale_spread

VAR = "DUEXTTAU"
ETAS = (0.0, 0.5, 1.0)
STEPS = (10, 20)
FUSIONS = ("posthoc", "per_step")
# Every setting: DDIM at three eta, the ancestral sampler at few steps, two budgets, both
# fusions; then the stitching test (stride 2 and 8 against the fast config's 4).
ALL = ([f"ddim:{s}:{e:g}:{f}" for s in STEPS for e in ETAS for f in FUSIONS]
       + [f"ddpm:{s}:0:{f}" for s in STEPS for f in FUSIONS]
       + ["ddim:10:0:posthoc:2", "ddim:10:0:posthoc:8"])
# A run of a few minutes: the eta sweep at 10 steps, the ancestral sampler, one 20-step row
# and the stride test on the cheapest setting.
QUICK = ["ddim:10:0:posthoc", "ddim:10:0.5:posthoc", "ddim:10:1:posthoc", "ddim:10:1:per_step",
         "ddpm:10:0:posthoc", "ddpm:10:0:per_step", "ddim:20:1:posthoc", "ddim:10:0:per_step",
         "ddim:10:0:posthoc:8"]
SV = {"n_pairs": 20000, "max_dist_km": 30.0, "n_bins": 3, "model": "spherical"}


def parse(spec: str) -> dict:
    """``sampler:steps:eta:fusion[:stride]`` -> a dict (stride None: the config's)."""
    parts = spec.split(":")
    if len(parts) not in (4, 5):
        raise SystemExit(f"setting {spec!r} is not sampler:steps:eta:fusion[:stride]")
    return {"sampler": parts[0], "steps": int(parts[1]), "eta": float(parts[2]),
            "fusion": parts[3], "stride": int(parts[4]) if len(parts) == 5 else None}


def fit_or_load(args, model, coarse, fine, elev) -> tuple[Downscaler, float]:
    preset = DownscaleConfig.fast if args.config == "fast" else DownscaleConfig

    overrides, set_tag = parse_overrides(args.set)

    if args.skill_cache is None:
        def fit():
            cfg = preset(seed=args.seed, verbose=False, **overrides)
            return coarse.downscale.fit(fine, elevation=elev, model=model, config=cfg,
                                        seasons=[args.season])

        tag = ("" if args.config == "fast" else f"_{args.config}") + set_tag
        name = (f"{model}_{args.area}_{args.season}{tag}_seed{args.seed}" if args.bed is None
                else f"{args.bed}_{model}_{args.season}{tag}_seed{args.seed}")
        path = Path(args.cache) / name
    else:  # bench_skill.py's fit, made here as it makes it when it is not there yet
        return skill_fit(args.skill_cache, args.bed or "demo", args.season, model,
                         (coarse, fine, elev), seed=args.seed, overrides=overrides,
                         tag=set_tag, preset=preset, config=args.config)
    est, seconds = cached_fit(path, fit, f"the {model}", data=(coarse, fine))
    use_prediction_settings(est, preset())  # today's inference and step
    return est, seconds


def independent_shrink(stride: int, cfg, shape) -> float:
    """sum w² / (sum w)², averaged over pixels at least a patch from the border: the variance
    factor of a weighted mean of independent patch samples under the post-hoc weights."""
    from xdownscale.tiling.patches import patch_starts
    from xdownscale.tiling.stitch import patch_weights, stitch

    starts = patch_starts(shape, patch=cfg.patch, stride=stride)
    w = patch_weights(starts, shape, patch=cfg.patch, halo=cfg.halo, window=cfg.window)
    s2_over_s1, s1 = stitch(w, starts, shape, halo=cfg.halo, window=cfg.window)
    # stitch(w) = sum(w * w) / sum(w), weight = sum(w): the ratio is sum w² / (sum w)²
    inner = np.s_[cfg.patch:shape[0] - cfg.patch, cfg.patch:shape[1] - cfg.patch]
    return float(np.mean(s2_over_s1[inner] / s1[inner]))


def texture(member, truth_sv, truth_ps) -> dict:
    """Short-lag semivariance and short-wavelength power of ``member`` over the truth's."""
    sv = semivariogram(member, **SV)["gamma_mean"].values
    ps = power_spectrum(member)["power_mean"].values
    q = max(1, ps.size // 4)
    return {"sv1": sv[0] / truth_sv[0], "sv3": np.nanmean(sv) / np.nanmean(truth_sv),
            "ps_hi": ps[-q:].mean() / truth_ps[-q:].mean()}


def ensemble_figures(ens, truth, truth_sv, truth_ps) -> dict:
    """The figures of one ensemble (``member`` dim, data units) against the truth, log10."""
    fair = skill(ens, truth, spaces=("log10",), crps="fair").sel(space="log10")
    std = skill(ens, truth, spaces=("log10",), crps="standard").sel(space="log10")
    ss = spread_skill(ens, truth)
    rh = rank_histogram(ens, truth)
    return {"lssr": float(ss["ssr_pooled"]), "fcrps": float(fair["crps_mean"]),
            "crps": float(std["crps_mean"]), "r2": float(fair["r2_mean"]),
            "rh_out": float(rh["extreme_ratio"]), "rh_delta": float(rh["delta"]),
            **texture(ens.isel(member=0), truth_sv, truth_ps)}


def print_row(row: dict) -> None:
    print("  " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in row.items()), flush=True)


def unet_figures(det, truth, truth_sv, truth_ps) -> tuple[float, dict]:
    """The deterministic U-Net's MAE (log10) and texture, the bar a DDPM's CRPS must pass."""
    mae = float(skill(det, truth, spaces=("log10",)).sel(space="log10")["mae_mean"])
    return mae, texture(det, truth_sv, truth_ps)


def from_predictions(args) -> pd.DataFrame:
    """Score the predictions ``bench_skill.py --save-predictions DIR`` wrote (the DDPM's
    members as its fit ships them, spread calibration included, and the U-Net's), so a slow
    configuration's members are sampled once for both benchmarks."""
    import xarray as xr

    _, set_tag = parse_overrides(args.set)
    bed = args.bed or "demo"

    def load(model):
        path = Path(args.predictions) / (skill_fit_name(
            bed, args.season, model, config=args.config, tag=set_tag, seed=args.seed) + ".nc")
        if not path.exists():
            raise SystemExit(f"--predictions: no {path} (run bench_skill.py with "
                             f"--save-predictions {args.predictions} first)")
        return xr.load_dataset(path)

    ddpm, unet = load("ddpm"), load("unet")
    if f"{VAR}_members" not in ddpm:
        raise SystemExit("--predictions: the DDPM's prediction holds no members (saved with "
                         "--members 1?)")
    _, fine, _ = load_pair(args.bed, seed=args.seed, area=args.area)
    days = pd.DatetimeIndex(ddpm.time.values)
    truth = fine[VAR].sel(time=days).load()
    truth_sv = semivariogram(truth, **SV)["gamma_mean"].values
    truth_ps = power_spectrum(truth)["power_mean"].values
    ens = ddpm[f"{VAR}_members"].rename(VAR)
    n = ens.sizes["member"]
    row = {"setting": "as shipped", "members": n,
           **ensemble_figures(ens, truth, truth_sv, truth_ps),
           "s_day": float(ddpm.attrs.get("predict_seconds", np.nan)) / len(days)}
    unet_mae, unet_tex = unet_figures(unet[VAR], truth, truth_sv, truth_ps)
    df = pd.DataFrame([row])
    print(f"{bed}, {args.config} configuration, {args.season}, {len(days)} test days "
          f"({days[0].date()} .. {days[-1].date()}), seed {args.seed}: the DDPM's {n} members "
          f"as bench_skill.py predicted them; log10 space")
    print(f"unet: MAE {unet_mae:.4f}, sv1 {unet_tex['sv1']:.3f}, ps_hi {unet_tex['ps_hi']:.3f}")
    print(df.to_string(index=False, float_format="{:.3f}".format, na_rep="-"))
    r = df.iloc[0]
    print(f"\nissue 13's bar: SSR {r.lssr:.2f} in [0.6, 1.4]: {0.6 <= r.lssr <= 1.4}; fair CRPS "
          f"{r.fcrps:.4f} < unet MAE {unet_mae:.4f}: {r.fcrps < unet_mae}; member 0's sv1 "
          f"{r.sv1:.2f} within 30 % of the truth's: {abs(r.sv1 - 1) <= 0.3}")
    return df


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache", help="folder for the fitted models")
    p.add_argument("--skill-cache", default=None,
                   help="bench_skill.py's --cache folder: score the models it fitted (the same "
                        "bed, season, configuration, overrides and seed; fitted and saved "
                        "there under its names when missing) instead of --cache's")
    p.add_argument("--season", default="JJA")
    p.add_argument("--area", default="A1")
    p.add_argument("--bed", default=None,
                   help="a test-bed of tests/testbeds.py instead of the demo pair")
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--config", choices=["fast", "default"], default="fast",
                   help="DownscaleConfig.fast() or DownscaleConfig() (cached as <name>_default)")
    p.add_argument("--days", type=int, default=None, help="first N test days (default all)")
    p.add_argument("--settings", default=None, help="comma-separated "
                   "sampler:steps:eta:fusion[:stride] (default: every setting)")
    p.add_argument("--quick", action="store_true", help="the QUICK settings on 2 test days")
    p.add_argument("--seed", type=int, default=0)
    # One thread: on a shared 2-core machine more threads spin against other jobs.
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calibrate", action="store_true",
                   help="calibrate the DDPM's spread on its validation days (est.calibrate) "
                        "and add each setting's members scaled by that factor ('cal' rows)")
    p.add_argument("--member-shift", choices=("on", "off"), default="on",
                   help="cut each member on its own shift of the layout (member_shift)")
    p.add_argument("--set", nargs="+", default=None, metavar="NAME=VALUE",
                   help="configuration overrides of the fits (as bench_skill.py --set; "
                        "cached under their own names)")
    p.add_argument("--predictions", default=None, metavar="DIR",
                   help="score the DDPM's members and the U-Net's prediction that "
                        "bench_skill.py --save-predictions DIR wrote for this bed, season, "
                        "configuration and seed, instead of fitting and sampling here")
    args = p.parse_args(argv)
    if args.predictions is not None:
        return from_predictions(args)
    if args.skill_cache is not None and args.bed is None and args.area != "A1":
        p.error("--skill-cache: bench_skill.py's demo pair is area A1")
    torch.set_num_threads(args.threads)
    specs = (args.settings.split(",") if args.settings else QUICK if args.quick else ALL)
    settings = [parse(s) for s in specs]
    if args.quick and args.days is None:
        args.days = 2
    t_start = time.perf_counter()

    coarse, fine, elev = load_pair(args.bed, seed=args.seed, area=args.area)
    ddpm, _ = fit_or_load(args, "ddpm", coarse, fine, elev)
    days = pd.DatetimeIndex(ddpm.test_days_[args.season])
    days = days[: args.days] if args.days else days
    truth = fine[VAR].sel(time=days).load()
    truth_sv = semivariogram(truth, **SV)["gamma_mean"].values
    truth_ps = power_spectrum(truth)["power_mean"].values
    print(f"{len(days)} {args.season} test days ({days[0].date()} .. {days[-1].date()}), "
          f"{args.members} members (member_shift {args.member_shift}), {args.threads} "
          f"thread(s), load average "
          f"{os.getloadavg()[0]:.1f}; truth semivariance {truth_sv[0]:.4f} (< 10 km)",
          flush=True)

    # a fit saved before member_shift loads with one layout for every member: the switch
    # says which is measured (today's default: on)
    ddpm.config_ = ddpm.config_.replace(member_shift=args.member_shift == "on")
    cfg0 = ddpm.config_
    factor = 1.0
    if args.calibrate:  # on the validation days, with the configured sampler (fit's way)
        t0 = time.perf_counter()
        # est.calibrate's own function, for its report (the factor before the texture bound)
        rep = calibrate_spread(ddpm, coarse, fine, members=4)[args.season]
        factor = ddpm.spread_[args.season]
        print(f"calibrated on the {len(ddpm.plans_[args.season].val)} validation days: "
              f"spread factor {factor:.3f} (1 / SSR {rep['factor_ssr']:.3f}; a member's "
              f"pixel-scale texture {rep['texture'][0]:.2f} -> {rep['texture'][1]:.2f} x the "
              f"truth's) ({time.perf_counter() - t0:.0f} s)", flush=True)
    ddpm.spread_ = {}  # rows are sampled as they are; "cal" rows scale them
    rows = []
    for st in settings:
        stride = st["stride"] or cfg0.infer_stride
        ddpm.config_ = cfg0.replace(eta=st["eta"], infer_stride=stride)
        try:
            t0 = time.perf_counter()
            pred = ddpm.predict(coarse.sel(time=days), history=fine, members=args.members,
                                sampler=st["sampler"], steps=st["steps"], fusion=st["fusion"],
                                keep_members=True)
            ens = pred[f"{VAR}_members"].load().rename(VAR)
            s_day = (time.perf_counter() - t0) / len(days)
        finally:
            ddpm.config_ = cfg0
        variants = [("-", ens)]
        if args.calibrate:  # the same members, deviations from their mean (log10) scaled
            scaled = 10.0 ** scale_spread(np.log10(ens.values), factor)
            variants.append((f"{factor:.2f}", ens.copy(data=scaled.astype(ens.dtype))))
        for cal, e in variants:
            row = {"sampler": st["sampler"], "steps": st["steps"],
                   "eta": st["eta"] if st["sampler"] == "ddim" else np.nan,
                   "fusion": st["fusion"], "stride": stride, "cal": cal,
                   **ensemble_figures(e, truth, truth_sv, truth_ps), "s_day": s_day}
            rows.append(row)
            print_row(row)

    unet, _ = fit_or_load(args, "unet", coarse, fine, elev)
    det = unet.predict(coarse.sel(time=days), history=fine)[VAR]
    unet_mae, unet_tex = unet_figures(det, truth, truth_sv, truth_ps)
    df = pd.DataFrame(rows)
    print(f"\nunet: MAE {unet_mae:.4f} (log10), sv1 {unet_tex['sv1']:.3f}, "
          f"ps_hi {unet_tex['ps_hi']:.3f}")
    pair = f"test-bed {args.bed}" if args.bed else f"synthetic {args.area} demo pair"
    print(f"\n{pair}, {args.config} configuration, {args.season}, {len(days)} test days, "
          f"{args.members} members, seed {args.seed}; log10 space; unet MAE {unet_mae:.4f}")
    print(df.to_string(index=False, float_format="{:.3f}".format, na_rep="-"))
    print("\nstitching, independent-patch variance factor sum w^2 / (sum w)^2 (interior mean):")
    shape = (fine.sizes["lat"], fine.sizes["lon"])
    for s in (2, 4, 8):
        print(f"  stride {s}: {independent_shrink(s, cfg0, shape):.3f}")

    ok = df[df.lssr.between(0.6, 1.4) & (df.fcrps < unet_mae)]
    if len(ok):
        rec = ok.sort_values(["fcrps", "s_day"]).iloc[0]
        print(f"\nrecommendation: {rec.sampler}-{rec.steps} eta {rec.eta} {rec.fusion} cal {rec.cal} "
              f"stride {rec.stride}: SSR {rec.lssr:.2f}, fair CRPS {rec.fcrps:.4f} < unet MAE "
              f"{unet_mae:.4f}, sv1 {rec.sv1:.2f}, {rec.s_day:.1f} s/day")
    else:
        best = df.iloc[(df.lssr - 1).abs().argsort()].iloc[0]
        print(f"\nno setting has SSR in [0.6, 1.4] with CRPS below the unet MAE; closest SSR: "
              f"{best.sampler}-{best.steps} eta {best.eta} {best.fusion} stride {best.stride} "
              f"(SSR {best.lssr:.2f}, fair CRPS {best.fcrps:.4f})")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s, load average "
          f"{os.getloadavg()[0]:.1f}")
    return df


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
