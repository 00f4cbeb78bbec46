"""Quickstart: downscale the embedded synthetic MERRA-2/G5NR pair and check the skill.

Run::

    python examples/quickstart.py            # DownscaleConfig.fast(): ~15 min on 2 CPU cores
    python examples/quickstart.py --quick    # tiny models, seconds (what CI runs)
"""

from __future__ import annotations

import argparse

import xdownscale
from xdownscale import DownscaleConfig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models (for CI)")
    parser.add_argument("--out", default="quickstart.png", help="where to save the map figure")
    args = parser.parse_args(argv)

    # 1. Data: coarse (MERRA-2 grid, 2000-2024), fine (G5NR grid, 763 days), elevation (30").
    coarse, fine, elev = xdownscale.datasets.synthetic(area="A1", seed=0)

    # 2. Fit: stage A pretrains the small U-Net on the coarse record, stage B freezes its
    #    encoder and trains the large model on the overlap. One model per season; here JJA.
    config = DownscaleConfig.fast(verbose=not args.quick)
    if args.quick:
        config = config.replace(small_widths=(8, 16, 32), large_widths=(8, 16, 32), epochs=1,
                                small_epochs=1, small_max_days=30, patches_per_day=8,
                                sample_steps=4, infer_stride=8, min_steps=0,
                                small_min_steps=0)
    est = coarse.downscale.fit(fine, elevation=elev, model="ddpm", config=config, seasons=["JJA"])
    print(est)

    # 3. Predict the held-out test days (the last 10 % of JJA days), 4 ensemble members.
    days = est.test_days_["JJA"]
    members = 4
    if args.quick:
        days, members = days[:3], 2
    # keep_members=True keeps each member: the skill then includes the ensemble's CRPS.
    pred = est.predict(coarse.sel(time=days), history=fine, members=members, keep_members=True,
                       seed=0)

    # 4. Judge it against the truth, next to bicubic interpolation of the coarse field.
    bicubic = coarse.downscale.regrid_like(fine, method="cubic")
    for name, field in (("ddpm", pred), ("bicubic", bicubic.sel(time=days))):
        scores = field.dustdiag.skill(fine).sel(space="log10")
        crps = f"  CRPS(log10) = {float(scores.crps_mean):.3f}" if "crps_mean" in scores else ""
        print(f"{name:8s} R2(log10) = {float(scores.r2_mean):.3f}  "
              f"RMSE(log10) = {float(scores.rmse_mean):.3f}{crps}")

    # truth, one member, the point prediction (fast()'s DDPM: its one-step conditional mean;
    # pred["DUEXTTAU"].attrs["xdownscale_point"] says which), and point minus truth
    day = days[len(days) // 2]
    member = pred["DUEXTTAU_members"].isel(member=0)
    axes = fine.dustdiag.plot_map(member, pred, time=day, difference=(0, 2),
                                  labels=["truth", "member 1", "point prediction"])
    axes[0].figure.savefig(args.out, dpi=100, bbox_inches="tight")
    print(f"map saved to {args.out}")
    return pred


if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")
    main()
