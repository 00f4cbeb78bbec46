"""Predict many days on a dask cluster, the way a Pangeo user scales out.

A ``dask.distributed`` LocalCluster stands in for a Pangeo cluster here: with a real one,
pass its scheduler address (``--scheduler tcp://...``). The coarse record is chunked in time
and, with ``--tile N``, the fine history in N x N-pixel tiles; ``est.predict`` returns a lazy
Dataset with one task per time chunk and tile and the fitted model placed in the graph once;
``.to_zarr`` runs the tasks on the workers. Each tile is predicted with a 16-pixel overlap and
trimmed, so tiling does not change the numbers, only spreads one big day over workers.

Run::

    python examples/dask_cluster.py --quick --tile 32
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import xdownscale
from xdownscale import DownscaleConfig


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scheduler", default=None, help="address of an existing dask scheduler")
    p.add_argument("--quick", action="store_true", help="tiny models (for CI)")
    p.add_argument("--out", default=None, help="zarr store for the predictions")
    p.add_argument("--tile", type=int, default=0,
                   help="spatial tile size in fine pixels (0: whole maps)")
    args = p.parse_args(argv)
    from dask.distributed import Client, LocalCluster

    coarse, fine, elev = xdownscale.datasets.synthetic(area="A1", seed=0)
    config = DownscaleConfig.fast(verbose=False)
    if args.quick:
        config = config.replace(small_widths=(8, 16, 32), large_widths=(8, 16, 32), epochs=1,
                                small_epochs=1, small_max_days=30, patches_per_day=8,
                                sample_steps=4, infer_stride=8, min_steps=0,
                                small_min_steps=0)
    est = coarse.downscale.fit(fine, elevation=elev, model="ddpm", config=config,
                               seasons=["JJA"])
    days = est.test_days_["JJA"][:8] if args.quick else est.test_days_["JJA"]

    cluster = None if args.scheduler else LocalCluster(n_workers=2, threads_per_worker=1,
                                                       processes=False, dashboard_address=None)
    with Client(args.scheduler or cluster) as client:
        print(client)
        history = fine.chunk({"time": 100, "lat": args.tile, "lon": args.tile}) if args.tile \
            else fine
        lazy = est.predict(coarse.sel(time=days).chunk({"time": 4}), history=history, members=2)
        print(lazy)  # nothing computed yet
        tmp = tempfile.TemporaryDirectory() if args.out is None else None
        store = Path(args.out or tmp.name) / "predictions.zarr"
        lazy.to_zarr(store, mode="w", consolidated=False)
        print(f"wrote {lazy.sizes['time']} days to {store}")
    if cluster is not None:
        cluster.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
