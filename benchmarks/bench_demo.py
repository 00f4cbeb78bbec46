"""Wall time of the demo, stage by stage: what ``xdownscale demo --quick`` spends where.

Runs the main job exactly as the command does (same specification, same logging) into a fresh
folder, then prints the wall time of each stage from the ``timings.json`` the job writes.
Stages whose result is already in ``--out`` are skipped by the job and show as a few seconds:
use a fresh folder (the default) to time everything. ``--report-only`` prints the table of an
earlier run without running anything.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/bench_demo.py            # the quick demo, ~10+ min
    OMP_NUM_THREADS=1 python benchmarks/bench_demo.py --full     # all seasons and models
    python benchmarks/bench_demo.py --out demo-out --report-only

The total depends on the training budgets of ``DownscaleConfig.fast()`` and on how busy the
machine is; the table says where the time goes, so that is where to look.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def print_table(path: Path, total: float | None = None) -> None:
    rows = json.loads(Path(path).read_text())
    width = max(len(f"{r['area']} {r['stage']}") for r in rows)
    print(f"{'stage':<{width}}  seconds  minutes")
    for r in rows:
        name = f"{r['area']} {r['stage']}"
        print(f"{name:<{width}}  {r['seconds']:7.0f}  {r['seconds'] / 60:7.1f}")
    staged = sum(r["seconds"] for r in rows)
    print(f"{'sum of stages':<{width}}  {staged:7.0f}  {staged / 60:7.1f}")
    if total is not None:
        print(f"{'wall time of the job':<{width}}  {total:7.0f}  {total / 60:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="output folder (default: a fresh temporary one)")
    parser.add_argument("--full", action="store_true", help="the full demo, not --quick")
    parser.add_argument("--report-only", action="store_true",
                        help="print the table of an earlier run in --out")
    args = parser.parse_args()
    if args.report_only:
        print_table(Path(args.out) / "timings.json")
        return

    from xdownscale.app.cli import _setup_logging
    from xdownscale.app.job import demo_spec, run_job

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_demo_"))
    undo = _setup_logging()
    try:
        t0 = time.perf_counter()
        run_job(demo_spec(out, quick=not args.full))
        total = time.perf_counter() - t0
    finally:
        undo()
    print(f"\ndemo ({'full' if args.full else 'quick'}) in {out}")
    print_table(out / "timings.json", total)


if __name__ == "__main__":
    main()
