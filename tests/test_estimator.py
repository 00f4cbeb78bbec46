"""The fitted estimator: fit, transfer, predict, members, save/load, dask, errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from conftest import raise_if_dask_computes, tiny_config

import xdownscale
from xdownscale import Downscaler
from xdownscale.errors import (
    CheckpointError,
    ConfigError,
    GridMismatchError,
    LagWindowError,
    NegativeValueError,
    NotFittedError,
)


@pytest.fixture(scope="module")
def fitted(toy_pair):
    coarse, fine, elev = toy_pair
    torch.manual_seed(0)
    return {kind: coarse.downscale.fit(fine, elevation=elev, model=kind, config=tiny_config(),
                                       seasons=["JJA"])
            for kind in ("unet", "ddpm")}


def _test_days(est, n=2):
    return est.test_days_["JJA"][:n]


def test_not_fitted_errors(toy_pair):
    coarse, fine, _ = toy_pair
    est = Downscaler(tiny_config(), model="unet")
    with pytest.raises(NotFittedError, match="fit"):
        est.predict(coarse.isel(time=[0]), history=fine)
    with pytest.raises(NotFittedError):
        est.save("nowhere")
    assert "not fitted" in repr(est)


def test_params_roundtrip():
    est = Downscaler(tiny_config(), model="unet")
    assert est.get_params()["model"] == "unet"
    est.set_params(model="ddpm", epochs=3)
    assert est.model == "ddpm" and est.config.epochs == 3
    with pytest.raises(ConfigError):
        est.set_params(no_such_field=1)


def test_bad_inputs_are_refused(toy_pair):
    coarse, fine, elev = toy_pair
    with pytest.raises(ConfigError, match="model"):
        coarse.downscale.fit(fine, model="gan", config=tiny_config())
    with pytest.raises(ConfigError, match="season"):
        coarse.downscale.fit(fine, config=tiny_config(), seasons=["XYZ"])
    neg = fine.copy(deep=True)
    neg["DUEXTTAU"][0, 0, 0] = -1.0
    with pytest.raises(NegativeValueError):
        coarse.downscale.fit(neg, config=tiny_config(), seasons=["JJA"])
    with pytest.raises(GridMismatchError, match="coarse day"):
        coarse.sel(time=slice("2006-01-01", None)).downscale.fit(fine, config=tiny_config())


def test_fit_sets_attributes(fitted):
    est = fitted["unet"]
    assert est.seasons_ == ["JJA"]
    assert set(est.modules_) == {"JJA"}
    hist = est.training_log_
    assert {"train_loss", "val_loss", "lr", "best"} <= set(hist.columns)
    assert set(hist.index.get_level_values("stage")) == {"A", "B"}
    with pytest.warns(FutureWarning, match="training_log_"):  # its name in 0.1
        assert est.history_ is hist
    plan = est.plans_["JJA"]
    # temporal order: every train day precedes every val day, every val day every test day
    assert plan.train.max() < plan.val.min() <= plan.val.max() < plan.test.min()
    assert not set(plan.train) & set(plan.holdout)


def test_encoder_is_frozen_and_transferred(toy_pair):
    """Stage B leaves the pretrained encoder untouched, keeps it out of the optimiser, and
    feeds it the fine history."""
    from xdownscale.estimator import stages as _fit
    from xdownscale.estimator.training import make_optimizer

    coarse, fine, elev = toy_pair
    snapshots, seen = {}, []
    original = _fit.SeasonModule

    class Spy(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            snapshots["before"] = {k: v.clone() for k, v in self.small.encoder.state_dict().items()}
            opt = make_optimizer(self, lr=1e-3, weight_decay=1e-2)
            ids = {id(p) for g in opt.param_groups for p in g["params"]}
            snapshots["in_optimizer"] = any(id(p) in ids for p in self.encoder.parameters())
            self.encoder.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))

    _fit.SeasonModule = Spy
    try:
        est = coarse.downscale.fit(fine, elevation=elev, model="unet", config=tiny_config(epochs=2),
                                   seasons=["JJA"])
    finally:
        _fit.SeasonModule = original
    after = est.modules_["JJA"].small.encoder.state_dict()
    for key, value in snapshots["before"].items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
    assert not snapshots["in_optimizer"]
    assert all(not p.requires_grad for p in est.modules_["JJA"].encoder.parameters())
    # the encoder input has n_lags channels and equals scaled log10 fine history patches
    x = seen[0]
    assert x.shape[1:] == (est.config_.n_lags, est.config_.patch, est.config_.patch)
    scaler = est.scalers_["JJA"]
    fine_scaled = scaler.transform(np.log10(np.maximum(fine["DUEXTTAU"].values, 1e-6)))
    patch = x[0, -1].numpy()
    # the most recent lag of some patch must match some day's fine patch exactly
    found = False
    for day in range(fine_scaled.shape[0]):
        for i in range(0, fine_scaled.shape[1] - 15, 8):
            for j in range(0, fine_scaled.shape[2] - 15, 8):
                if np.allclose(fine_scaled[day, i:i + 16, j:j + 16], patch, atol=1e-6):
                    found = True
                    break
    assert found


def test_stage_b_is_built_on_the_pretrained_models_device():
    """Stage A leaves its model on the training device (a GPU); building stage B around it
    probes the encoder there. The meta device stands in for a GPU on a CPU-only machine:
    probing with a CPU tensor failed on CUDA with 'Expected all tensors to be on the same
    device'."""
    from xdownscale.estimator.modules import SeasonModule, build_small

    cfg = tiny_config()
    plain = SeasonModule("ddpm", cfg)
    moved = SeasonModule("ddpm", cfg, small=build_small("ddpm", cfg).to("meta"))
    first = "net.encoder.blocks.0.conv1"
    assert (moved.large.get_submodule(first).in_channels
            == plain.large.get_submodule(first).in_channels > 0)


