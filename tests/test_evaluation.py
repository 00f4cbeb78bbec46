"""Pseudo out-of-data rollout evaluation, the drift warning and the coarse-consistency step."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from conftest import tiny_config

from xdownscale import diagnostics as dg
from xdownscale.data.regrid import regrid_like
from xdownscale.errors import ConfigError, StoreError, TimeAxisError, XDownscaleWarning
from xdownscale.predict import drift as drift_mod
from xdownscale.predict import labelled as prediction_mod
from xdownscale.predict import rollout as rollout_mod
from xdownscale.predict.evaluation import (
    SOURCES,
    evaluate_rollout,
    lead_summary,
    plot_rollout_skill,
)

VAR = "DUEXTTAU"
START = "2006-07-01"


@pytest.fixture(scope="module")
def est(toy_pair):
    coarse, fine, elev = toy_pair
    torch.manual_seed(0)
    return coarse.downscale.fit(fine, elevation=elev, model="ddpm", config=tiny_config(),
                                seasons=["JJA"])


def _stub(monkeypatch, make):
    """Replace the day kernel of both predict and rollout by ``make(days, coarse_log,
    hist_log) -> (n, ny, nx)`` data units (members are copies)."""

    def kernel(est, days, coarse_log, hist_log, *, members, **kwargs):
        one = np.asarray(make(pd.DatetimeIndex(days), coarse_log, hist_log), np.float32)
        return np.repeat(one[None], members, axis=0)

    monkeypatch.setattr(rollout_mod, "predict_days_array", kernel)
    monkeypatch.setattr(prediction_mod, "predict_days_array", kernel)


def test_a_model_that_returns_the_truth_scores_the_truth(est, toy_pair, monkeypatch):
    coarse, fine, _ = toy_pair
    _stub(monkeypatch, lambda days, c, h: fine[VAR].sel(time=days).values)
    # without the coarse-consistency step (on by default): the truth must come back unchanged
    res = evaluate_rollout(est, coarse, fine, start=START, days=6, members=2,
                           coarse_consistency=False)
    assert list(res["source"].values) == list(SOURCES)
    assert res.sizes["lead"] == 6 and res["lead"].values[0] == 1
    assert str(pd.Timestamp(res["time"].values[0]).date()) == START
    for m in ("rollout", "true_history"):
        s = res.sel(source=m)
        np.testing.assert_allclose(s["r2"], 1.0, atol=1e-6)
        np.testing.assert_allclose(s["rmse"], 0.0, atol=1e-6)
        np.testing.assert_allclose(s["bias"], 0.0, atol=1e-6)
        np.testing.assert_allclose(s["crps"], 0.0, atol=1e-6)  # identical members: CRPS = MAE
    # the baselines are the diagnostics' own numbers for bicubic, computed here independently
    days = pd.date_range(START, periods=6)
    truth = fine[VAR].sel(time=days)
    bic = regrid_like(coarse[VAR].sel(time=days), fine[VAR].isel(time=0, drop=True))
    ref = dg.skill(bic, truth)
    np.testing.assert_allclose(res["r2"].sel(source="bicubic").values, ref["r2"].values)
    train = est.plans_["JJA"].train
    btr = regrid_like(coarse[VAR].sel(time=train), fine[VAR].isel(time=0, drop=True))
    b = float((np.log10(fine[VAR].sel(time=train)) - np.log10(btr)).mean())
    ref_bc = dg.skill(bic * 10**b, truth)
    np.testing.assert_allclose(res["rmse"].sel(source="bias_corrected_bicubic").values,
                               ref_bc["rmse"].values, rtol=1e-5)
    assert abs(res.attrs["bicubic_log_bias_JJA"] - b) < 1e-6
    # truth has no drift beyond the seed window's own spread
    assert np.abs(res["drift"].sel(source="rollout")).max() < 0.05
    table = lead_summary(res, leads=(2, 6))
    assert table.loc["rollout", "r2"] == pytest.approx(1.0)
    assert table.loc["rollout", "abs_mean_bias"] == pytest.approx(0.0, abs=1e-6)


def test_rollout_history_is_its_own_prediction(est, toy_pair, monkeypatch):
    # A model that returns yesterday's map: from the true history it lags the truth by a day;
    # rolled out it repeats the last seed day for ever.
    coarse, fine, _ = toy_pair
    _stub(monkeypatch, lambda days, c, h: 10.0 ** h[:, -1])
    res = evaluate_rollout(est, coarse, fine, start=START, days=4, coarse_consistency=False)
    seed_day = fine[VAR].sel(time=pd.Timestamp(START) - pd.Timedelta(days=1))
    truth = fine[VAR].sel(time=pd.date_range(START, periods=4))
    persisted = xr.concat([seed_day.drop_vars("time")] * 4, dim="time").assign_coords(
        time=truth["time"])
    expect = dg.skill(persisted, truth)["r2"].sel(space="log10").values
    np.testing.assert_allclose(res["r2"].sel(source="rollout", space="log10"), expect,
                               rtol=1e-4)
    lagged = fine[VAR].sel(time=truth["time"] - pd.Timedelta(days=1)).assign_coords(
        time=truth["time"])
    np.testing.assert_allclose(res["r2"].sel(source="true_history", space="log10"),
                               dg.skill(lagged, truth)["r2"].sel(space="log10").values, rtol=1e-4)


def test_drift_warning_fires_on_a_model_that_multiplies_its_history(est, toy_pair, monkeypatch):
    coarse, fine, _ = toy_pair
    _stub(monkeypatch, lambda days, c, h: 1.15 * 10.0 ** h[:, -1])
    history = fine.sel(time=slice(None, "2006-06-30"))
    with pytest.warns(XDownscaleWarning, match="drifts from its coarse driver") as rec:
        out = est.rollout(coarse, history=history, start=START, end="2006-07-08",
                          coarse_consistency=False)
    assert len([w for w in rec if issubclass(w.category, XDownscaleWarning)]) == 1  # once
    # the warned-about quantity is what drift_series measures after the fact
    seed = history.isel(time=slice(-est.config_.n_lags, None))
    series = drift_mod.drift_series(out, coarse, reference=seed).values
    assert series[-1] > 8 * np.log10(1.15) - 0.1  # it grows about 0.06 a day
    with warnings.catch_warnings():
        warnings.simplefilter("error", XDownscaleWarning)
        est.rollout(coarse, history=history, start=START, end="2006-07-08", drift_threshold=None,
                    coarse_consistency=False)
        # the coarse-consistency step (the default) pulls every day back to its driver
        fixed = est.rollout(coarse, history=history, start=START, end="2006-07-08")
    assert np.abs(drift_mod.drift_series(fixed, coarse, reference=seed).values).max() < 0.02


def test_truth_does_not_warn(est, toy_pair, monkeypatch):
    coarse, fine, _ = toy_pair
    _stub(monkeypatch, lambda days, c, h: fine[VAR].sel(time=days).values)
    with warnings.catch_warnings():
        warnings.simplefilter("error", XDownscaleWarning)
        for cc in (False, True):
            est.rollout(coarse, history=fine.sel(time=slice(None, "2006-06-30")), start=START,
                        end="2006-07-10", coarse_consistency=cc)


def test_lead_one_of_a_real_rollout_equals_the_true_history_prediction(est, toy_pair):
    coarse, fine, _ = toy_pair
    res = est.evaluate_rollout(coarse, fine, start=START, days=3, seed=3, steps=2,
                               coarse_consistency=False)
    one = res.sel(lead=1)
    for score in ("r2", "rmse", "bias"):
        np.testing.assert_allclose(one[score].sel(source="rollout"),
                                   one[score].sel(source="true_history"), rtol=1e-5)
    assert res.attrs["n_training_days"] == 3  # JJA 2006 is training data of this toy fit
    # with the step (the default) both are tied to the driver with the training days' per-cell
    # offsets, so lead day 1 still equals the true-history prediction, and both equal the
    # uncorrected prediction corrected after the fact
    fixed_res = est.evaluate_rollout(coarse, fine, start=START, days=3, seed=3, steps=2)
    raw = est.predict(coarse.sel(time=[START]), history=fine, seed=3, steps=2,
                      coarse_consistency=False)
    plan = est.plans_["JJA"]
    train = np.concatenate([plan.train, plan.holdout])
    fixed = drift_mod.coarse_consistent(raw[VAR], coarse, reference=fine.sel(time=train),
                                        clamp=est.config_.regrid_clamp)
    expect = dg.skill(fixed, fine[VAR].sel(time=[START]))
    for score in ("r2", "rmse", "bias"):
        for source in ("rollout", "true_history"):
            np.testing.assert_allclose(fixed_res[score].sel(source=source, lead=1),
                                       expect[score].isel(time=0), rtol=1e-4, atol=1e-6)
    axes = plot_rollout_skill([res, res], labels=["a", "b"])
    assert len(axes) == 4
    import matplotlib.pyplot as plt

    plt.close("all")


def test_days_outside_the_fine_record_are_refused(est, toy_pair):
    coarse, fine, _ = toy_pair
    with pytest.raises(TimeAxisError, match="2007-06-17"):
        evaluate_rollout(est, coarse, fine, start="2007-06-10", days=10)


def test_coarse_consistent_kernel_matches_cell_means():
    from xdownscale.data.cells import CellGeometry, _cell_means, _coarse_consistent

    flat, flon = 20 + 0.0625 * np.arange(24), 40 + 0.0625 * np.arange(20)
    clat, clon = np.arange(19.5, 22.0, 0.5), np.arange(39.375, 42.0, 0.625)
    geom = CellGeometry.from_grids(flat, flon, clat, clon)
    assert geom.coarse_shape == (clat.size, clon.size)
    # each fine pixel lies in the cell whose edges contain it
    assert np.all(np.abs(clat[geom.ylab] - flat) <= 0.25 + 1e-9)
    assert np.all(np.abs(clon[geom.xlab] - flon) <= 0.3125 + 1e-9)
    rng = np.random.default_rng(0)
    drv = rng.normal(size=(24, 20))
    # a uniform gap is spread exactly: the result sits at the offset everywhere
    pred = drv + 0.4
    pred[3, 4] = np.nan
    fixed = _coarse_consistent(pred, drv, geom, offset=0.1)
    assert np.isnan(fixed[3, 4])
    np.testing.assert_allclose(np.delete(fixed.ravel() - drv.ravel(), 3 * 20 + 4), 0.1)
    # a gap varying from cell to cell is matched on average, and per cell to within the
    # smoothing of linear spreading
    pred = drv + 0.4 + 0.2 * rng.normal(size=(24, 20))
    gap = _cell_means(fixed := _coarse_consistent(pred, drv, geom, offset=0.1), geom) \
        - _cell_means(drv, geom)
    assert np.nanmean(fixed - drv) == pytest.approx(0.1, abs=0.02)
    assert np.nanmax(np.abs(gap - 0.1)) < 0.15
    before = _cell_means(pred, geom) - _cell_means(drv, geom)
    assert np.nanstd(gap) < np.nanstd(before)


def test_coarse_consistent_wrapper_removes_a_multiplicative_bias(toy_pair):
    coarse, fine, _ = toy_pair
    days = fine["time"].values[100:105]
    biased = fine[VAR].sel(time=days) * 1.5
    ref = fine[VAR].sel(time=fine["time"].values[60:100])
    fixed = drift_mod.coarse_consistent(biased, coarse, reference=ref)
    assert fixed.dims == biased.dims and fixed.dtype == biased.dtype
    before = drift_mod.drift_series(biased, coarse, reference=ref)
    after = drift_mod.drift_series(fixed, coarse, reference=ref)
    assert np.all(before > 0.15) and np.all(np.abs(after) < 0.03)


def test_ood_checks_put_a_true_year_inside_and_a_noisy_one_outside(toy_pair):
    from xdownscale.diagnostics.ood import ood_checks, plot_ood_checks

    coarse, fine, _ = toy_pair
    coarse = coarse.sel(time=slice("2005-06-01", "2007-05-31"))
    roll = fine.sel(time=slice("2006-06-01", "2006-11-30"))  # JJA and SON 2006, as rolled out
    res = ood_checks(roll, fine, coarse, n_pairs=300, nlags=5, max_lag=3)
    rolled = res["product"] == "rollout"
    assert list(res["season"].values[rolled.values]) == ["JJA", "SON"]
    # a block of the fine record lies inside the envelope it helps to make
    assert res.attrs["inside_sill"] == 1 and res.attrs["inside_acf1"] == 1
    np.testing.assert_array_equal(res["sill_inside"].values[rolled.values], 1.0)
    # the envelope is the range over the blocks of each record
    jja_fine = res["sill"].where((res["product"] == "fine") & (res["season"] == "JJA"), drop=True)
    env = res["sill_envelope"].sel(season_env="JJA", reference="fine")
    assert float(env.sel(bound="lower")) == pytest.approx(float(jja_fine.min()))
    assert float(env.sel(bound="upper")) == pytest.approx(float(jja_fine.max()))
    # pixel noise of 0.5 in log10 raises the sill far above both records
    rng = np.random.default_rng(0)
    noisy = roll * 10.0 ** rng.normal(0, 0.5, roll[VAR].shape)
    bad = ood_checks(noisy, fine, coarse, n_pairs=300, nlags=5, max_lag=3)
    assert bad.attrs["inside_sill"] == 0
    axes = plot_ood_checks(res)
    assert len(axes) == 4
    import matplotlib.pyplot as plt

    plt.close("all")


def test_report_rollout_writes_tables_and_figures(est, toy_pair, monkeypatch, tmp_path):
    from xdownscale.app import report

    coarse, fine, _ = toy_pair
    _stub(monkeypatch, lambda days, c, h: fine[VAR].sel(time=days).values)
    roll = est.rollout(coarse, history=fine.sel(time=slice(None, "2006-06-30")), start=START,
                       end="2006-07-20")
    for sub in ("tables", "figures"):
        (tmp_path / sub).mkdir()
    bic = regrid_like(coarse, fine[VAR].isel(time=0, drop=True))
    area = report._Area(tmp_path, "T", coarse, bic, fine[VAR], VAR, 300,
                        {"fine": fine, "coarse": coarse})
    lines, figs = report._rollout_checks(area, est, roll, days=6)
    text = "\n".join(lines)
    assert "lead days 5-6" in text and "envelopes" in text
    assert (tmp_path / "tables" / "T_rollout_skill_JJA.csv").is_file()
    assert len(figs) == 2 and all((tmp_path / rel).is_file() for _, rel in figs)


def _steps_stub(monkeypatch):
    """A kernel that returns yesterday's map, doubled unless it samples one DDIM step."""

    def kernel(est, days, coarse_log, hist_log, *, members, sampler, steps, **kwargs):
        gain = 1.0 if (sampler == "ddim" and steps == 1) else 2.0
        one = (gain * 10.0 ** hist_log[:, -1]).astype(np.float32)
        return np.repeat(one[None], members, axis=0)

    monkeypatch.setattr(rollout_mod, "predict_days_array", kernel)


