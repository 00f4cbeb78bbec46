"""Template: downscale your own MERRA-2 and G5NR files.

Point it at real files (NASA GES DISC needs an Earthdata login)::

    python examples/real_data_template.py \
        --merra2 "/data/merra2/MERRA2_*.tavg1_2d_aer_Nx.*.nc4" \
        --g5nr "/data/g5nr/c1440_NR.inst30mn_2d_aer_Nx.*.nc4" \
        --elevation /data/gmted/gmted2010_30s.nc --area A1 --season JJA --out results/

Without paths it first writes a small set of files in the real products' layouts (hourly
MERRA-2, 30-minute G5NR, a 30" DEM) from the synthetic data, so the template runs anywhere::

    python examples/real_data_template.py --quick
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import xdownscale
from xdownscale import DownscaleConfig


def write_real_layout(root: Path, window=(33.0, 34.5, 45.0, 46.5)) -> dict:
    """Write synthetic data as monthly files of hourly (MERRA-2) and 30-minute (G5NR) steps."""
    coarse, fine, elev = xdownscale.datasets.synthetic(
        area="A1", window=window, coarse_start="2005-03-01", coarse_end="2006-08-31",
        fine_days=474)
    for name, ds, freq, n in (("merra2", coarse, "h", 24), ("g5nr", fine, "30min", 48)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for month, days in ds.resample(time="MS"):
            steps = pd.date_range(days.time.values[0], periods=days.sizes["time"] * n, freq=freq)
            if name == "merra2":
                steps = steps + pd.Timedelta(minutes=30)  # tavg1 stamps are HH:30
            vals = np.repeat(days["DUEXTTAU"].values, n, axis=0)
            out = xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), vals,
                                           dict(days["DUEXTTAU"].attrs, units="1"))},
                             coords={"time": steps, "lat": days.lat, "lon": days.lon})
            tag = pd.Timestamp(month).strftime("%Y%m")
            out.to_netcdf(root / name / f"{name}_{tag}.nc4")
    elev.to_dataset(name="elevation").to_netcdf(root / "dem.nc")
    return {"merra2": str(root / "merra2" / "*.nc4"), "g5nr": str(root / "g5nr" / "*.nc4"),
            "elevation": str(root / "dem.nc"),
            "region": (window[0], window[1], window[2], window[3])}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--merra2")
    p.add_argument("--g5nr")
    p.add_argument("--elevation")
    p.add_argument("--area", default="A1", help="a name from xdownscale.REGIONS")
    p.add_argument("--season", default="JJA")
    p.add_argument("--out", default=None)
    p.add_argument("--quick", action="store_true", help="tiny models (for CI)")
    args = p.parse_args(argv)

    tmp = None
    if args.merra2 is None:
        tmp = tempfile.TemporaryDirectory()
        paths = write_real_layout(Path(tmp.name))
        region = xdownscale.Region("sample", *paths["region"])
    else:
        paths = {"merra2": args.merra2, "g5nr": args.g5nr, "elevation": args.elevation}
        region = args.area

    # Lazy, dask-backed daily means clipped to the region (MERRA-2 with a margin for bicubic).
    coarse = xdownscale.open_merra2(paths["merra2"], region=region)
    fine = xdownscale.open_g5nr(paths["g5nr"], region=region)
    elev = xdownscale.open_elevation(paths["elevation"], region=region) if paths["elevation"] \
        else None
    print(fine)

    # Domain check before transfer: W1 between the normalised products (paper Table 2).
    w = coarse.downscale.regrid_like(fine).dustdiag.wasserstein(fine)
    print(f"daily W1 mean {float(w.daily_mean):.4f} [P10 {float(w.p10):.4f}, "
          f"P90 {float(w.p90):.4f}], pooled {float(w.pooled):.4f}")

    config = DownscaleConfig.fast()
    if args.quick:
        config = config.replace(small_widths=(8, 16, 32), large_widths=(8, 16, 32), epochs=1,
                                small_epochs=1, small_max_days=30, patches_per_day=8,
                                infer_stride=8, min_steps=0,
                                small_min_steps=0, verbose=False)
    est = coarse.downscale.fit(fine, elevation=elev, model="unet", config=config,
                               seasons=[args.season])
    days = est.test_days_[args.season]
    pred = est.predict(coarse.sel(time=days), history=fine)
    print(pred.dustdiag.skill(fine)[["r2_mean", "rmse_mean"]].to_dataframe())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        est.save(out / "model")
        pred.to_netcdf(out / "test_predictions.nc")
        print(f"saved the model and predictions in {out}")
    if tmp is not None:
        tmp.cleanup()
    return pred


if __name__ == "__main__":
    main()
