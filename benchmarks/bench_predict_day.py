"""One full A1 day (432 x 357 fine pixels) with the default configuration: FLOPs, time, memory.

The default configuration is ``DownscaleConfig()``, what ``Downscaler()`` and
``coarse.downscale.fit(...)`` use when no config is given: the paper's architecture (small
temporal U-Net 64/128/256, large conditional DDPM U-Net 128/256/512, ~14 M parameters),
tile inference (16-pixel tiles, the training patch, with a 4-pixel halo and cores overlapping
by 3: patches at stride 5, Hann-blended), post-hoc stitching and DDIM-10.

Training to convergence is not the point: the model is fitted with the minimal legitimate
amount of training (one epoch of each stage on a few patches per day, via config overrides
that leave every architecture and prediction setting at its default) to get weights of the
right size, on the full A1 synthetic pair with a 60-day G5NR period (40 lag days + targets).

In a fresh subprocess (so training does not count) the day is predicted for real through
``est.predict`` (cut, encode, every sampler step, stitch), timed, with the peak RSS of the
prediction (the kernel's high-water mark, reset after loading). Then the FLOPs are counted
with ``torch.utils.flop_counter.FlopCounterMode`` on predictions of the same day with 1 and 2
steps: their difference is one step, so the day is ``F(1) + (steps - 1) * (F(2) - F(1))``.
The paper's configuration (DDPM-1000 on 16 x 16 patches at stride 2, 35 948 patches) is
433 PFLOP per A1 day; the ratio is printed, and the same count for ``inference="patches"``
(one patch counted, times the patches and steps of a day) for comparison.

Run::

    python benchmarks/bench_predict_day.py --cache /tmp/xds-bench/day

On a shared machine pass ``--extrapolate`` (time the 1- and 2-step days only); the CPU
seconds (process time) are then the figure that does not depend on the other jobs. Measured
with ``--threads 1 --extrapolate``: 5 minutes wall at a load average of 8 on 2 cores (the
fit, 7 minutes, is cached).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import cached_fit, current_mb, peak_mb, reset_peak, use_prediction_settings

VAR = "DUEXTTAU"

def load_pair(args):
    import xdownscale

    coarse, fine, elev = xdownscale.datasets.synthetic(
        area="A1", seed=args.seed, size="full", coarse_start="2005-04-01",
        coarse_end="2005-07-31", fine_start=args.fine_start, fine_days=args.fine_days)
    # In memory: the benchmark times prediction, not the lazy synthetic generator.
    return coarse.load(), fine.load(), elev


def model_path(args) -> Path:
    return Path(args.cache) / f"ddpm_A1full_{args.fine_start}_{args.fine_days}d_seed{args.seed}"


def fit_if_needed(args) -> None:
    import torch

    from xdownscale import DownscaleConfig, Downscaler

    torch.set_num_threads(args.threads)

    def fit():
        coarse, fine, elev = load_pair(args)
        # Training-size overrides only; architecture, strides, halo and sampler stay default.
        # (no step floors, no validation or spread calibration: prediction is what is timed)
        cfg = DownscaleConfig(small_epochs=1, epochs=1, small_max_days=8, patches_per_day=64,
                              min_steps=0, small_min_steps=0, validation=False,
                              calibrate_spread=False, seed=args.seed, verbose=False)
        return Downscaler(cfg, model="ddpm", seasons=["JJA"]).fit(coarse, fine, elevation=elev)

    cached_fit(model_path(args), fit, "default-config DDPM, one epoch per stage")


def child(args) -> dict:
    """Runs in a fresh process: load, predict one day, report time, memory and FLOPs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from xdownscale import DownscaleConfig, Downscaler
    from xdownscale.predict.day import piece_layout

    torch.set_num_threads(args.threads)
    est = Downscaler.load(model_path(args))
    # prediction settings of today's default config (a cached model keeps those of its fit)
    default = DownscaleConfig()
    use_prediction_settings(est, default)
    coarse, fine, _ = load_pair(args)
    cfg = est.config_
    day = est.test_days_["JJA"][0]
    module = est.modules_["JJA"]
    shape = (est.lat_.size, est.lon_.size)
    kw = dict(history=fine, sampler="ddim", members=args.members, fusion="posthoc",
              inference=args.inference)
    one = coarse.sel(time=[day])
    rss_loaded = current_mb()
    reset = reset_peak()

    def count(**extra):
        t0, c0 = time.perf_counter(), time.process_time()
        with FlopCounterMode(display=False) as counter:
            pred = est.predict(one, **kw, **extra)
            assert pred[VAR].shape == (1, *shape) and np.isfinite(pred[VAR].values).all()
        return (counter.get_total_flops(), time.perf_counter() - t0,
                time.process_time() - c0)

    (f1, t1, c1), (f2, t2, c2) = count(steps=1), count(steps=2)
    wall = cpu = None
    if not args.extrapolate:
        t0, c0 = time.perf_counter(), time.process_time()
        est.predict(one, steps=args.steps, **kw)[VAR].load()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_peak = peak_mb()
    # the paper's pieces for comparison: one 16 x 16 patch through the encoder and one step
    dev = next(module.parameters()).device
    with FlopCounterMode(display=False) as enc:
        module.encoder.raw(torch.zeros(1, cfg.n_lags, cfg.patch, cfg.patch, device=dev))
    with torch.no_grad():
        x, film = module.inputs(torch.zeros(1, cfg.n_lags, cfg.patch, cfg.patch, device=dev),
                                torch.zeros(1, _n_cond(est), cfg.patch, cfg.patch, device=dev))
    with FlopCounterMode(display=False) as step, torch.no_grad():
        module.large.predict_x0(torch.zeros(1, 1, cfg.patch, cfg.patch, device=dev), 0, x,
                                film=film)
    side, stride, halo = piece_layout(cfg, shape, args.inference or cfg.inference)
    from xdownscale.tiling.patches import patch_starts

    n_pieces = len(patch_starts(shape, patch=side, stride=stride))
    n_patches = len(patch_starts(shape, patch=cfg.patch, stride=cfg.infer_stride))
    return {
        "params_large": sum(p.numel() for p in module.large.parameters()),
        "params_small": sum(p.numel() for p in module.small.parameters()),
        "config": {k: getattr(cfg, k) for k in ("large_widths", "small_widths", "infer_stride",
                                                "patch", "halo", "sampler", "sample_steps",
                                                "fusion", "predict_batch_size", "inference",
                                                "tile", "tile_halo", "tile_overlap")},
        "inference": args.inference or cfg.inference, "piece": [side, stride, halo],
        "pieces": n_pieces, "patches": n_patches,
        "day": str(np.datetime_as_string(np.datetime64(day, "D"))), "shape": shape,
        "wall": wall, "rss_loaded": rss_loaded, "rss_peak": rss_peak, "reset": reset,
        "load": os.getloadavg()[0], "flops_1": f1, "flops_2": f2, "t_1": t1, "t_2": t2,
        "c_1": c1, "c_2": c2, "cpu": cpu,
        "patch_enc_flops": enc.get_total_flops(), "patch_step_flops": step.get_total_flops(),
        "device": str(dev), "gpu": (torch.cuda.get_device_name(dev) if dev.type == "cuda"
                                    else None),
        "gpu_peak_mb": (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda"
                        else None),
    }