@pytest.mark.parametrize("kind", ["unet", "ddpm"])
def test_predict_shape_units_and_seed(fitted, toy_pair, kind):
    coarse, fine, _ = toy_pair
    est = fitted[kind]
    days = _test_days(est)
    pred = est.predict(coarse.sel(time=days), history=fine, seed=1)
    out = pred["DUEXTTAU"]
    assert out.dims == ("time", "lat", "lon")
    assert out.shape == (2, fine.sizes["lat"], fine.sizes["lon"])
    np.testing.assert_array_equal(out["lat"], fine["lat"])
    assert np.isfinite(out).all() and (out > 0).all()
    # data units: same order of magnitude as the truth
    ratio = float(out.mean() / fine["DUEXTTAU"].sel(time=days).mean())
    assert 0.2 < ratio < 5
    again = est.predict(coarse.sel(time=days), history=fine, seed=1)
    np.testing.assert_array_equal(out.values, again["DUEXTTAU"].values)


def test_ddpm_members_spread_and_keep(fitted, toy_pair):
    coarse, fine, _ = toy_pair
    est = fitted["ddpm"]
    days = _test_days(est)
    pred = est.predict(coarse.sel(time=days), history=fine, members=3, keep_members=True, seed=0)
    assert pred["DUEXTTAU_members"].sizes["member"] == 3
    assert float(pred["DUEXTTAU_std"].mean()) > 0
    # fast()'s point is the one-step conditional mean; with "ensemble_mean" the members' mean
    assert est.config_.point_estimate == "conditional_mean"
    old, est.config_ = est.config_, est.config_.replace(point_estimate="ensemble_mean")
    try:
        ens = est.predict(coarse.sel(time=days), history=fine, members=3, keep_members=True,
                          seed=0)
    finally:
        est.config_ = old
    np.testing.assert_array_equal(ens["DUEXTTAU_members"].values, pred["DUEXTTAU_members"].values)
    np.testing.assert_allclose(ens["DUEXTTAU_members"].mean("member"), ens["DUEXTTAU"],
                               rtol=1e-5)
    other = est.predict(coarse.sel(time=days), history=fine, members=3, seed=5)
    assert not np.array_equal(other["DUEXTTAU"].values, pred["DUEXTTAU"].values)


def test_day_result_independent_of_other_days(fitted, toy_pair):
    coarse, fine, _ = toy_pair
    est = fitted["ddpm"]
    days = _test_days(est, 3)
    together = est.predict(coarse.sel(time=days), history=fine, seed=2)
    alone = est.predict(coarse.sel(time=days[1:2]), history=fine, seed=2)
    np.testing.assert_array_equal(together["DUEXTTAU"].values[1], alone["DUEXTTAU"].values[0])