def _with_point(est, point):
    """``est`` with ``point_estimate=point`` for the length of a test (a fixture's body)."""
    old = est.config_
    est.config_ = old.replace(point_estimate=point)
    try:
        yield est
    finally:
        est.config_ = old


@pytest.fixture
def ensemble_mean(est):
    yield from _with_point(est, "ensemble_mean")


@pytest.fixture
def conditional_mean(est):
    yield from _with_point(est, "conditional_mean")


def _stubbed_rollout(monkeypatch, toy_pair):
    """The steps stub in place; the coarse record, the seed day and the rollout arguments."""
    coarse, fine, _ = toy_pair
    _steps_stub(monkeypatch)
    history = fine.sel(time=slice(None, "2006-06-30"))
    kw = dict(history=history, start=START, end="2006-07-04", coarse_consistency=False,
              drift_threshold=None, steps=3)
    return coarse, history[VAR].isel(time=-1).values, kw


def test_rollout_carries_the_one_step_mean_not_the_sampled_output(ensemble_mean, toy_pair,
                                                                  monkeypatch, tmp_path):
    est = ensemble_mean
    coarse, seed_day, kw = _stubbed_rollout(monkeypatch, toy_pair)
    mean = est.rollout(coarse, **kw)  # carry="mean": every day starts from the seed day
    for k in range(4):
        np.testing.assert_allclose(mean[VAR].values[k], 2 * seed_day, rtol=1e-5)
        np.testing.assert_allclose(mean[f"{VAR}_history"].values[k], seed_day, rtol=1e-5)
    ens = est.rollout(coarse, carry="ensemble", **kw)  # the output itself feeds back
    assert f"{VAR}_history" not in ens
    for k in range(4):
        np.testing.assert_allclose(ens[VAR].values[k], 2 ** (k + 1) * seed_day, rtol=1e-5)
    # one member of one DDIM step is the mean already: no second pass, no extra field
    one = est.rollout(coarse, **{**kw, "steps": 1})
    assert f"{VAR}_history" not in one
    np.testing.assert_allclose(one[VAR].values[-1], seed_day, rtol=1e-5)
    # a store records the choice; an older store (no attribute) carried the ensemble mean
    store = tmp_path / "old.zarr"
    est.rollout(coarse, carry="ensemble", store=store, **kw)
    import zarr

    attrs = zarr.open_group(str(store), mode="r+", use_consolidated=False).attrs
    del attrs["xdownscale_rollout_carry"]
    rollout_mod._consolidate(store)
    again = est.rollout(coarse, carry="ensemble", store=store, **kw)
    np.testing.assert_array_equal(again[VAR].values, ens[VAR].values)
    with pytest.raises(StoreError, match="carry.*'ensemble'.*'mean'"):
        est.rollout(coarse, store=store, **kw)
    with pytest.raises(ConfigError, match="carry"):
        est.rollout(coarse, carry="members", **kw)


