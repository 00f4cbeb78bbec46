"""Bad inputs and faults on purpose: rollout stores, the coarse driver, time axes, checkpoints,
configuration (issue "Reliability"). Each test reproduces one case and shows what happens now."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from conftest import raise_if_dask_computes, tiny_config

import xdownscale  # noqa: F401  (registers the accessors)
from xdownscale import DownscaleConfig, Downscaler
from xdownscale.errors import (
    CheckpointError,
    ConfigError,
    DimensionError,
    ExtrapolationError,
    GridMismatchError,
    LagWindowError,
    NegativeValueError,
    ScalingError,
    StoreError,
    TimeAxisError,
    UnitsError,
)

START, END = "2007-06-17", "2007-06-24"


@pytest.fixture(scope="module")
def est(toy_pair):
    coarse, fine, elev = toy_pair
    torch.manual_seed(0)
    return coarse.downscale.fit(fine, elevation=elev, model="unet", config=tiny_config(),
                                seasons=["JJA"])


def _roll(est, toy_pair, store=None, **kw):
    coarse, fine, _ = toy_pair
    kw = {"start": START, "end": END, "seed": 7, **kw}
    return est.rollout(kw.pop("coarse", coarse), history=kw.pop("history", fine), store=store,
                       **kw)


# -- 1. concurrent writers -------------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    import xdownscale
    from conftest import make_toy_pair
    from xdownscale import Downscaler, rollout as mod
    from xdownscale.errors import StoreError

    model, store, seed, started, release = sys.argv[1:6]
    real = mod._write_day

    def slow(*args, **kwargs):  # hold the store until the test says so
        real(*args, **kwargs)
        open(started, "w").close()
        t0 = time.time()
        while not os.path.exists(release) and time.time() - t0 < 60:
            time.sleep(0.05)

    mod._write_day = slow
    coarse, fine, _ = make_toy_pair()
    est = Downscaler.load(model)
    try:
        est.rollout(coarse, history=fine, start="2007-06-17", end="2007-06-19", seed=int(seed),
                    store=store)
    except StoreError as err:
        print(err)
        sys.exit(3)
""")


def test_1_second_concurrent_writer_is_refused_and_kill_9_resumes(est, toy_pair, tmp_path):
    import time

    est.save(tmp_path / "m")
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(tests=os.path.dirname(__file__)))
    store, release = tmp_path / "roll.zarr", tmp_path / "release"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # Both start at once; whichever takes the store first holds it (after its first day)
    # until the other has ended.
    procs = {seed: subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "m"), str(store), str(seed),
         str(tmp_path / f"started-{seed}"), str(release)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2)}
    try:
        t0 = time.time()
        while all(p.poll() is None for p in procs.values()) and time.time() - t0 < 120:
            time.sleep(0.05)
        loser = next(seed for seed, p in procs.items() if p.poll() is not None)
        winner = 3 - loser
        while not (tmp_path / f"started-{winner}").exists() and time.time() - t0 < 120:
            time.sleep(0.05)
        procs[winner].kill()  # kill -9 in the middle of the rollout: the lock stays behind
    finally:
        release.touch()
        outs = {seed: p.communicate(timeout=120) for seed, p in procs.items()}
    assert procs[loser].returncode == 3, outs[loser]
    assert "being written by another process" in outs[loser][0]
    assert procs[winner].returncode == -9
    assert (tmp_path / "roll.zarr.lock").exists()
    assert xr.open_zarr(store).attrs["xdownscale_rollout_seed"] == winner
    # the lock of the dead process is taken over and the resume equals an uninterrupted run
    resumed = _roll(est, toy_pair, store, seed=winner, end="2007-06-19")
    full = _roll(est, toy_pair, seed=winner, end="2007-06-19")
    np.testing.assert_array_equal(resumed["DUEXTTAU"].values, full["DUEXTTAU"].values)
    assert not (tmp_path / "roll.zarr.lock").exists()