def test_dask_equals_eager_and_is_lazy(fitted, toy_pair):
    coarse, fine, _ = toy_pair
    est = fitted["ddpm"]
    days = _test_days(est, 3)
    eager = est.predict(coarse.sel(time=days), history=fine, members=2, seed=3)
    lazy_in = coarse.sel(time=days).chunk({"time": 2})
    with raise_if_dask_computes():
        lazy = est.predict(lazy_in, history=fine.chunk({"time": 100}), members=2, seed=3)
    assert lazy["DUEXTTAU"].chunks is not None
    np.testing.assert_allclose(lazy["DUEXTTAU"].values, eager["DUEXTTAU"].values, rtol=1e-6)
    np.testing.assert_allclose(lazy["DUEXTTAU_std"].values, eager["DUEXTTAU_std"].values,
                               rtol=1e-5, atol=1e-7)


def test_unet_members_are_one_field_whatever_the_member_shift(fitted, toy_pair):
    # member_shift cuts a generative model's members on shifted grids; the U-Net's members
    # stay one deterministic field, so its spread is zero rather than a measure of the cuts
    coarse, fine, _ = toy_pair
    est = fitted["unet"]
    assert est.config_.member_shift
    pred = est.predict(coarse.sel(time=_test_days(est)), history=fine, members=3,
                       keep_members=True)
    members = pred["DUEXTTAU_members"].values
    np.testing.assert_array_equal(members, np.broadcast_to(members[:1], members.shape))
    np.testing.assert_allclose(pred["DUEXTTAU_std"].values, 0.0, atol=1e-6)  # float rounding


def test_dask_block_of_days_apart_equals_eager(fitted, toy_pair):
    # one time chunk holding days whose lag windows are apart (and a record day in between
    # that no window needs is missing): each task slices one run of the history
    coarse, fine, _ = toy_pair
    est = fitted["unet"]
    late = np.datetime64(_test_days(est, 1)[0], "D")
    early = late - np.timedelta64(est.config_.n_lags + 2, "D")
    days = np.array([early, late], "datetime64[ns]")
    hist = fine.drop_sel(time=[early + np.timedelta64(1, "D")])  # in no window
    eager = est.predict(coarse.sel(time=days), history=hist, seed=3)
    lazy = est.predict(coarse.sel(time=days).chunk({"time": 2}), history=hist, seed=3)
    np.testing.assert_allclose(lazy["DUEXTTAU"].values, eager["DUEXTTAU"].values, rtol=1e-6)


@pytest.mark.parametrize("kind", ["unet", "ddpm"])
def test_save_load_identical(fitted, toy_pair, tmp_path, kind):
    coarse, fine, _ = toy_pair
    est = fitted[kind]
    days = _test_days(est)
    est.save(tmp_path / "m")
    loaded = Downscaler.load(tmp_path / "m")
    a = est.predict(coarse.sel(time=days), history=fine, seed=4)
    b = loaded.predict(coarse.sel(time=days), history=fine, seed=4)
    np.testing.assert_array_equal(a["DUEXTTAU"].values, b["DUEXTTAU"].values)
    assert loaded.config_ == est.config_
    assert loaded.seasons_ == est.seasons_
    assert not any(p.suffix in (".pkl", ".pt", ".pickle") for p in (tmp_path / "m").iterdir())