def test_the_unet_carries_its_own_prediction(toy_pair, monkeypatch):
    coarse, fine, elev = toy_pair
    unet = coarse.downscale.fit(fine, elevation=elev, model="unet", config=tiny_config(),
                                seasons=["JJA"])
    out = unet.rollout(coarse, history=fine.sel(time=slice(None, "2006-06-30")), start=START,
                       end="2006-07-02")
    assert f"{VAR}_history" not in out and out.attrs["xdownscale_rollout_carry"] == "mean"


def test_the_point_estimate_is_the_one_step_mean_beside_sampled_members(conditional_mean,
                                                                        toy_pair):
    est = conditional_mean
    coarse, fine, _ = toy_pair
    days = est.test_days_["JJA"][:2]
    c = coarse.sel(time=days)
    out = est.predict(c, history=fine, members=3, steps=3, seed=2, keep_members=True)
    one = est.predict(c, history=fine, members=1, steps=1, seed=2)
    est.config_ = est.config_.replace(point_estimate="ensemble_mean")
    ens = est.predict(c, history=fine, members=3, steps=3, seed=2, keep_members=True)
    est.config_ = est.config_.replace(point_estimate="conditional_mean")
    # <var> is the one-step estimate; the members, their spread and the attrs say so
    np.testing.assert_array_equal(out[VAR].values, one[VAR].values)
    assert out[VAR].attrs["xdownscale_point"] == "conditional_mean"
    assert ens[VAR].attrs["xdownscale_point"] == "ensemble_mean"
    np.testing.assert_array_equal(out[f"{VAR}_members"].values, ens[f"{VAR}_members"].values)
    np.testing.assert_array_equal(out[f"{VAR}_std"].values, ens[f"{VAR}_std"].values)
    assert not np.allclose(out[VAR].values, ens[VAR].values)
    # one member: nothing is sampled unless the member is kept
    single = est.predict(c, history=fine, members=1, steps=3, seed=2)
    np.testing.assert_array_equal(single[VAR].values, one[VAR].values)
    assert set(single.data_vars) == {VAR}
    kept = est.predict(c, history=fine, members=1, steps=3, seed=2, keep_members=True)
    np.testing.assert_array_equal(kept[VAR].values, one[VAR].values)
    est.config_ = est.config_.replace(point_estimate="ensemble_mean")
    sample = est.predict(c, history=fine, members=1, steps=3, seed=2)
    est.config_ = est.config_.replace(point_estimate="conditional_mean")
    np.testing.assert_array_equal(kept[f"{VAR}_members"].values[0], sample[VAR].values)
    # lazy equals eager
    lazy = est.predict(c.chunk(time=1), history=fine.chunk(time=10), members=3, steps=3, seed=2)
    np.testing.assert_allclose(lazy[VAR].values, out[VAR].values, rtol=1e-6)
    np.testing.assert_allclose(lazy[f"{VAR}_std"].values, out[f"{VAR}_std"].values, rtol=1e-5)
    with pytest.raises(ConfigError, match="point_estimate"):
        est.config_.replace(point_estimate="median")
    # a pseudo out-of-data rollout scores the same point: on lead day 1 (true history) the
    # rollout's scores are the direct prediction's, the CRPS coming from the members
    res = est.evaluate_rollout(coarse, fine, start=START, days=2, members=2, steps=2, seed=3)
    lead1 = res.sel(lead=1)
    for score in ("r2", "rmse", "bias", "crps"):
        np.testing.assert_allclose(lead1[score].sel(source="rollout"),
                                   lead1[score].sel(source="true_history"), rtol=1e-4)


def test_a_conditional_mean_rollout_outputs_and_carries_the_one_step_mean(conditional_mean,
                                                                         toy_pair, monkeypatch):
    est = conditional_mean
    coarse, seed_day, kw = _stubbed_rollout(monkeypatch, toy_pair)
    # carry="mean": the output is the one-step mean and feeds back; the members (doubled by
    # the stub) give only the spread, here 0
    mean = est.rollout(coarse, members=2, **kw)
    assert f"{VAR}_history" not in mean
    assert mean.attrs["xdownscale_point"] == "conditional_mean"
    for k in range(4):
        np.testing.assert_allclose(mean[VAR].values[k], seed_day, rtol=1e-5)
    np.testing.assert_allclose(mean[f"{VAR}_std"].values, 0, atol=1e-6)
    # carry="ensemble": the members' mean feeds back (doubling each day), the output stays
    # the one-step mean of that history
    ens = est.rollout(coarse, carry="ensemble", **kw)
    for k in range(4):
        np.testing.assert_allclose(ens[f"{VAR}_history"].values[k], 2 ** (k + 1) * seed_day,
                                   rtol=1e-5)
        np.testing.assert_allclose(ens[VAR].values[k], 2 ** k * seed_day, rtol=1e-5)
