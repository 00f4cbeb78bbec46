"""Time the vectorised stitch against a per-patch Python loop on one A1 day.

The A1 grid is 432 x 357; at the paper's inference stride 2 that is 35 948 patches of
16 x 16 with a 4-pixel halo. Targets: the vectorised stitch is at least 20x faster than the
loop; its absolute time (printed) must stay under 5% of a DDIM-20 prediction of the same day.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_stitch.py [--repeat 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xdownscale.tiling.patches import patch_starts
from xdownscale.tiling.stitch import Stitcher, StitchPlan, stitch, window_1d


def loop_stitch(patches, starts, shape, patch=16, halo=4):
    """The straightforward form of eq. 4-9: one Python iteration per patch."""
    S = np.zeros(shape)
    Z = np.zeros(shape)
    windows = {n: window_1d(n) for n in (patch, patch - halo, patch - 2 * halo)}
    for Y, (y0, x0) in zip(patches, starts, strict=True):
        top = 0 if y0 == 0 else halo
        bottom = 0 if y0 + patch == shape[0] else halo
        left = 0 if x0 == 0 else halo
        right = 0 if x0 + patch == shape[1] else halo
        W = np.outer(windows[patch - top - bottom], windows[patch - left - right])
        rows = slice(y0 + top, y0 + patch - bottom)
        cols = slice(x0 + left, x0 + patch - right)
        S[rows, cols] += W * Y[top : patch - bottom, left : patch - right]
        Z[rows, cols] += W
    return S / np.maximum(Z, 1e-12), Z


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ny", type=int, default=432)
    parser.add_argument("--nx", type=int, default=357)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--halo", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="torch device for the tensor path")
    args = parser.parse_args()

    import torch

    shape = (args.ny, args.nx)
    starts = patch_starts(shape, patch=16, stride=args.stride)
    patches = np.random.default_rng(0).random((len(starts), 16, 16), dtype=np.float32)
    print(f"image {shape}, stride {args.stride}, halo {args.halo}: {len(starts)} patches")

    t_loop, (ref, _) = best_of(lambda: loop_stitch(patches, starts, shape, halo=args.halo), 2)
    t_full, (img, _) = best_of(lambda: stitch(patches, starts, shape, halo=args.halo), args.repeat)
    t_plan, plan = best_of(lambda: StitchPlan(starts, shape, halo=args.halo), args.repeat)
    t_apply, (img_plan, _) = best_of(lambda: plan.stitch(patches), args.repeat)

    def batched():
        acc = Stitcher(shape, halo=args.halo)
        for b in range(0, len(starts), 4096):
            acc.add(patches[b : b + 4096], starts[b : b + 4096])
        return acc.result()

    t_batched, (img_batched, _) = best_of(batched, args.repeat)

    tensor = torch.from_numpy(patches).to(args.device)
    plan.stitch(tensor)  # warm-up: moves the plan's indices to the device once

    def on_device():
        out = plan.stitch(tensor)
        if tensor.is_cuda:
            torch.cuda.synchronize()
        return out

    t_torch, (img_torch, _) = best_of(on_device, args.repeat)
    t_cut, _ = best_of(lambda: plan.cut(img_torch), args.repeat)

    for name, got in [("stitch", img), ("plan", img_plan), ("Stitcher", img_batched),
                      ("torch", img_torch.cpu().numpy())]:
        err = float(np.nanmax(np.abs(got - ref)))
        assert err < 1e-5, f"{name} differs from the loop by {err}"
    rows = [
        ("per-patch loop", t_loop),
        ("stitch() (plan + apply)", t_full),
        ("StitchPlan build", t_plan),
        ("StitchPlan.stitch (numpy)", t_apply),
        ("Stitcher, batches of 4096", t_batched),
        (f"StitchPlan.stitch ({args.device})", t_torch),
        (f"StitchPlan.cut ({args.device})", t_cut),
    ]
    for name, seconds in rows:
        speed = "" if name.startswith(("per-patch", "StitchPlan build", "StitchPlan.cut")) else (
            f"   speed-up {t_loop / seconds:7.1f}x")
        print(f"{name:30s} {seconds * 1e3:9.2f} ms{speed}")
    print("compare the stitch time with 5% of one DDIM-20 prediction of this day")


if __name__ == "__main__":
    main()
