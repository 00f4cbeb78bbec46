"""One full A1 day (432 x 357 fine pixels) with the default configuration: time and memory.

The default configuration is ``DownscaleConfig()``, what ``Downscaler()`` and
``coarse.downscale.fit(...)`` use when no config is given: the paper's architecture (small
temporal U-Net 64/128/256, large conditional DDPM U-Net 128/256/512, ~14 M parameters),
inference stride 2 (35 948 patches of 16 x 16 with a 4-pixel halo), post-hoc stitching, and
a DDIM sampler with 20 steps. The day is run with ``--steps`` (20 by default); DDIM-50 and
DDPM-1000 are extrapolated from the same per-step cost.

Training to convergence is not the point: the model is fitted with the minimal legitimate
amount of training (one epoch of each stage on a few patches per day, via config overrides
that leave every architecture and prediction setting at its default) to get weights of the
right size, on the full A1 synthetic pair with a 60-day G5NR period (40 lag days + targets).

On 2 CPU cores one denoising step over all patches of a day takes many minutes, so a
DDIM-20 day takes hours. The day is therefore run through the real ``est.predict`` (cutting,
encoding every patch, the scheduler's 20 steps and noise, stitching: all real), with the
large network run for real on the first ``--real-calls`` batches and replaced by a stand-in
that returns a cached batch afterwards; the day's time is extrapolated as the measured wall
time + (calls - real calls) x the mean real call. Peak memory is measured for real: every
day-sized array is allocated, and the network's activations are bounded by one batch.

Measured in a fresh subprocess (so training does not count): wall time, peak RSS of the
prediction (the kernel's high-water mark, reset after loading; tracemalloc does not see
torch's allocator, so it is not used), patches per
day, seconds per step, and the share of stitching, timed on this day's patch set with
``StitchPlan``: post-hoc (plan build + one numpy stitch per member) and per-step fusion
(plan build + one torch stitch and re-cut per step).

Run::

    python benchmarks/bench_predict_day.py --cache /tmp/xds-bench/day

About 8 minutes on 2 CPU cores the first time (fitting: ~3 of them), ~5 on reruns.
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
from _common import cached_fit, current_mb, peak_mb, reset_peak

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
        cfg = DownscaleConfig(small_epochs=1, epochs=1, small_max_days=8, patches_per_day=64,
                              seed=args.seed, verbose=False)
        return Downscaler(cfg, model="ddpm", seasons=["JJA"]).fit(coarse, fine, elevation=elev)

    cached_fit(model_path(args), fit, "default-config DDPM, one epoch per stage")


def child(args) -> dict:
    """Runs in a fresh process: load, predict one day, report timings and memory."""
    import torch

    from xdownscale import Downscaler
    from xdownscale.patches import patch_starts
    from xdownscale.stitch import StitchPlan

    torch.set_num_threads(args.threads)
    est = Downscaler.load(model_path(args))
    coarse, fine, _ = load_pair(args)
    cfg = est.config_
    day = est.test_days_["JJA"][0]
    module = est.modules_["JJA"]
    starts = patch_starts((est.lat_.size, est.lon_.size), patch=cfg.patch,
                          stride=cfg.infer_stride)
    rss_loaded = current_mb()
    reset = reset_peak()

    # Wrap the two networks: the encoder is timed, the large network runs for real on the
    # first real_calls batches and is replaced by the last real output afterwards.
    log = {"enc": 0.0, "real": [], "stand_in": 0.0, "calls": 0}
    raw, predict_x0 = module.encoder.raw, module.large.predict_x0

    def timed_raw(x):
        t0 = time.perf_counter()
        out = raw(x)
        log["enc"] += time.perf_counter() - t0
        return out

    def partial_predict_x0(x_t, t, cond, film=None):
        t0 = time.perf_counter()
        log["calls"] += 1
        if len(log["real"]) < args.real_calls:
            out = predict_x0(x_t, t, cond, film)
            log["cached"] = out
            log["real"].append(time.perf_counter() - t0)
            return out
        out = log["cached"][: x_t.shape[0]].clone()
        log["stand_in"] += time.perf_counter() - t0
        return out

    module.encoder.raw = timed_raw
    module.large.predict_x0 = partial_predict_x0
    t0 = time.perf_counter()
    pred = est.predict(coarse.sel(time=[day]), history=fine, sampler="ddim", steps=args.steps,
                       members=args.members, fusion="posthoc")
    wall = time.perf_counter() - t0
    rss_peak = peak_mb()
    assert pred[VAR].shape == (1, est.lat_.size, est.lon_.size)

    # The stitch share on this day's patch set, best of 3 (numpy for post-hoc, as predict_day
    # does; torch stitch + re-cut for per-step fusion).
    def best(fn, repeat=3):
        times = []
        for _ in range(repeat):
            s = time.perf_counter()
            fn()
            times.append(time.perf_counter() - s)
        return min(times)

    shape = (est.lat_.size, est.lon_.size)
    rng = np.random.default_rng(0)
    patches = rng.random((len(starts), cfg.patch, cfg.patch), dtype=np.float32)
    plan = StitchPlan(starts, shape, patch=cfg.patch, halo=cfg.halo, window=cfg.window)
    tensor = torch.from_numpy(patches)
    plan.stitch(tensor)  # builds the plan's torch indices once, as the first step would
    return {
        "params_large": sum(p.numel() for p in module.large.parameters()),
        "params_small": sum(p.numel() for p in module.small.parameters()),
        "config": {k: getattr(cfg, k) for k in ("large_widths", "small_widths", "infer_stride",
                                                "patch", "halo", "sampler", "sample_steps",
                                                "fusion", "predict_batch_size")},
        "day": str(np.datetime_as_string(np.datetime64(day, "D"))), "shape": shape,
        "patches": len(starts), "wall": wall, "encode": log["enc"], "real": log["real"],
        "stand_in": log["stand_in"], "calls": log["calls"], "rss_loaded": rss_loaded,
        "rss_peak": rss_peak, "reset": reset, "load": os.getloadavg()[0],
        "t_plan": best(lambda: StitchPlan(starts, shape, patch=cfg.patch, halo=cfg.halo,
                                          window=cfg.window)),
        "t_stitch_np": best(lambda: plan.stitch(patches)),
        "t_stitch_cut_torch": best(lambda: plan.cut(plan.stitch(tensor)[0])),
    }


def report(r: dict, args) -> None:
    n_real = len(r["real"])
    per_call = float(np.mean(r["real"][1:] if n_real > 1 else r["real"]))  # skip warm-up
    calls_per_step = r["calls"] / args.steps / args.members
    # Everything measured except the stand-in calls, plus every call at the real cost.
    total = r["wall"] - r["stand_in"] - sum(r["real"]) + r["calls"] * per_call
    other = r["wall"] - r["stand_in"] - sum(r["real"]) - r["encode"]  # cut, noise, steps, stitch
    per_step = calls_per_step * per_call

    def day_seconds(steps):
        # "other" is scaled with the steps too (noise and scheduler are per step; the one-off
        # cut and stitch are small): slightly pessimistic for more steps.
        return r["encode"] + steps * (per_step * args.members + other / args.steps)

    post = r["t_plan"] + args.members * r["t_stitch_np"]
    # per-step fusion stitches and re-cuts at every step, then stitches the result once more
    step_fused = post + args.steps * args.members * r["t_stitch_cut_torch"]
    c = r["config"]
    print(f"\ndefault config (DownscaleConfig(), used by Downscaler() and fit): large U-Net "
          f"{c['large_widths']} = {r['params_large'] / 1e6:.1f} M params, small "
          f"{c['small_widths']} = {r['params_small'] / 1e6:.1f} M; stride {c['infer_stride']}, "
          f"halo {c['halo']}, {c['sampler']}-{c['sample_steps']}, fusion {c['fusion']}, "
          f"batch {c['predict_batch_size']}")
    print(f"day {r['day']}, {r['shape'][0]} x {r['shape'][1]} pixels, {r['patches']} patches, "
          f"{args.members} member(s), {args.threads} threads, load average {r['load']:.1f} "
          "at the end of the run (other jobs on the machine inflate the times)")
    print(f"network calls: {r['calls']} ({calls_per_step:.0f} batches x {args.steps} steps), "
          f"{n_real} run for real at {per_call:.2f} s each (first {r['real'][0]:.2f} s), "
          "the rest extrapolated")
    rows = [
        ("encoder, all patches (once a day)", r["encode"]),
        ("cut, noise, scheduler, stitch (measured)", other),
        ("large network, one step (extrapolated)", per_step),
        ("seconds per step (all patches)", per_step + other / args.steps),
        (f"DDIM-{args.steps} day, estimated", total),
        ("DDIM-50 day, estimated", day_seconds(50)),
        ("DDPM-1000 day (paper), estimated", day_seconds(1000)),
    ]
    for name, s in rows:
        print(f"  {name:42s} {s:10.1f} s  ({s / 3600:6.2f} h)")
    grown = r["rss_peak"] - r["rss_loaded"]
    how = "high-water mark reset after loading" if r["reset"] else "ru_maxrss, incl. loading"
    print(f"peak RSS during the prediction: {r['rss_peak']:.0f} MB ({how}; resident after "
          f"loading model and data: {r['rss_loaded']:.0f} MB; the prediction adds "
          f"{grown:.0f} MB)")
    print(f"stitching, {r['patches']} patches: plan build {r['t_plan'] * 1e3:.0f} ms, numpy "
          f"stitch {r['t_stitch_np'] * 1e3:.0f} ms, torch stitch + cut "
          f"{r['t_stitch_cut_torch'] * 1e3:.0f} ms")
    print(f"  posthoc share of the DDIM-{args.steps} day:  {post:.2f} s = "
          f"{100 * post / total:.4f} %  (target < 5 %)")
    print(f"  per_step share of the DDIM-{args.steps} day: {step_fused:.2f} s = "
          f"{100 * step_fused / total:.4f} %  (target < 5 %)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache", help="folder for the fitted model")
    p.add_argument("--fine-start", default="2005-05-15")
    p.add_argument("--fine-days", type=int, default=60)
    p.add_argument("--steps", type=int, default=20, help="DDIM steps of the timed day")
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--real-calls", type=int, default=4,
                   help="large-network batches run for real (the first is a warm-up)")
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
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    report(json.loads(out.stdout.strip().splitlines()[-1]), args)


if __name__ == "__main__":
    main()
