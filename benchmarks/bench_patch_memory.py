"""Peak memory of one epoch of DayPatchDataset on an A1-sized fine record.

The record is 763 days of 432 x 357 float32 on disk (a raw file read through ``np.memmap``,
~470 MB). Each target day needs its 40 lagged days and itself, read lazily by ``load_day``;
patches are 16 x 16 at the training stride 8 (2 332 per day). The scripts behind the paper
materialised every patch with its lags up front; this prints what that would take next to
the measured peak of streaming them.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_patch_memory.py             # 120 target days
    OMP_NUM_THREADS=1 python benchmarks/bench_patch_memory.py --days 723  # the full epoch

By default the epoch is capped at 120 of the 723 target days (spread over the record) so the
run takes well under a minute on 2 cores; the full epoch takes about 3 minutes. Peak memory
does not grow with the number of days, since only ``--buffer-days`` days are alive at once;
per-day figures are printed so the full epoch can be extrapolated.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from xdownscale.tiling.patches import patch_starts


def write_record(path: Path, n_days: int, ny: int, nx: int) -> None:
    """A log-normal AOD-like record, written in chunks so writing needs little memory."""
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        for first in range(0, n_days, 32):
            chunk = rng.lognormal(-3.0, 1.0, size=(min(32, n_days - first), ny, nx))
            chunk[:, :3, :5] = np.nan  # a missing corner: its patches must be dropped
            f.write(chunk.astype(np.float32).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", type=int, default=763, help="days in the fine record")
    parser.add_argument("--days", type=int, default=120, help="target days in the epoch")
    parser.add_argument("--lags", type=int, default=40)
    parser.add_argument("--ny", type=int, default=432)
    parser.add_argument("--nx", type=int, default=357)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--buffer-days", type=int, default=4)
    args = parser.parse_args()

    from xdownscale.tiling.patches import DayPatchDataset  # imports torch before the baseline

    shape = (args.record, args.ny, args.nx)
    targets = np.arange(args.lags, args.record)
    if args.days < targets.size:
        targets = targets[np.linspace(0, targets.size - 1, args.days).astype(int)]
    starts = patch_starts((args.ny, args.nx), patch=16, stride=args.stride)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fine.f32"
        t0 = time.perf_counter()
        write_record(path, *shape)
        print(f"record {shape} float32 on disk: {path.stat().st_size / 2**20:.0f} MB "
              f"(written in {time.perf_counter() - t0:.1f} s)")

        def load_day(day):
            # Map the file per call: pages read stay in the OS cache, not in this process.
            cube = np.memmap(path, dtype=np.float32, mode="r", shape=shape)
            hist, target = cube[day - args.lags : day], cube[day : day + 1]
            return {"hist": np.array(hist), "y": np.array(target)}

        ds = DayPatchDataset(targets, load_day, starts, batch_size=args.batch_size,
                             buffer_days=args.buffer_days, seed=0)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tracemalloc.start()
        t0 = time.perf_counter()
        n_batches = n_patches = 0
        for batch in ds:
            n_batches += 1
            n_patches += len(batch["day"])
        seconds = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    channels = args.lags + 1
    patch_bytes = channels * 16 * 16 * 4
    all_days = args.record - args.lags
    day_bytes = channels * args.ny * args.nx * 4
    print(f"epoch: {targets.size} target days, {n_patches} patches in {n_batches} batches, "
          f"{seconds:.1f} s ({seconds / targets.size * 1e3:.0f} ms per day)")
    print(f"patches per day: {len(starts)} ({n_patches / targets.size:.0f} valid), "
          f"{len(starts) * patch_bytes / 2**20:.0f} MB of patches per day")
    print(f"one day's arrays ({channels} x {args.ny} x {args.nx}): {day_bytes / 2**20:.1f} MB; "
          f"buffer of {args.buffer_days} days: {args.buffer_days * day_bytes / 2**20:.0f} MB")
    print(f"peak traced allocation during the epoch: {peak / 2**20:.0f} MB")
    print(f"max RSS before / after the epoch: {rss_before:.0f} / {rss_after:.0f} MB "
          f"(growth {rss_after - rss_before:.0f} MB)")
    print(f"materialising all patches of this epoch: {n_patches * patch_bytes / 2**30:.1f} GB; "
          f"of all {all_days} target days: {all_days * len(starts) * patch_bytes / 2**30:.1f} GB")


if __name__ == "__main__":
    main()
