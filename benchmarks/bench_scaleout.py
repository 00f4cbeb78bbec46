"""Scale-out of ``est.predict`` on a ``distributed.LocalCluster``: speed-up and per-task cost.

The same predictions (``--days`` days, default 16, of a 48 x 64 window of the synthetic A1
area, a ``DownscaleConfig.fast()`` DDPM fitted with one epoch per stage, DDIM-20, one member)
are run

* eagerly (numpy in, numpy out) on 1 and on 2 torch threads, in this process;
* lazily (coarse chunked one day per chunk: one task per day) on a LocalCluster of 1 and of
  2 worker processes with 1 thread each.

Every run is preceded by one warm-up prediction of one day (the eager ones here; the cluster
ones through ``client.run`` on every worker), so imports and first-call costs count in
neither. The per-task overhead is ``(cluster wall - eager wall on 1 thread) / tasks`` for one
worker. Targets (issue 15): 1 worker within 1.2 x of eager on 1 thread, 2 workers >= 1.8 x
faster than 1.

Then a projection table: one full A1 day (432 x 357) and a 20-year daily A1 record with the
default configuration, from ``bench_predict_day.py``'s measured CPU seconds of one day on one
thread (``--day-seconds``) and counted FLOPs (``--day-flops``): on this CPU, scaled by the
measured 2-worker speed-up, and on one data-centre GPU from the FLOPs at an assumed sustained
throughput (``--gpu-tflops``) or from a day measured on one (``--gpu-day-seconds``); which
figures are measured and which projected is printed.
``--speedup2 X`` prints the table alone.

Run::

    python benchmarks/bench_scaleout.py --cache /tmp/xds-bench-scaleout

Measured on 2 quiet cores (the fit, 2 minutes on the first run, is cached; each run about
1 minute), 16 days of tiles: eager 5.0-5.3 s, 1 worker 1.03-1.19 x eager, 2 workers
1.39-1.80 x faster than 1 (median 1.66 over six runs); ``--days 64``: 1.78-1.84 x;
``--inference patches``: 1.60-1.73 x. With the one-pass point of today's ``fast()`` (0.2 s a
day), ``--days 64``: 1 worker 1.00-1.44 x eager, 2 workers 1.50-1.94 x faster than 1;
``--worker-saturation inf`` 1.76-2.00 x, no consistent gain over three runs each.
``--members 8`` (days of about 11 s: the work the issue's baseline had), four runs: eager
155-176 s, 1 worker 0.95-1.02 x eager, 2 workers 1.72, 1.88, 1.84, 1.88 x faster than 1;
two plain processes splitting the days (``--plain-pair``, no dask) 1.89 x eager: two
workers get what two processes get from this machine. The table
and what limits two workers on two cores are in the prediction guide. Eager on 2 threads spins against other jobs on a loaded machine;
leave it out there (``--eager-threads 1``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import cached_fit

VAR = "DUEXTTAU"
WINDOW = (32.0, 34.95, 44.0, 47.95)  # lat 32-35 N (48 px), lon 44-48 E (64 px)


def load(args):
    import xdownscale

    coarse, fine, elev = xdownscale.datasets.synthetic(
        area="A1", seed=args.seed, window=WINDOW, coarse_start="2003-01-01",
        coarse_end="2007-12-31", fine_start="2005-05-15", fine_days=240)
    return coarse.load(), fine.load(), elev


def fit_or_load(args, coarse, fine, elev):
    from xdownscale import DownscaleConfig

    def fit():
        cfg = DownscaleConfig.fast(seed=args.seed, verbose=False, small_epochs=1, epochs=1)
        return coarse.downscale.fit(fine, elevation=elev, model="ddpm", config=cfg,
                                    seasons=["JJA"])

    return cached_fit(Path(args.cache) / f"scaleout_seed{args.seed}", fit, "the fast DDPM")[0]


def _set_threads(n):
    import torch

    torch.set_num_threads(n)
    return torch.get_num_threads()


def _warm(est, coarse, kw):
    """One eager prediction in a worker process: imports, first torch calls."""
    from xdownscale.predict.labelled import _keep_heap_for_torch

    _keep_heap_for_torch()
    est.predict(coarse, **kw)[VAR].load()


def _plain_half(args, days, barrier, results) -> None:
    """One of two plain processes (no dask): the same model and data, half the days, timed
    from a common start, so the pair shows what two processes get from the machine alone."""
    _set_threads(1)
    coarse, fine, elev = load(args)
    est = fit_or_load(args, coarse, fine, elev)
    kw = dict(history=fine, seed=1, inference=args.inference, members=args.members)
    cday = coarse.sel(time=days)
    # warm-up as on the workers; a LocalCluster may leave dask's MALLOC_TRIM_THRESHOLD_ in
    # this process's environment, which _warm's malloc setting undoes (prediction guide)
    _warm(est, cday.isel(time=[0]), kw)
    barrier.wait()
    t0 = time.perf_counter()
    est.predict(cday, **kw)[VAR].load()
    results.put(time.perf_counter() - t0)


def plain_pair(args, days) -> float:
    """Wall time of the slower of two plain processes that split ``days`` between them."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    halves = (days[: len(days) // 2], days[len(days) // 2:])
    procs = [ctx.Process(target=_plain_half, args=(args, h, barrier, results)) for h in halves]
    # one thread for every native pool, as dask's nanny gives its workers, so that the two
    # processes run as the workers do
    pools = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in pools}
    os.environ.update(dict.fromkeys(pools, "1"))
    try:
        for proc in procs:
            proc.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    walls = [results.get() for _ in procs]
    for proc in procs:
        proc.join()
    return max(walls)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache")
    p.add_argument("--days", type=int, default=16)
    p.add_argument("--inference", default=None, help="tiles or patches (default: config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--members", type=int, default=1,
                   help="ensemble members a day (8: sampled members, a task of seconds rather "
                        "than the one network pass of fast()'s point)")
    p.add_argument("--time-chunk", type=int, default=1,
                   help="days per time chunk of the lazy runs (tasks = days / this)")
    p.add_argument("--worker-saturation", default=None,
                   help="distributed.scheduler.worker-saturation for the clusters (dask's "
                   "default 1.1 hands a worker its next task only when it has finished one; "
                   "'inf' hands out every ready task at once)")
    p.add_argument("--eager-threads", default="1,2", help="thread counts of the eager runs "
                   "(2 threads spin against other jobs on a loaded machine: use 1 there)")
    p.add_argument("--day-seconds", type=float, default=None,
                   help="measured CPU seconds of one full A1 day on one thread "
                   "(bench_predict_day.py --threads 1)")
    p.add_argument("--day-flops", type=float, default=None,
                   help="counted FLOPs of one full A1 day (bench_predict_day.py)")
    p.add_argument("--gpu-tflops", type=float, default=100.0,
                   help="assumed sustained TFLOP/s of one data-centre GPU (bf16 convolutions)")
    p.add_argument("--gpu-day-seconds", type=float, default=None,
                   help="seconds of one full A1 day measured on a GPU (bench_predict_day.py "
                   "run there; an H200 took 0.5 s): replaces the FLOP projection")
    p.add_argument("--plain-pair", action="store_true",
                   help="also time two plain processes (no dask) that split the days, started "
                        "together: what two processes get from this machine, the ceiling of "
                        "the 2-worker speed-up here")
    p.add_argument("--speedup2", type=float, default=None,
                   help="skip the runs: project with this 2-worker speed-up")
    args = p.parse_args(argv)
    if args.speedup2 is not None:
        projection(args, args.speedup2)
        return
    import distributed

    coarse, fine, elev = load(args)
    est = fit_or_load(args, coarse, fine, elev)
    days = pd.DatetimeIndex([d for d in coarse.time.values
                             if pd.Timestamp(d) >= pd.Timestamp(fine.time.values[0])
                             + pd.Timedelta(days=est.config_.n_lags)
                             and pd.Timestamp(d).month in (6, 7, 8)])[: args.days]
    kw = dict(history=fine, seed=1, inference=args.inference, members=args.members)
    names = [VAR] + ([f"{VAR}_std"] if args.members > 1 else [])  # the mean and the spread
    cday = coarse.sel(time=days)
    print(f"{len(days)} days, {args.members} member(s), {fine.sizes['lat']} x "
          f"{fine.sizes['lon']} px, inference "
          f"{args.inference or est.config_.inference}, load average {os.getloadavg()[0]:.1f}",
          flush=True)

    walls, ref = {}, None
    for threads in (int(t) for t in args.eager_threads.split(",")):
        _set_threads(threads)
        est.predict(cday.isel(time=[0]), **kw)[VAR].load()  # warm-up
        t0 = time.perf_counter()
        out = est.predict(cday, **kw)[names].to_array().values
        walls[f"eager, {threads} thread(s)"] = time.perf_counter() - t0
        ref = out if ref is None else ref
        print(f"  eager {threads} thread(s): {walls[f'eager, {threads} thread(s)']:.1f} s",
              flush=True)
    _set_threads(1)

    import dask

    saturation = ({} if args.worker_saturation is None else
                  {"distributed.scheduler.worker-saturation": float(args.worker_saturation)})
    for workers in (1, 2):
        with dask.config.set(saturation), \
                distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                         processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            # warm-up on every worker: imports and first torch calls, as in the eager runs
            client.run(_set_threads, 1)
            client.run(_warm, est, cday.isel(time=[0]), kw)
            lazy = est.predict(cday.chunk({"time": args.time_chunk}), **kw)
            t0 = time.perf_counter()
            res = client.compute(lazy).result()
            wall = time.perf_counter() - t0
        np.testing.assert_allclose(res[names].to_array().values, ref, rtol=1e-5)
        walls[f"cluster, {workers} worker(s) x 1 thread"] = wall
        print(f"  cluster {workers} worker(s): {wall:.1f} s", flush=True)

    if args.plain_pair:
        walls["2 plain processes x 1 thread"] = plain_pair(args, days)
        print(f"  2 plain processes: {walls['2 plain processes x 1 thread']:.1f} s", flush=True)

    e1, e2 = walls["eager, 1 thread(s)"], walls.get("eager, 2 thread(s)", np.nan)
    c1, c2 = (walls["cluster, 1 worker(s) x 1 thread"], walls["cluster, 2 worker(s) x 1 thread"])
    tasks = -(-len(days) // args.time_chunk)
    print(f"\n{len(days)} days, {tasks} tasks ({args.time_chunk} day(s) each); results equal "
          "to eager (rtol 1e-5)")
    for name, w in walls.items():
        print(f"  {name:32s} {w:7.1f} s  {w / len(days):6.2f} s/day")
    print(f"1 worker / eager 1 thread: x{c1 / e1:.2f} (target <= 1.2); per-task overhead "
          f"{(c1 - e1) / tasks * 1e3:+.0f} ms")
    print(f"2 workers vs 1 worker: x{c1 / c2:.2f} speed-up (target >= 1.8); "
          f"2 workers vs eager 2 threads: x{e2 / c2:.2f}")
    if args.plain_pair:
        pp = walls["2 plain processes x 1 thread"]
        print(f"2 plain processes vs eager 1 thread: x{e1 / pp:.2f} (this machine's ceiling "
              f"for two workers); 2 workers reach {e1 / c2 / (e1 / pp):.0%} of it")
    projection(args, c1 / c2)


def projection(args, speedup2: float) -> None:
    """One A1 day and a 20-year daily A1 record: CPU from measured seconds, GPU from FLOPs."""
    if args.day_seconds is None or args.day_flops is None:
        print("\n(projection table: pass --day-seconds and --day-flops from bench_predict_day)")
        return
    days20 = 20 * 365.25
    rows = [
        ("this CPU, 1 core", args.day_seconds,
         "measured: CPU seconds of the day (bench_predict_day --threads 1)"),
        ("this CPU, 2 workers x 1 thread", args.day_seconds / speedup2,
         f"projected: / the measured 2-worker speed-up x{speedup2:.2f}"),
        ("this CPU, 2 workers, ideal", args.day_seconds / 2, "projected: / 2 (idle machine)"),
        (f"1 GPU at {args.gpu_tflops:g} TFLOP/s sustained", args.day_flops / (args.gpu_tflops
                                                                          * 1e12),
         "projected from the counted FLOPs (no GPU here)"),
    ]
    if args.gpu_day_seconds is not None:
        rows[-1] = ("1 GPU", args.gpu_day_seconds,
                    "measured: the day on a GPU (bench_predict_day there); 20 years projected")
    print(f"\nprojection, default configuration, one A1 day = {args.day_flops:.3g} FLOP, "
          "one member")
    print(f"  {'where':38s} {'A1 day':>10s} {'20 years':>10s}  basis")
    for name, sec, basis in rows:
        print(f"  {name:38s} {sec:8.1f} s {sec * days20 / 3600:8.1f} h  {basis}")


if __name__ == "__main__":
    main()