def _n_cond(est) -> int:
    """Channels of the conditioning stack: the coarse driver plus the covariate maps."""
    from xdownscale.estimator import inputs as pipeline
    static = pipeline.StaticMaps(est.covariate_spec_, est.lat_, est.lon_, est.elevation_)
    return 1 + static.covariates([est.test_days_["JJA"][0]])[0].shape[0]


PAPER_FLOPS = 433e15  # DDPM-1000, stride-2 patches, one A1 day (issue 15)


def report(r: dict, args) -> None:
    steps = args.steps
    per_step = r["flops_2"] - r["flops_1"]
    day = r["flops_1"] + (steps - 1) * per_step
    patches_day = r["patches"] * args.members * (r["patch_enc_flops"] / args.members
                                                 + steps * r["patch_step_flops"])
    c = r["config"]
    side, stride, halo = r["piece"]
    print(f"\ndefault config (DownscaleConfig(), used by Downscaler() and fit): large U-Net "
          f"{c['large_widths']} = {r['params_large'] / 1e6:.1f} M params, small "
          f"{c['small_widths']} = {r['params_small'] / 1e6:.1f} M; inference "
          f"{r['inference']!r} ({r['pieces']} pieces of {side} px, stride {stride}, halo "
          f"{halo}), ddim-{steps}, fusion {c['fusion']}, {args.members} member(s)")
    if r.get("gpu"):
        print(f"on {r['device']} ({r['gpu']}): peak GPU memory {r['gpu_peak_mb']:.0f} MB "
              "(allocated tensors); the CPU seconds below are the host's")
    print(f"day {r['day']}, {r['shape'][0]} x {r['shape'][1]} pixels, {args.threads} threads, "
          f"load average {r['load']:.1f} at the end (other jobs on the machine inflate times)")
    print(f"  FLOPs per day (counted)        {day:10.3e}  (one step {per_step:.3e}, "
          f"encoder + cut/stitch {r['flops_1'] - per_step:.3e})")
    print(f"  paper's 433 PFLOP / this       {PAPER_FLOPS / day:10.0f} x fewer  "
          "(target >= 1000, stretch 10 000)")
    print(f"  same model on stride-2 patches {patches_day:10.3e}  ({r['patches']} patches x "
          f"{r['patch_step_flops'] / 1e9:.2f} GFLOP per step; {patches_day / day:.0f} x this)")
    est = r["t_1"] + (steps - 1) * (r["t_2"] - r["t_1"])
    print(f"  seconds, 1-step / 2-step day   {r['t_1']:10.1f} s / {r['t_2']:.1f} s (measured, "
          "FLOP counter on)")
    print(f"  seconds for the day, from them {est:10.1f} s  ({est / 60:.1f} min; 1-step day + "
          f"{steps - 1} x one step)")
    if r["wall"] is not None:
        print(f"  seconds for the day (measured) {r['wall']:10.1f} s  ({r['wall'] / 60:.1f} "
              "min; target <= 10 min)")
    seconds = r["wall"] if r["wall"] is not None else est
    cpu = r["cpu"] if r["cpu"] is not None else r["c_1"] + (steps - 1) * (r["c_2"] - r["c_1"])
    print(f"  CPU seconds for the day        {cpu:10.1f} s  (process time, all threads: what "
          f"the day costs without other jobs; / {args.threads} thread(s) = "
          f"{cpu / args.threads / 60:.1f} min)")
    print(f"  throughput                     {day / seconds / 1e9:10.1f} GFLOP/s wall, "
          f"{day / cpu / 1e9:.1f} GFLOP/s per CPU second")
    grown = r["rss_peak"] - r["rss_loaded"]
    how = "high-water mark reset after loading" if r["reset"] else "ru_maxrss, incl. loading"
    print(f"  peak RSS of the prediction     {r['rss_peak']:10.0f} MB  ({how}; after loading "
          f"{r['rss_loaded']:.0f} MB, the prediction adds {grown:.0f} MB)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache", help="folder for the fitted model")
    p.add_argument("--fine-start", default="2005-05-15")
    p.add_argument("--fine-days", type=int, default=60)
    p.add_argument("--steps", type=int, default=10,
                   help="DDIM steps of the timed day (the configuration's default)")
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--inference", default=None, help="tiles or patches (default: config's)")
    p.add_argument("--extrapolate", action="store_true", help="time the 1- and 2-step days "
                   "only and extrapolate (a loaded machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    fit_if_needed(args)
    # A fresh process, so the peak RSS is the prediction's and not the training's.
    cmd = [sys.executable, __file__, "--child", *(argv if argv is not None else sys.argv[1:])]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"the prediction process failed:\n{out.stderr}")
    report(json.loads(out.stdout.strip().splitlines()[-1]), args)


if __name__ == "__main__":
    main()
