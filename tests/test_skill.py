"""The models against the baselines they must beat: interpolating the coarse map."""

from __future__ import annotations

import numpy as np
import pytest
import testbeds
from conftest import tiny_config

from xdownscale import Downscaler
from xdownscale.diagnostics.baselines import (
    bias_corrected,
    interpolated,
    log_bias,
    score_against_baselines,
)
from xdownscale.errors import ConfigError, XDownscaleWarning
from xdownscale.predict.drift import coarse_consistent


@pytest.fixture(scope="module")
def bed_pair():
    return testbeds.make_pair(testbeds.TestBed("ci", fine_days=150, shape=(32, 32)), seed=3)


def test_interpolated_and_bias_corrected_baselines(bed_pair):
    coarse, fine, _ = bed_pair
    interp = interpolated(coarse, fine["DUEXTTAU"])
    assert interp.sizes == {"time": coarse.sizes["time"], "lat": 32, "lon": 32}
    days = fine["time"].values[:30]
    bias = log_bias(interp, fine["DUEXTTAU"], days)
    by_hand = np.mean(np.log10(fine["DUEXTTAU"].values[:30])
                      - np.log10(interp.sel(time=days).values))
    assert bias == pytest.approx(by_hand, rel=1e-5)
    corrected = bias_corrected(interp, bias)
    np.testing.assert_allclose(corrected.values, interp.values * 10**bias, rtol=1e-6)
    table = score_against_baselines({"bicubic": interp.sel(time=days),
                                     "bicubic_bc": corrected.sel(time=days)},
                                    fine["DUEXTTAU"].sel(time=days))
    # removing the mean log bias removes the log10 bias on the days it was learned from
    assert abs(table.loc["bicubic_bc", "bias_log10"]) < 1e-5
    assert table.loc["bicubic_bc", "r2_log10"] >= table.loc["bicubic", "r2_log10"]


@pytest.mark.parametrize("model", ["unet", "ddpm"])
def test_untrained_residual_model_is_bicubic(bed_pair, model):
    """One step at a vanishing learning rate leaves the zero-started head at zero: the
    prediction is the (clamped) bicubic interpolation of the coarse day, to float32 rounding.
    (With T = 1000 the last DDIM step lands on t = -1, i.e. on the clean estimate itself.)"""
    coarse, fine, elev = bed_pair
    cfg = tiny_config(target="residual", max_steps=1, lr=1e-30, validation=False,
                      timesteps=1000)
    est = Downscaler(cfg, model=model, seasons=["JJA"]).fit(coarse, fine, elev)
    days = est.test_days_["JJA"][:3]
    pred = est.predict(coarse.sel(time=days), history=fine, seed=0,
                       coarse_consistency=False)["DUEXTTAU"]
    assert est.config_.regrid_clamp
    interp = interpolated(coarse, fine["DUEXTTAU"], clamp=True).sel(time=days)
    np.testing.assert_allclose(pred.values, interp.values, rtol=2e-4)
    # with the coarse-consistency step (the DDPM's default) it is bicubic tied to the driver
    # with the training days' per-cell offsets: a per-cell bias correction of bicubic
    tied = est.predict(coarse.sel(time=days), history=fine, seed=0,
                       coarse_consistency=True)["DUEXTTAU"]
    default = est.predict(coarse.sel(time=days), history=fine, seed=0)["DUEXTTAU"]
    np.testing.assert_array_equal(default.values, (tied if model == "ddpm" else pred).values)
    plan = est.plans_["JJA"]
    train = fine.sel(time=np.concatenate([plan.train, plan.holdout]))
    expect = coarse_consistent(interp, coarse, reference=train, clamp=True)
    np.testing.assert_allclose(tied.values, expect.values, rtol=5e-4)


def test_validation_table_and_warning_when_bicubic_wins(bed_pair):
    coarse, fine, elev = bed_pair
    # the paper's direct target after one step cannot beat interpolation
    cfg = tiny_config(target="direct", max_steps=1)
    with pytest.warns(XDownscaleWarning, match="does not beat bicubic"):
        est = Downscaler(cfg, model="unet", seasons=["JJA"]).fit(coarse, fine, elev)
    table = est.validation_
    assert list(table.index.get_level_values("method")) == ["unet", "bicubic", "bicubic_bc"]
    assert {"r2_log10", "rmse_log10", "r2_data", "rmse_data", "n_days"} <= set(table.columns)
    assert (table["n_days"] == len(est.plans_["JJA"].val)).all()
    assert table.loc[("JJA", "unet"), "r2_log10"] < table.loc[("JJA", "bicubic"), "r2_log10"]


def test_stage_a_reused_from_another_fit(bed_pair):
    coarse, fine, elev = bed_pair
    cfg = tiny_config(validation=False)
    first = Downscaler(cfg, model="ddpm", seasons=["JJA"]).fit(coarse, fine, elev)
    second = Downscaler(cfg, model="unet", seasons=["JJA"]).fit(coarse, fine, elev,
                                                                pretrained=first)
    a, b = first.modules_["JJA"].small, second.modules_["JJA"].small
    assert a is not b
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert np.array_equal(v.numpy(), w.numpy()), k
    assert first.training_log_.loc[("JJA", "A")].equals(second.training_log_.loc[("JJA", "A")])
    with pytest.raises(ConfigError, match="small_lr"):
        Downscaler(cfg.replace(small_lr=1e-2), model="unet", seasons=["JJA"]).fit(
            coarse, fine, elev, pretrained=first)
    with pytest.raises(ConfigError, match="small model"):
        Downscaler(cfg, model="vae", seasons=["JJA"]).fit(coarse, fine, elev, pretrained=first)
