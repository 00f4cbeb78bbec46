"""The main job on real-layout files: config validation, the run, the report, resuming."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from xdownscale.app.cli import main
from xdownscale.app.runconfig import load_run_config
from xdownscale.errors import ConfigError

ATTRS = {"long_name": "Dust Extinction AOT [550 nm]", "units": "1", "source": "GEOS-5 (file)"}


def _field(times, lat, lon, rng):
    t = (times - times[0]) / pd.Timedelta(days=1)
    base = 0.2 + 0.1 * np.sin(2 * np.pi * np.asarray(t) / 365.25)
    pattern = 1 + 0.3 * np.sin(lat[:, None] * 9.0) * np.cos(lon[None, :] * 7.0)
    noise = 1 + 0.2 * rng.random((len(times), lat.size, lon.size))
    return (base[:, None, None] * pattern * noise).astype("float32")


def _write_files(root, rng):
    """MERRA-2-like hourly files (10 days each) and G5NR-like 30-minute files, and a DEM."""
    clat = np.arange(19.0, 22.51, 0.5)
    clon = np.arange(38.75, 43.2, 0.625)
    flat = 20.0 + 0.0625 * np.arange(24)
    flon = 40.0 + 0.0625 * np.arange(24)
    (root / "merra2").mkdir()
    (root / "g5nr").mkdir()
    for start in pd.date_range("2005-04-01", "2005-08-31", freq="10D"):
        hours = pd.date_range(start + pd.Timedelta(minutes=30), periods=240, freq="h")
        hours = hours[hours < pd.Timestamp("2005-09-01")]
        ds = xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), _field(hours, clat, clon, rng),
                                      ATTRS)}, coords={"time": hours, "lat": clat, "lon": clon})
        ds.to_netcdf(root / "merra2" / f"MERRA2_300.tavg1_2d_aer_Nx.{start:%Y%m%d}.nc4")
    for start in pd.date_range("2005-05-15", "2005-08-31", freq="15D"):
        steps = pd.date_range(start, periods=48 * 15, freq="30min")
        steps = steps[steps < pd.Timestamp("2005-09-01")]
        ds = xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), _field(steps, flat, flon, rng),
                                      ATTRS)}, coords={"time": steps, "lat": flat, "lon": flon})
        ds.to_netcdf(root / "g5nr" / f"c1440_NR.inst30mn_2d_aer_Nx.{start:%Y%m%d}.nc4")
    dlat = np.arange(19.5, 22.0, 1 / 120)
    dlon = np.arange(39.5, 42.0, 1 / 120)
    z = (500 + 400 * np.sin(dlat[:, None]) * np.cos(dlon[None, :])).astype("float32")
    xr.Dataset({"elevation": (("lat", "lon"), z, {"units": "m"})},
               coords={"lat": dlat, "lon": dlon}).to_netcdf(root / "dem.nc")


@pytest.fixture
def run_dir(tmp_path):
    _write_files(tmp_path, np.random.default_rng(0))
    cfg = {
        "output": "out",
        "areas": {"T": [20.0, 21.45, 40.0, 41.45]},
        "seasons": ["JJA"],
        "models": ["unet"],
        "merra2": "merra2/MERRA2_*.nc4",
        "g5nr": ["g5nr/*.nc4"],
        "elevation": "dem.nc",
        "config": "fast",
        "overrides": {"small_widths": [8, 16, 32], "large_widths": [8, 16, 32], "epochs": 1,
                      "small_epochs": 1, "small_max_days": 20, "patches_per_day": 4,
                      "infer_stride": 8, "small_min_steps": 0, "verbose": False},
        "predict": {"members": 1},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def test_config_is_validated_before_any_work(run_dir):
    spec = load_run_config(run_dir / "run.yaml")
    assert spec.areas == ["T"] and spec.models == ["unet"] and spec.config.epochs == 1
    raw = yaml.safe_load((run_dir / "run.yaml").read_text())
    cases = [
        ({"unknown_key": 1}, "unknown key"),
        ({"models": ["gan"]}, "models"),
        ({"seasons": ["WINTER"]}, "seasons"),
        ({"areas": ["Z9"]}, "unknown area"),
        ({"merra2": "nothing/*.nc4"}, "no file matches"),
        ({"overrides": {"epochz": 3}}, "epochz"),
        ({"config": "huge"}, "config"),
        ({"predict": {"membrs": 2}}, "predict"),
    ]
    for change, message in cases:
        bad = {**raw, **change}
        (run_dir / "bad.yaml").write_text(yaml.safe_dump(bad))
        with pytest.raises(ConfigError, match=message):
            load_run_config(run_dir / "bad.yaml")
    del raw["g5nr"]
    (run_dir / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="g5nr"):
        load_run_config(run_dir / "bad.yaml")
    assert main(["run", str(run_dir / "bad.yaml")]) == 1


def test_run_writes_report_and_resumes(run_dir, capsys):
    assert main(["run", str(run_dir / "run.yaml"), "--check"]) == 0
    assert main(["run", str(run_dir / "run.yaml")]) == 0
    out = run_dir / "out"
    report = (out / "report.md").read_text()
    for needle in ("Table 1", "Table 2", "Table 3", "bicubic", "bicubic_bc", "Validation days",
                   "Figure 4", "Figure 6"):
        assert needle in report
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert len(figures) >= 6
    linked = re.findall(r"\]\((figures/[^)]+\.png)\)", report)
    assert len(linked) == len(figures)
    for rel in linked:
        assert (out / rel).is_file()
    skill = pd.read_csv(out / "tables" / "T_table3_skill.csv")
    assert {"unet", "bicubic"} <= set(skill["model"])
    assert (out / "models" / "T_unet" / "estimator.json").is_file()
    assert not (out / "models" / "T_unet.training").exists()  # the training state, once saved
    capsys.readouterr()
    # a rerun into the same folder reuses what is there
    assert main(["run", str(run_dir / "run.yaml")]) == 0
    assert "loading the saved model" in capsys.readouterr().err


def test_a_run_interrupted_in_training_resumes_the_fit(run_dir, capsys, monkeypatch):
    from xdownscale.models import TemporalUNet, TransferModel

    real = TransferModel.loss

    def interrupted(self, *args, **kwargs):  # stage B's first step: stage A is done
        raise KeyboardInterrupt

    monkeypatch.setattr(TransferModel, "loss", interrupted)
    assert main(["run", str(run_dir / "run.yaml")]) == 130
    state = run_dir / "out" / "models" / "T_unet.training"
    assert (state / "JJA" / "stage_a.pt").is_file()
    assert "rerun the same command to resume" in capsys.readouterr().err

    forward = TemporalUNet.forward

    def no_stage_a(self, *args, **kwargs):  # the small model trains in stage A only
        if self.training:
            raise AssertionError("the finished stage A was trained again")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(TransferModel, "loss", real)
    monkeypatch.setattr(TemporalUNet, "forward", no_stage_a)
    assert main(["run", str(run_dir / "run.yaml")]) == 0
    assert "resuming the interrupted fit" in capsys.readouterr().err
    assert (run_dir / "out" / "models" / "T_unet" / "estimator.json").is_file()
    assert not state.exists()


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip()
    assert main([]) == 2


def test_ensemble_run_scores_crps_and_labels_from_the_data(run_dir):
    raw = yaml.safe_load((run_dir / "run.yaml").read_text())
    raw.update(models=["ddpm"], predict={"members": 2})
    raw["overrides"].update(timesteps=20, sample_steps=2)
    (run_dir / "ens.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", str(run_dir / "ens.yaml")]) == 0
    out = run_dir / "out"
    skill = pd.read_csv(out / "tables" / "T_table3_skill.csv")
    ddpm = skill[skill["model"] == "ddpm"]
    assert np.isfinite(ddpm["crps"]).all() and np.isfinite(ddpm["ssr"]).all()
    report = (out / "report.md").read_text()
    assert "-like" not in report and "fine (G5NR)" in report and "coarse (MERRA-2)" in report
    assert "ddpm JJA: the ensemble spread was calibrated on these days" in report
    t1 = pd.read_csv(out / "tables" / "T_table1_summary.csv")
    assert {"fine (G5NR)", "coarse (MERRA-2)"} == set(t1["product"])
    with xr.open_dataset(out / "predictions" / "T_ddpm_test.nc") as pred:
        assert "DUEXTTAU_members" in pred and pred.sizes["member"] == 2
        assert pred.attrs["Conventions"].startswith("CF-") and "xdownscale" in pred.attrs["history"]
        assert pred["time"].attrs["standard_name"] == "time"
        assert "source" not in pred["DUEXTTAU"].attrs
        assert pred["DUEXTTAU"].encoding.get("zlib") or pred["DUEXTTAU"].encoding.get(
            "compression")
    stages = [r["stage"] for r in yaml.safe_load((out / "timings.json").read_text())]
    assert "fit ddpm" in stages and "diagnostics and report" in stages
