"""Ensemble spread calibration: the factor fitted on held-out days, applied to the members."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config

from xdownscale import Downscaler
from xdownscale.data.transforms import log10_transform
from xdownscale.diagnostics import spread_skill
from xdownscale.errors import ConfigError, LagWindowError
from xdownscale.estimator import stages as _fit
from xdownscale.predict.day import scale_spread

VAR = "DUEXTTAU"


def test_scale_spread_keeps_the_mean_and_scales_the_deviations():
    rng = np.random.default_rng(0)
    members = rng.normal(size=(5, 7, 9)).astype(np.float32)
    out = scale_spread(members, 2.5)
    np.testing.assert_allclose(out.mean(0), members.mean(0), atol=1e-6)
    np.testing.assert_allclose(out.std(0), 2.5 * members.std(0), rtol=1e-5)
    assert out.dtype == np.float32
    # one member has no spread to scale; a factor of 1 changes nothing
    np.testing.assert_array_equal(scale_spread(members[:1], 3.0), members[:1])
    np.testing.assert_array_equal(scale_spread(members, 1.0), members)
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ConfigError, match="spread factor"):
            scale_spread(members, bad)


@pytest.fixture(scope="module")
def calibrated(toy_pair):
    coarse, fine, elev = toy_pair
    torch.manual_seed(0)
    # a few hundred steps, so the members spread (an untrained residual model is bicubic);
    # the tiny model needs more than the shipped bound, so the test widens it to see the
    # factor itself (test_the_factor_is_bounded checks the bound), and lifts the texture
    # bound (test_fit_bounds_the_texture checks it)
    limits, _fit.SPREAD_LIMITS = _fit.SPREAD_LIMITS, (0.1, 10.0)
    texture, _fit.MAX_TEXTURE = _fit.MAX_TEXTURE, None
    try:
        est = coarse.downscale.fit(fine, elevation=elev, model="ddpm", seasons=["JJA"],
                                   config=tiny_config(min_steps=300, epochs=3))
    finally:
        _fit.SPREAD_LIMITS, _fit.MAX_TEXTURE = limits, texture
    return est, coarse, fine


def _val_ssr(est, coarse, fine, members=2):
    days = pd.DatetimeIndex(est.plans_["JJA"].val)
    pred = est.predict(coarse.sel(time=days), history=fine, members=members,
                       seed=est.config_.seed, keep_members=True)
    return float(np.median(spread_skill(pred[f"{VAR}_members"], fine.sel(time=days))["ssr"]))


def test_fit_calibrates_the_spread_on_the_validation_days(calibrated):
    est, coarse, fine = calibrated
    factor = est.spread_["JJA"]
    assert 0.1 < factor < 10 and factor != 1.0  # not at the (widened) bounds
    row = est.validation_.loc[("JJA", "ddpm")]
    assert row["spread_factor"] == pytest.approx(factor)
    assert row["ssr"] * factor == pytest.approx(1.0, rel=1e-6)
    # the same (2) members on the same days, now scaled: their median daily ratio is 1
    assert _val_ssr(est, coarse, fine) == pytest.approx(1.0, rel=1e-3)
    # the validation scores are those of the one-member prediction (member 0 of that run)
    days = pd.DatetimeIndex(est.plans_["JJA"].val)
    one = est.predict(coarse.sel(time=days), history=fine, seed=est.config_.seed)
    from xdownscale.diagnostics.baselines import score_against_baselines

    ref = score_against_baselines({"ddpm": one}, fine["DUEXTTAU"].sel(time=days))
    assert row["r2_log10"] == pytest.approx(ref.loc["ddpm", "r2_log10"], rel=1e-5)


def test_calibration_leaves_single_members_and_the_mean_alone(calibrated):
    est, coarse, fine = calibrated
    days = est.test_days_["JJA"][:2]
    # the property of the calibration alone: the coarse-consistency step, applied after it,
    # moves every member by its ensemble mean's factor
    kw = dict(history=fine, seed=3, coarse_consistency=False)
    scaled = est.predict(coarse.sel(time=days), members=3, keep_members=True, **kw)
    one = est.predict(coarse.sel(time=days), members=1, **kw)[VAR].values
    factor, est.spread_["JJA"] = est.spread_["JJA"], 1.0
    try:
        raw = est.predict(coarse.sel(time=days), members=3, keep_members=True, **kw)
        raw_one = est.predict(coarse.sel(time=days), members=1, **kw)[VAR].values
    finally:
        est.spread_["JJA"] = factor
    np.testing.assert_array_equal(one, raw_one)
    log = {k: np.log10(v[f"{VAR}_members"].values) for k, v in (("s", scaled), ("r", raw))}
    np.testing.assert_allclose(log["s"].mean(0), log["r"].mean(0), atol=1e-5)
    np.testing.assert_allclose(log["s"].std(0), factor * log["r"].std(0), rtol=1e-3, atol=1e-6)


def test_calibration_is_saved_and_recalibrated(calibrated, tmp_path):
    est, coarse, fine = calibrated
    est.save(tmp_path / "m")
    back = Downscaler.load(tmp_path / "m")
    assert back.spread_ == est.spread_
    days = est.test_days_["JJA"][:2]
    kw = dict(history=fine, seed=1, members=2, keep_members=True)
    np.testing.assert_array_equal(back.predict(coarse.sel(time=days), **kw)[f"{VAR}_members"],
                                  est.predict(coarse.sel(time=days), **kw)[f"{VAR}_members"])
    # recalibrating on other days changes the factor only from the members as sampled
    back.calibrate(coarse, fine, days=est.test_days_["JJA"], members=3)
    assert back.spread_["JJA"] != est.spread_["JJA"]
    with pytest.raises(ConfigError, match="at least 2"):
        back.calibrate(coarse, fine, members=1)
    # a calibration that fails (no history before these days) keeps the factor it had
    factor = back.spread_["JJA"]
    with pytest.raises(LagWindowError, match="40-day history"):
        back.calibrate(coarse, fine.isel(time=slice(-5, None)), members=2)
    assert back.spread_["JJA"] == factor


def test_the_factor_is_bounded(calibrated):
    est, coarse, fine = calibrated
    factor = est.spread_["JJA"]
    lo, hi = _fit.SPREAD_LIMITS
    try:
        report = _fit.calibrate_spread(est, coarse, fine, members=2, max_texture=None)["JJA"]
        assert est.spread_["JJA"] == pytest.approx(float(np.clip(1 / report["ssr"], lo, hi)))
        assert lo <= est.spread_["JJA"] <= hi
    finally:
        est.spread_["JJA"] = factor


def test_fit_bounds_the_texture(calibrated):
    est, coarse, fine = calibrated
    factor = est.spread_["JJA"]
    try:
        free = _fit.calibrate_spread(est, coarse, fine, members=2, max_texture=None)["JJA"]
        assert free["factor"] == free["factor_ssr"] > 1  # the toy ensemble is too narrow
        sampled, scaled = free["texture"]
        assert scaled > sampled
        # a bound between the two stops the factor where the members reach it
        bound = (sampled + scaled) / 2
        kept = _fit.calibrate_spread(est, coarse, fine, members=2, max_texture=bound)["JJA"]
        assert 1 < kept["factor"] < free["factor"] == kept["factor_ssr"]
        assert kept["texture"][1] <= bound
        assert est.spread_["JJA"] == kept["factor"]
        # and the members predicted with it have that texture
        days = kept["days"]
        pred = est.predict(coarse.sel(time=days), history=fine, members=2,
                           seed=est.config_.seed, keep_members=True, coarse_consistency=False)
        eps = est.config_.eps
        members = log10_transform(pred[f"{VAR}_members"].transpose("member", "time", ...).values,
                                  eps)
        truth = log10_transform(fine[VAR].sel(time=days).values, eps)
        ratio = np.median(np.mean([_fit._pixel_semivariance(m) for m in members], axis=0)
                          / _fit._pixel_semivariance(truth))
        assert ratio == pytest.approx(kept["texture"][1], rel=0.02)
    finally:
        est.spread_["JJA"] = factor


def test_deterministic_models_have_no_spread_to_calibrate(toy_pair):
    coarse, fine, elev = toy_pair
    est = coarse.downscale.fit(fine, elevation=elev, model="unet", seasons=["JJA"],
                               config=tiny_config())
    assert est.spread_ == {}
    assert "spread_factor" not in est.validation_.columns
    with pytest.raises(ConfigError, match="deterministic"):
        est.calibrate(coarse, fine)
    off = coarse.downscale.fit(fine, elevation=elev, model="ddpm", seasons=["JJA"],
                               config=tiny_config(calibrate_spread=False))
    assert off.spread_ == {}


def test_pixel_semivariance_is_half_the_mean_squared_neighbour_difference():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 7))
    x[1, 2, 3] = np.nan  # its four neighbour pairs drop out
    got = _fit._pixel_semivariance(x)
    for t in range(3):
        pairs = [(x[t, i, j], x[t, i2, j2]) for i in range(6) for j in range(7)
                 for i2, j2 in ((i + 1, j), (i, j + 1)) if i2 < 6 and j2 < 7]
        sq = [(u - v) ** 2 for u, v in pairs if np.isfinite(u) and np.isfinite(v)]
        assert got[t] == pytest.approx(0.5 * np.mean(sq))


def test_the_factor_stops_where_members_get_rougher_than_the_truth():
    rng = np.random.default_rng(2)
    truth = rng.normal(scale=1.0, size=(4, 20, 20))
    mean = np.zeros((4, 20, 20))  # a flat mean: texture(f) = f² x the deviations' own
    dev = rng.normal(scale=0.8, size=(5, 4, 20, 20))
    members = mean + dev - dev.mean(0)
    sampled = np.median(_fit._pixel_semivariance_terms(members - members.mean(0), mean)[2]
                        / _fit._pixel_semivariance(truth))
    f, before, after = _fit.texture_bounded_factor(members, truth, 2.0, max_texture=1.2)
    assert before == pytest.approx(sampled)
    assert 1.0 < f < 2.0 and f == pytest.approx(np.sqrt(1.2 / sampled), abs=0.01)
    assert after <= 1.2 and after == pytest.approx(1.2, abs=0.02)
    # no bound, a factor that does not roughen past it, or one that shrinks: as asked
    assert _fit.texture_bounded_factor(members, truth, 2.0, max_texture=None)[0] == 2.0
    assert _fit.texture_bounded_factor(members, truth, 1.1, max_texture=1.2)[0] == 1.1
    assert _fit.texture_bounded_factor(members, truth, 0.7, max_texture=0.1)[0] == 0.7
    # members rougher than the bound as sampled are not scaled up at all
    assert _fit.texture_bounded_factor(3 * members, truth, 2.0, max_texture=1.2)[0] == 1.0