def test_1_stale_lock_of_a_dead_process_is_taken_over(est, toy_pair, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = tmp_path / "roll.zarr"
    import socket

    (tmp_path / "roll.zarr.lock").write_text(json.dumps({"pid": dead.pid,
                                                         "host": socket.gethostname()}))
    out = _roll(est, toy_pair, store, end="2007-06-18")
    assert out.sizes["time"] == 2
    (tmp_path / "roll.zarr.lock").write_text(json.dumps({"pid": os.getpid(),
                                                         "host": socket.gethostname()}))
    with pytest.raises(StoreError, match="another process"):
        _roll(est, toy_pair, store, end="2007-06-18")


# -- 2. a resume of another run is refused, naming what differs ------------------------------
def test_2_resume_of_another_run_is_refused(est, toy_pair, tmp_path):
    coarse, fine, _ = toy_pair
    store = tmp_path / "roll.zarr"
    ref = _roll(est, toy_pair, store, end="2007-06-20")
    attrs = xr.open_zarr(store).attrs
    assert {"xdownscale_estimator", "xdownscale_history", "xdownscale_driver"} <= set(attrs)
    other = copy.deepcopy(est)
    with torch.no_grad():
        next(other.modules_["JJA"].parameters()).add_(1e-3)
    driver = coarse.copy(deep=True)
    driver["DUEXTTAU"].loc[{"time": "2007-06-18"}] *= 1.01
    cases = [
        ({"history": fine * 2}, "history"),
        ({"seed": 8}, "seed"),
        ({"steps": 2}, "steps"),
        ({"coarse": driver}, "2007-06-18"),
    ]
    for change, needle in cases:
        with pytest.raises(StoreError, match=needle):
            _roll(est, toy_pair, store, **change)
    with pytest.raises(StoreError, match="estimator"):
        _roll(other, toy_pair, store)
    with pytest.raises(StoreError, match="start"):
        _roll(est, toy_pair, store, start="2007-06-16")
    # nothing was lost: the same run still resumes and extends
    again = _roll(est, toy_pair, store, end="2007-06-20")
    np.testing.assert_array_equal(again["DUEXTTAU"].values, ref["DUEXTTAU"].values)


# -- 3. a NaN driver day ---------------------------------------------------------------------
def test_3_nan_driver_day_is_refused_or_skipped(est, toy_pair, tmp_path):
    coarse, _, _ = toy_pair
    gappy = coarse.copy(deep=True)
    gappy["DUEXTTAU"].loc[{"time": "2007-06-19"}] = np.nan
    with pytest.raises(LagWindowError, match="2007-06-19"):
        _roll(est, toy_pair, coarse=gappy)
    store = tmp_path / "roll.zarr"
    with pytest.raises(LagWindowError, match="2007-06-19"):
        _roll(est, toy_pair, store, coarse=gappy)
    out = _roll(est, toy_pair, store, coarse=gappy, nan_days="skip")
    vals = out["DUEXTTAU"].values
    skipped = list(out.indexes["time"]).index(pd.Timestamp("2007-06-19"))
    assert np.isnan(vals[skipped]).all()
    assert np.isfinite(np.delete(vals, skipped, axis=0)).all()  # later days are not NaN
    done = xr.open_zarr(store, group="_xdownscale")["done"].values
    assert not done[skipped] and done.sum() == len(done) - 1
    eager = _roll(est, toy_pair, coarse=gappy, nan_days="skip")
    np.testing.assert_array_equal(eager["DUEXTTAU"].values, vals)
    with pytest.raises(ConfigError, match="nan_days"):
        _roll(est, toy_pair, nan_days="fill")


# -- 4. extending a stored rollout to a later end -------------------------------------------
def test_4_later_end_appends_and_equals_one_run(est, toy_pair, tmp_path):
    full = _roll(est, toy_pair)
    store = tmp_path / "roll.zarr"
    first = _roll(est, toy_pair, store, end="2007-06-20")
    assert first.sizes["time"] == 4
    longer = _roll(est, toy_pair, store)
    assert longer.sizes["time"] == 8
    np.testing.assert_array_equal(longer["DUEXTTAU"].values, full["DUEXTTAU"].values)
    assert longer["DUEXTTAU"].attrs == first["DUEXTTAU"].attrs
    changed = {k for k in first.attrs if first.attrs[k] != longer.attrs.get(k)}
    assert changed == {"xdownscale_driver"}  # the driver fingerprint now covers the new days
    shorter = _roll(est, toy_pair, store, end="2007-06-19")  # an earlier end reads back
    np.testing.assert_array_equal(shorter["DUEXTTAU"].values, full["DUEXTTAU"].values[:3])


def test_4_ensemble_store_extends_with_its_spread(toy_pair, tmp_path):
    coarse, fine, elev = toy_pair
    torch.manual_seed(0)
    ddpm = coarse.downscale.fit(fine, elevation=elev, model="ddpm", config=tiny_config(),
                                seasons=["JJA"])
    full = _roll(ddpm, toy_pair, members=2, end="2007-06-20")
    store = tmp_path / "roll.zarr"
    _roll(ddpm, toy_pair, store, members=2, end="2007-06-18")
    out = _roll(ddpm, toy_pair, store, members=2, end="2007-06-20")
    for name in ("DUEXTTAU", "DUEXTTAU_std"):
        np.testing.assert_array_equal(out[name].values, full[name].values)
    with pytest.raises(StoreError, match="members"):
        _roll(ddpm, toy_pair, store, members=3, end="2007-06-20")


# -- 5. store paths that are no store ---------------------------------------------------------
def test_5_store_path_empty_folder_file_or_foreign(est, toy_pair, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _roll(est, toy_pair, empty, end="2007-06-18").sizes["time"] == 2
    a_file = tmp_path / "a_file.zarr"
    a_file.write_text("not a store")
    with pytest.raises(StoreError, match="is a file"):
        _roll(est, toy_pair, a_file)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not overwritten"):
        _roll(est, toy_pair, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"
    other = tmp_path / "other.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr's note on consolidated metadata in format 3
        xr.Dataset({"a": ("x", [1.0])}).to_zarr(other)
    with pytest.raises(StoreError, match="not an xdownscale rollout"):
        _roll(est, toy_pair, other)


def test_store_opens_without_warning_and_hides_the_flags(est, toy_pair, tmp_path):
    store = tmp_path / "roll.zarr"
    _roll(est, toy_pair, store, end="2007-06-18")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(store)
    assert set(ds.data_vars) == {"DUEXTTAU"}


# -- 6. the coarse driver of predict/rollout is checked ---------------------------------------
def test_6_predict_checks_the_coarse_driver(est, toy_pair):
    coarse, fine, _ = toy_pair
    days = est.test_days_["JJA"][:1]
    day = coarse.sel(time=days)
    neg = day.copy(deep=True)
    neg["DUEXTTAU"][0, 0, 0] = -0.5
    with pytest.raises(NegativeValueError, match="coarse driver"):
        est.predict(neg, history=fine)
    with pytest.raises(NegativeValueError):
        _roll(est, toy_pair, coarse=coarse.where(coarse.time != pd.Timestamp("2007-06-18"), -1))
    lazy = est.predict(neg.chunk({"time": 1}), history=fine)  # refused when computed, not before
    with pytest.raises(NegativeValueError):
        lazy.compute()
    for units in ("%", "km"):
        bad = day.copy()
        bad["DUEXTTAU"].attrs["units"] = units
        with pytest.raises(UnitsError, match=units):
            est.predict(bad, history=fine)
    shifted = day.assign_coords(lat=day["lat"] + 0.25)
    with pytest.raises(GridMismatchError, match="fitted"):
        est.predict(shifted, history=fine)
    bigger = coarse.sel(time=days)  # the fitted grid itself (and supersets) are accepted
    assert np.isfinite(est.predict(bigger, history=fine)["DUEXTTAU"].values).all()


def test_6_checks_do_not_compute_dask_input(est, toy_pair):
    coarse, fine, _ = toy_pair
    days = est.test_days_["JJA"][:2]
    with raise_if_dask_computes():
        est.predict(coarse.sel(time=days).chunk({"time": 1}), history=fine.chunk({"time": 50}))


# -- 7. time stamps --------------------------------------------------------------------------
def _shift(ds, hours):
    return ds.assign_coords(time=ds.indexes["time"] + pd.Timedelta(hours=hours))


def test_7_noon_and_mixed_daily_stamps_are_the_same_days(toy_pair):
    coarse, fine, elev = toy_pair
    noon_fine = _shift(fine, 12)
    mixed = coarse.indexes["time"] + pd.to_timedelta(np.arange(coarse.sizes["time"]) % 2 * 12,
                                                     "h")
    mixed_coarse = coarse.assign_coords(time=mixed)
    torch.manual_seed(0)
    est = mixed_coarse.downscale.fit(noon_fine, elevation=elev, model="unet",
                                     config=tiny_config(), seasons=["JJA"])
    days = est.test_days_["JJA"][:1]
    assert (pd.DatetimeIndex(days) == pd.DatetimeIndex(days).normalize()).all()
    a = est.predict(_shift(coarse.sel(time=days), 12), history=noon_fine, seed=1)
    b = est.predict(coarse.sel(time=days), history=fine, seed=1)
    np.testing.assert_array_equal(a["DUEXTTAU"].values, b["DUEXTTAU"].values)


def test_7_timezones_and_cftime_get_clear_errors(est, toy_pair):
    coarse, fine, _ = toy_pair
    day = coarse.sel(time=est.test_days_["JJA"][:1])
    utc = day.assign_coords(time=day.indexes["time"].tz_localize("UTC"))
    assert est.predict(utc, history=fine).sizes["time"] == 1
    local = day.assign_coords(time=day.indexes["time"].tz_localize("Asia/Riyadh"))
    with pytest.raises(TimeAxisError, match="tz_convert"):
        est.predict(local, history=fine)
    cf = day.convert_calendar("noleap", use_cftime=True)
    with pytest.raises(TimeAxisError, match="convert_calendar"):
        est.predict(cf, history=fine)


# -- 8. sub-daily data is refused where daily is assumed --------------------------------------
def test_8_sub_daily_is_refused():
    from xdownscale.data.seasons import split
    from xdownscale.diagnostics.summary import summary
    from xdownscale.diagnostics.temporal import acf

    times = pd.date_range("2007-06-01", periods=96, freq="h")
    da = xr.DataArray(np.random.default_rng(0).random((96, 3, 3)), dims=("time", "lat", "lon"),
                      coords={"time": times, "lat": [1.0, 2.0, 3.0], "lon": [1.0, 2.0, 3.0]},
                      name="DUEXTTAU")
    for call in (lambda: split(da), lambda: acf(da, nlags=3), lambda: summary(da)):
        with pytest.raises(TimeAxisError, match="sub-daily"):
            call()
    with pytest.raises(TimeAxisError, match="sub-daily"):
        da.to_dataset().downscale.fit(da.to_dataset(), config=tiny_config())


# -- 9, 10. checkpoints ----------------------------------------------------------------------
def test_9_every_checkpoint_file_is_verified(est, tmp_path):
    path = tmp_path / "m"
    est.save(path)
    meta_file, manifest_file = path / "estimator.json", path / "manifest.json"
    meta, manifest = meta_file.read_text(), manifest_file.read_text()
    edited = json.loads(meta)
    scaler = edited["scalers"]["JJA"]
    key = next(k for k in scaler if "offset" in k)
    scaler[key] = (np.asarray(scaler[key]) + 0.1).tolist()
    meta_file.write_text(json.dumps(edited))
    with pytest.raises(CheckpointError, match="estimator.json is corrupt or truncated, or was"):
        Downscaler.load(path)
    meta_file.write_text(meta)
    for change, needle in ((lambda m: m.pop("files"), "no checksums"),
                           (lambda m: m.pop("format_version"), "format_version"),
                           (lambda m: m.update(format_version=1), "does not read"),
                           (lambda m: m.update(format_version="2"), "format_version")):
        m = json.loads(manifest)
        change(m)
        manifest_file.write_text(json.dumps(m))
        with pytest.raises(CheckpointError, match=needle):
            Downscaler.load(path)
    manifest_file.unlink()
    with pytest.raises(CheckpointError, match="manifest"):
        Downscaler.load(path)


def test_10_failed_save_keeps_the_earlier_one(est, toy_pair, tmp_path, monkeypatch):
    from xdownscale.estimator import checkpoint
    coarse, fine, _ = toy_pair
    path = tmp_path / "m"
    est.save(path)
    days = est.test_days_["JJA"][:1]
    before = Downscaler.load(path).predict(coarse.sel(time=days), history=fine)
    real = checkpoint._write

    def half(est_, folder):
        real(est_, folder)
        (folder / "static.safetensors").write_bytes(b"")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "_write", half)
    with pytest.raises(OSError, match="disk full"):
        est.save(path)
    monkeypatch.setattr(checkpoint, "_write", real)
    after = Downscaler.load(path).predict(coarse.sel(time=days), history=fine)
    np.testing.assert_array_equal(before["DUEXTTAU"].values, after["DUEXTTAU"].values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    est.save(path)  # over an earlier save: fine
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    with pytest.raises(CheckpointError, match="other files"):
        est.save(foreign)
    assert (foreign / "thesis.tex").exists()


# -- 11. configuration types and ranges ------------------------------------------------------
@pytest.mark.parametrize("change, needle", [
    ({"lr": "1e-3"}, "lr must be of type float"),
    ({"lr": -1}, "lr must be > 0"),
    ({"grad_clip": 0}, "grad_clip"),
    ({"seed": 2**32}, "seed"),
    ({"seed": -1}, "seed"),
    ({"sample_steps": 1.5}, "sample_steps"),
    ({"epochs": True}, "epochs"),
    ({"plateau_factor": 1.5}, "plateau_factor"),
    ({"weight_decay": float("nan")}, "weight_decay"),
    ({"small_widths": (8, 16.5, 32)}, "small_widths"),
    ({"patches_per_day": 0}, "patches_per_day"),
])
def test_11_config_types_and_ranges_are_checked_up_front(change, needle):
    with pytest.raises(ConfigError, match=needle):
        DownscaleConfig(**change)
    with pytest.raises(ConfigError, match=needle):
        DownscaleConfig.fast().replace(**change)


def test_11_valid_configs_still_pass():
    for cfg in (DownscaleConfig(), DownscaleConfig.paper(), DownscaleConfig.fast(),
                DownscaleConfig(seed=2**32 - 1, lr=1, patches_per_day=None)):
        assert DownscaleConfig.from_dict(cfg.to_dict()) == cfg


def test_11_predict_and_rollout_arguments(est, toy_pair):
    coarse, fine, _ = toy_pair
    day = coarse.sel(time=est.test_days_["JJA"][:1])
    for kwargs, needle in (({"members": 1.5}, "members"), ({"members": "2"}, "members"),
                           ({"seed": 2**40}, "seed"), ({"seed": -1}, "seed"),
                           ({"steps": 1.5}, "steps")):
        with pytest.raises(ConfigError, match=needle):
            est.predict(day, history=fine, **kwargs)
        with pytest.raises(ConfigError, match=needle):
            _roll(est, toy_pair, **kwargs)


# -- 13. unclear errors made clear -----------------------------------------------------------
def test_13_clear_errors_for_bad_fit_inputs(toy_pair):
    coarse, fine, elev = toy_pair
    fit = {"config": tiny_config(), "seasons": ["JJA"], "model": "unet"}
    with_lev = coarse.expand_dims(lev=[1.0, 2.0], axis=1)
    with pytest.raises(DimensionError, match=r"lev.*isel\(lev=0\)"):
        with_lev.downscale.fit(fine, **fit)
    metres = fine.rename(lat="y", lon="x").assign_coords(
        y=("y", fine["lat"].values * 1e5, {"units": "m"}),
        x=("x", fine["lon"].values * 1e5, {"units": "m"}))
    with pytest.raises(DimensionError, match="not in degrees"):
        coarse.downscale.fit(metres, **fit)
    with pytest.raises(ScalingError, match="all NaN"):
        (coarse * np.nan).downscale.fit(fine, **fit)
    small_dem = elev.isel(lat=slice(4, 12), lon=slice(4, 12))
    with pytest.raises(ExtrapolationError, match="elevation"):
        coarse.downscale.fit(fine, elevation=small_dem.interp(lat=small_dem.lat[::2]), **fit)
    dup = xr.concat([fine.isel(time=[0]), fine], dim="time")
    with pytest.raises(TimeAxisError, match="fine record"):
        coarse.downscale.fit(dup, **fit)


def test_13_size_one_extra_dims_are_dropped():
    from xdownscale.estimator.inputs import _as_fine_da

    da = xr.DataArray(np.ones((3, 1, 2, 2)), dims=("time", "lev", "lat", "lon"),
                      coords={"time": pd.date_range("2007-01-01", periods=3),
                              "lat": [1.0, 2.0], "lon": [1.0, 2.0]})
    assert _as_fine_da(da, None, "x").dims == ("time", "lat", "lon")