def test_corrupt_checkpoints_are_refused(fitted, tmp_path):
    from xdownscale.estimator.checkpoint import _sha256

    est = fitted["unet"]
    path = tmp_path / "m"
    est.save(path)
    weights = path / "JJA.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Downscaler.load(path)
    weights.write_bytes(data)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="Upgrade"):
        Downscaler.load(path)
    manifest["format_version"] = 2
    meta = json.loads((path / "estimator.json").read_text())
    meta["config"]["large_widths"] = [4, 8, 16]  # weights no longer fit the architecture
    (path / "estimator.json").write_text(json.dumps(meta))
    manifest["files"]["estimator.json"] = _sha256(path / "estimator.json")
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="do not fit"):
        Downscaler.load(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        Downscaler.load(path)
    with pytest.raises(CheckpointError, match="no such folder"):
        Downscaler.load(tmp_path / "nothing-here")


def test_predict_errors(fitted, toy_pair):
    coarse, fine, _ = toy_pair
    est = fitted["unet"]
    with pytest.raises(ConfigError, match="season"):
        est.predict(coarse.sel(time=["2006-01-10"]), history=fine)
    with pytest.raises(LagWindowError, match="history"):
        est.predict(coarse.sel(time=["2006-07-10"]))
    with pytest.raises(LagWindowError):
        est.predict(coarse.sel(time=["2008-07-10"]), history=fine)  # no fine history then
    with pytest.raises(ConfigError, match="members"):
        est.predict(coarse.sel(time=["2006-07-10"]), history=fine, members=0)


def test_rollout_resumes_identically(fitted, toy_pair, tmp_path, monkeypatch):
    coarse, fine, _ = toy_pair
    est = fitted["ddpm"]
    full = est.rollout(coarse, history=fine, start="2007-06-17", end="2007-06-24", seed=7)
    assert full.sizes["time"] == 8
    store = tmp_path / "roll.zarr"
    from xdownscale.predict import rollout as mod
    calls = {"n": 0}
    real = mod._write_day

    def crash_after_three(*args, **kwargs):
        if calls["n"] == 3:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, "_write_day", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        est.rollout(coarse, history=fine, start="2007-06-17", end="2007-06-24", seed=7,
                    store=store)
    monkeypatch.setattr(mod, "_write_day", real)
    done = xr.open_zarr(store, group="_xdownscale", consolidated=False)["done"].values
    assert done.sum() == 3
    resumed = est.rollout(coarse, history=fine, start="2007-06-17", end="2007-06-24", seed=7,
                          store=store)
    np.testing.assert_array_equal(resumed["DUEXTTAU"].values, full["DUEXTTAU"].values)
    # the DDPM carries its one-step mean (default carry="mean"), rebuilt from the store: with
    # fast()'s conditional-mean point that is the output; carrying the ensemble beside it,
    # the members' mean is stored apart and rebuilt too
    assert "DUEXTTAU_history" not in full
    kw = dict(history=fine, start="2007-06-17", end="2007-06-24", seed=7, carry="ensemble",
              members=2, steps=2)
    ens = est.rollout(coarse, **kw)
    monkeypatch.setattr(mod, "_write_day", crash_after_three)
    calls["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        est.rollout(coarse, store=tmp_path / "ens.zarr", **kw)
    monkeypatch.setattr(mod, "_write_day", real)
    again = est.rollout(coarse, store=tmp_path / "ens.zarr", **kw)
    for name in ("DUEXTTAU", "DUEXTTAU_history", "DUEXTTAU_std"):
        np.testing.assert_array_equal(again[name].values, ens[name].values)


def test_rollout_gap_in_driver_names_dates(fitted, toy_pair):
    coarse, fine, _ = toy_pair
    est = fitted["unet"]
    gappy = coarse.drop_sel(time=["2007-06-20", "2007-06-21"])
    with pytest.raises(LagWindowError, match="2007-06-20"):
        est.rollout(gappy, history=fine, start="2007-06-17", end="2007-06-24")


def test_accessor_fit_forwards(toy_pair):
    coarse, fine, elev = toy_pair
    est = coarse.downscale.fit(fine, elevation=elev, model="unet", config=tiny_config(),
                               seasons="JJA", epochs=1)
    assert isinstance(est, xdownscale.Downscaler) and est.config_.epochs == 1


def test_small_grid_native_trains_stage_a_on_the_coarse_grid(monkeypatch):
    from conftest import make_toy_pair

    from xdownscale.estimator import stages as _fit
    coarse, fine, elev = make_toy_pair(ny=48, nx=48)
    seen = {}
    stage_a = _fit._stage_a

    def spy(small, plan, load_small, starts, cfg, device, season, state=None):
        seen["x"] = load_small(plan.small_train[0])["x"].shape
        seen["max_start"] = starts.max(axis=0)
        return stage_a(small, plan, load_small, starts, cfg, device, season, state)

    monkeypatch.setattr(_fit, "_stage_a", spy)
    cfg = tiny_config(patch=8, halo=2, infer_stride=4, small_grid="native")
    est = coarse.downscale.fit(fine, elevation=elev, model="unet", config=cfg, seasons=["JJA"])
    native = (coarse.sizes["lat"], coarse.sizes["lon"])
    assert seen["x"] == (cfg.n_lags, *native)
    assert (seen["max_start"] + cfg.patch <= np.array(native)).all()
    assert "A" in est.training_log_.index.get_level_values("stage")
    day = est.test_days_["JJA"][:1]
    assert np.isfinite(est.predict(coarse.sel(time=day), history=fine)["DUEXTTAU"]).all()
    # a coarse grid smaller than a patch is refused with the sizes
    with pytest.raises(ConfigError, match="small_grid='native'.*cells"):
        coarse.downscale.fit(fine, elevation=elev, model="unet", seasons=["JJA"],
                             config=tiny_config(small_grid="native"))


def test_predict_ties_each_day_to_its_driver(fitted, toy_pair):
    # the step (on by default) makes every day's mean over each coarse cell minus the driver's
    # equal the training days' per-cell offset, and moves every member by the same factor
    from xdownscale.data.cells import CellGeometry, _cell_means, _coarse_consistent
    from xdownscale.data.regrid import regrid_like

    coarse, fine, _ = toy_pair
    est = fitted["ddpm"]
    days = _test_days(est, 3)
    kw = dict(history=fine, members=3, seed=2, keep_members=True)
    raw = est.predict(coarse.sel(time=days), coarse_consistency=False, **kw)
    tied = est.predict(coarse.sel(time=days), **kw)
    assert tied["DUEXTTAU"].attrs["xdownscale_coarse_consistency"] == 1
    assert raw["DUEXTTAU"].attrs["xdownscale_coarse_consistency"] == 0
    geom = CellGeometry.from_grids(est.lat_, est.lon_, coarse["lat"], coarse["lon"])
    drv = np.log10(np.maximum(regrid_like(coarse["DUEXTTAU"].sel(time=days),
                                          fine["DUEXTTAU"].isel(time=0, drop=True),
                                          clamp=True).values, 1e-6))
    offset = est.cell_offsets_["JJA"]
    inner = np.isfinite(offset)
    for i in range(len(days)):
        raw_log = np.log10(raw["DUEXTTAU"].values[i].astype(np.float64))
        np.testing.assert_allclose(np.log10(tied["DUEXTTAU"].values[i]),
                                   _coarse_consistent(raw_log, drv[i], geom, offset), atol=2e-5)
        gap = (_cell_means(np.log10(tied["DUEXTTAU"].values[i]), geom)
               - _cell_means(drv[i], geom))
        before = _cell_means(raw_log, geom) - _cell_means(drv[i], geom)
        # one step spreads each cell's shift linearly between cell centres, so it closes
        # the gap only in part (the kernel's own test, test_evaluation, has the numbers)
        assert np.abs(gap - offset)[inner].mean() < 0.6 * np.abs(before - offset)[inner].mean()
    factor = tied["DUEXTTAU_members"].values / raw["DUEXTTAU_members"].values
    np.testing.assert_allclose(factor, factor[:1].repeat(3, axis=0), rtol=1e-5)
    np.testing.assert_allclose(tied["DUEXTTAU_std"].values / raw["DUEXTTAU_std"].values,
                               factor[0], rtol=1e-3)  # float32 std of near-equal members


def test_offsets_survive_save_and_older_saves_predict_untied(fitted, toy_pair, tmp_path):
    coarse, fine, _ = toy_pair
    est = fitted["unet"]
    est.save(tmp_path / "m")
    loaded = Downscaler.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.cell_offsets_["JJA"], est.cell_offsets_["JJA"])
    # a save without the offsets (an older xdownscale): loads with the step off, says so,
    # predicts as the untied model, and refuses the step when asked for it
    from xdownscale.errors import XDownscaleWarning
    from xdownscale.estimator.checkpoint import _sha256

    meta = json.loads((tmp_path / "m" / "estimator.json").read_text())
    del meta["cell_offsets"]
    (tmp_path / "m" / "estimator.json").write_text(json.dumps(meta))
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["files"]["estimator.json"] = _sha256(tmp_path / "m" / "estimator.json")
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.warns(XDownscaleWarning, match="coarse_consistency=False"):
        old = Downscaler.load(tmp_path / "m")
    assert old.config_.coarse_consistency is False and old.cell_offsets_ == {}
    days = _test_days(est)
    a = old.predict(coarse.sel(time=days), history=fine, seed=1)
    b = est.predict(coarse.sel(time=days), history=fine, seed=1, coarse_consistency=False)
    np.testing.assert_array_equal(a["DUEXTTAU"].values, b["DUEXTTAU"].values)
    with pytest.raises(ConfigError, match="per-cell offsets"):
        old.predict(coarse.sel(time=days), history=fine, coarse_consistency=True)
    with pytest.raises(ConfigError, match="coarse_consistency"):
        est.predict(coarse.sel(time=days), history=fine, coarse_consistency="yes")


def test_the_step_is_on_by_default_for_the_generative_models_only():
    from xdownscale import DownscaleConfig

    cfg = DownscaleConfig.fast()
    assert cfg.coarse_consistency is None
    assert cfg.ties_to_driver("ddpm") and cfg.ties_to_driver("vae")
    assert not cfg.ties_to_driver("unet")
    assert cfg.replace(coarse_consistency=True).ties_to_driver("unet")
    assert not DownscaleConfig.paper().ties_to_driver("ddpm")
    with pytest.raises(ConfigError, match="coarse_consistency"):
        DownscaleConfig(coarse_consistency="yes")


def test_presets_mean_share_and_stage_a_floor():
    from xdownscale import DownscaleConfig
    from xdownscale.estimator.modules import SeasonModule

    fast, paper, default = DownscaleConfig.fast(), DownscaleConfig.paper(), DownscaleConfig()
    assert (fast.mean_share, paper.mean_share, default.mean_share) == (0.25, 0.0, 0.0)
    assert fast.point_estimate == "conditional_mean"
    assert paper.point_estimate == default.point_estimate == "ensemble_mean"
    assert fast.small_min_steps == 400 and paper.small_min_steps == 0
    # the setting reaches the diffusion model the fit trains
    module = SeasonModule("ddpm", tiny_config(mean_share=0.4))
    assert module.large.mean_share == 0.4
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ConfigError, match="mean_share"):
            DownscaleConfig(mean_share=bad)


def test_mix_history_swaps_whole_samples_reproducibly():
    from xdownscale.estimator.stages import mix_history

    hist, alt = torch.zeros(200, 3, 4, 4), torch.ones(200, 3, 4, 4)

    def batch():
        return {"hist": hist, "hist_coarse": alt, "y": torch.zeros(200, 1, 4, 4)}

    assert torch.equal(mix_history(batch(), 0.0)["hist"], hist)  # off: the fine history
    assert "hist_coarse" not in mix_history(batch(), 0.0)  # never reaches the model
    assert torch.equal(mix_history(batch(), 1.0)["hist"], alt)
    torch.manual_seed(3)
    first = mix_history(batch(), 0.5)["hist"]
    torch.manual_seed(3)
    assert torch.equal(mix_history(batch(), 0.5)["hist"], first)  # seeded by train()
    per_sample = first.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 1).all(1)).all()  # whole windows
    assert 60 < int(per_sample[:, 0].sum()) < 140
    assert torch.equal(mix_history({"hist": hist}, 0.5)["hist"], hist)  # nothing to swap in


def test_history_mix_trains_on_the_coarse_lags(toy_pair, monkeypatch):
    from xdownscale.estimator import stages

    coarse, fine, elev = toy_pair
    seen = []
    real = stages.mix_history

    def spy(batch, p):
        seen.append((p, "hist_coarse" in batch))
        return real(batch, p)

    monkeypatch.setattr(stages, "mix_history", spy)
    est = coarse.downscale.fit(fine, elevation=elev, model="unet", seasons=["JJA"],
                               config=tiny_config(history_mix=0.5, min_steps=2))
    assert (0.5, True) in seen and (0.0, True) in seen  # training batches mix, validation not
    assert est.config_.history_mix == 0.5
    with pytest.raises(ConfigError, match="history_mix"):
        tiny_config(history_mix=1.5)


def test_day_loaders_give_the_day_befores_inputs_for_pushforward():
    from xdownscale.data.covariates import CovariateSpec
    from xdownscale.estimator import inputs

    times = pd.date_range("2005-06-01", periods=12)
    lat, lon = np.arange(4.0), np.arange(5.0)

    def source(offset):  # day k holds offset + k everywhere
        vals = (offset + np.arange(12.0))[:, None, None] * np.ones((12, 4, 5))
        da = xr.DataArray(vals, coords={"time": times, "lat": lat, "lon": lon},
                          dims=("time", "lat", "lon"))
        return inputs.ArraySource(da, in_memory=True)

    elev = np.zeros((4, 5))
    static = inputs.StaticMaps(CovariateSpec.from_data(times.to_numpy(), elev, lat, lon), lat,
                               lon, elev)
    fine_src, coarse_src = source(0.0), source(100.0)
    _, large = inputs.day_loaders(coarse_src, fine_src, static, 3, previous_day=True)
    _, plain = inputs.day_loaders(coarse_src, fine_src, static, 3)
    day = times[5]  # lags days 2, 3, 4; the day before's lags 1, 2, 3
    out, before = large(day), plain(times[4])
    assert "prev_hist" not in plain(day)  # only asked for
    np.testing.assert_array_equal(out["prev_hist"], before["hist"])
    np.testing.assert_array_equal(out["prev_cond"], before["cond"])
    np.testing.assert_array_equal(out["hist"], plain(day)["hist"])
    # the fine record starts at the day window's oldest day: that day stands in for the one
    # before it, the rest is the day before's window
    first = large(times[3])
    np.testing.assert_array_equal(first["prev_hist"][:, 0, 0], [0.0, 0.0, 1.0])


def test_pushforward_history_swaps_the_last_lag_for_the_models_own_prediction():
    from xdownscale.estimator.stages import pushforward_history

    class Model:  # predicts the day before's coarse channel + its most recent lag + 10
        def __init__(self, kind):
            self.kind, self.calls = kind, []

        def predict_batch(self, hist, cond, **kwargs):
            self.calls.append((hist.shape[0], kwargs))
            return cond[:, :1] + hist[:, -1:] + 10.0

    n = 200
    hist = torch.arange(3.0)[None, :, None, None].expand(n, 3, 4, 4).clone()

    def batch():
        return {"hist": hist, "prev_hist": torch.ones(n, 3, 4, 4),
                "prev_cond": torch.full((n, 2, 4, 4), 5.0), "y": torch.zeros(n, 1, 4, 4)}

    unet = Model("unet")
    off = pushforward_history(unet, batch(), 0.0)
    assert torch.equal(off["hist"], hist) and not unet.calls  # off: no prediction made
    assert "prev_hist" not in off and "prev_cond" not in off  # never reach the model
    on = pushforward_history(unet, batch(), 1.0)["hist"]
    assert torch.equal(on[:, :2], hist[:, :2])  # older days stay the truth
    assert torch.equal(on[:, 2], torch.full((n, 4, 4), 16.0))  # 5 + 1 + 10
    assert unet.calls == [(n, {})]
    torch.manual_seed(3)
    first = pushforward_history(unet, batch(), 0.5)["hist"]
    torch.manual_seed(3)
    assert torch.equal(pushforward_history(unet, batch(), 0.5)["hist"], first)  # seeded
    swapped = (first[:, 2] == 16.0).flatten(1).all(1)
    assert ((first[:, 2] == 2.0).flatten(1).all(1) | swapped).all()  # whole days
    assert 60 < int(swapped.sum()) < 140
    assert torch.equal(hist, torch.arange(3.0)[None, :, None, None].expand(n, 3, 4, 4))
    ddpm = Model("ddpm")  # the DDPM's point: its one-step conditional mean
    pushforward_history(ddpm, batch(), 1.0)
    assert ddpm.calls == [(n, {"sampler": "ddim", "steps": 1})]
    assert torch.equal(pushforward_history(unet, {"hist": hist}, 1.0)["hist"], hist)


@pytest.mark.parametrize("model", ["unet", "ddpm"])
def test_pushforward_fit_trains_on_its_own_predictions(toy_pair, monkeypatch, model):
    from xdownscale.estimator import stages

    coarse, fine, elev = toy_pair
    seen = []
    real = stages.pushforward_history

    def spy(module, batch, p):
        seen.append((p, "prev_hist" in batch))
        return real(module, batch, p)

    monkeypatch.setattr(stages, "pushforward_history", spy)
    cfg = tiny_config(pushforward=0.5, min_steps=2)
    est = coarse.downscale.fit(fine, elevation=elev, model=model, seasons=["JJA"], config=cfg)
    assert (0.5, True) in seen and (0.0, True) in seen  # training batches only
    assert est.config_.pushforward == 0.5
    again = coarse.downscale.fit(fine, elevation=elev, model=model, seasons=["JJA"], config=cfg)
    for a, b in zip(est.modules_["JJA"].parameters(), again.modules_["JJA"].parameters(),
                    strict=True):
        assert torch.equal(a, b)  # the draws and the predictions are seeded with the fit
    for bad in (-0.1, 1.5):
        with pytest.raises(ConfigError, match="pushforward"):
            tiny_config(pushforward=bad)


def test_the_driver_is_clamped_and_older_saves_keep_their_unclamped_driver(fitted, toy_pair,
                                                                          tmp_path):
    from xdownscale import DownscaleConfig
    from xdownscale.data.regrid import regrid_like
    from xdownscale.data.transforms import log10_transform
    from xdownscale.estimator.checkpoint import _sha256
    from xdownscale.predict.labelled import fine_template, prepare_coarse

    assert DownscaleConfig().regrid_clamp and DownscaleConfig.fast().regrid_clamp
    assert not DownscaleConfig.paper().regrid_clamp
    coarse, fine, _ = toy_pair
    est = fitted["unet"]
    days = _test_days(est)
    drv = prepare_coarse(est, coarse.sel(time=days)).values
    cda = coarse["DUEXTTAU"].sel(time=days)
    clamped, plain = (log10_transform(regrid_like(cda, fine_template(est), clamp=c)).values
                      for c in (True, False))
    np.testing.assert_array_equal(drv, clamped)
    assert not np.array_equal(clamped, plain)  # the toy pair does overshoot somewhere
    # a save from before the field: its model was trained on the plain bicubic driver
    est.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "estimator.json").read_text())
    del meta["config"]["regrid_clamp"]
    (tmp_path / "m" / "estimator.json").write_text(json.dumps(meta))
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["files"]["estimator.json"] = _sha256(tmp_path / "m" / "estimator.json")
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    old = Downscaler.load(tmp_path / "m")
    assert old.config_.regrid_clamp is False
    np.testing.assert_array_equal(prepare_coarse(old, coarse.sel(time=days)).values, plain)
    assert Downscaler.load(tmp_path / "m").config_.to_dict().keys() == est.config_.to_dict().keys()


def test_history_maps_reach_the_large_model_and_predict_like_any_model(toy_pair, tmp_path):
    from xdownscale.estimator.modules import SeasonModule

    coarse, fine, elev = toy_pair
    cfg = tiny_config(history_maps=2, min_steps=2)
    plain = SeasonModule("unet", tiny_config())
    module = SeasonModule("unet", cfg)
    hist, cond = torch.rand(3, cfg.n_lags, 16, 16), torch.rand(3, len(plain.cond_names), 16, 16)
    x_plain, _ = plain.inputs(hist, cond)
    x, _ = module.inputs(hist, cond)
    assert x.shape[1] == x_plain.shape[1] + 2
    assert torch.equal(x[:, -2:], hist[:, -2:])  # the two most recent days, as they are
    with pytest.raises(xdownscale.errors.DimensionError, match="pass hist"):
        module.inputs(None, cond, feats=torch.rand(3, x_plain.shape[1] - cond.shape[1], 16, 16))
    est = coarse.downscale.fit(fine, elevation=elev, model="ddpm", seasons=["JJA"], config=cfg)
    days = _test_days(est)
    kw = dict(history=fine, members=2, seed=1, keep_members=True, steps=3)
    eager = est.predict(coarse.sel(time=days), **kw)["DUEXTTAU_members"]
    lazy = est.predict(coarse.sel(time=days).chunk({"time": 1}),
                       **{**kw, "history": fine.chunk({"lat": 7, "lon": 9})})
    np.testing.assert_allclose(lazy["DUEXTTAU_members"].values, eager.values, rtol=1e-5,
                               atol=1e-7)  # each crop reads its own part of the history days
    est.save(tmp_path / "m")
    again = Downscaler.load(tmp_path / "m").predict(coarse.sel(time=days), **kw)
    np.testing.assert_array_equal(again["DUEXTTAU_members"].values, eager.values)
    for bad in (-1, cfg.n_lags + 1, True, 1.0):
        with pytest.raises(ConfigError, match="history_maps"):
            tiny_config(history_maps=bad)
