"""Skill on coarse/fine pairs the models were not tuned to, beside interpolating the coarse map.

For every test-bed of ``tests/testbeds.py`` (record lengths 120-730 days, windows 32x32 to
48x64, area-mean or point-sample coarse operators, biased and noisy coarse fields, slow and
fast advection, heavy tails, two terrains), every model, target and seed: fit one season
(JJA) with the chosen configuration, predict its test days (the last 10 % in time; the DDPM
with ``--members`` members) and score them beside

* ``bicubic``: the coarse day interpolated to the fine grid, and
* ``bicubic_bc``: the same with its mean log10 bias on the training days removed,

in log10 and data units (mean per-day R² = 1 - SSE/SST over the day's pixels, RMSE, bias,
and CRPS for the ensemble). A final table gives, per bed x model x target, the mean and the
spread (min-max) over seeds of the margin over ``bicubic_bc``.

    python benchmarks/bench_skill.py                          # every bed, ddpm + unet, residual
    python benchmarks/bench_skill.py --beds base short-record --targets residual direct
    python benchmarks/bench_skill.py --config default --beds base fast-wind --seeds 0
    python benchmarks/bench_skill.py --cache DIR --untied    # + <model>_untied rows (no step)
    python benchmarks/bench_skill.py --cache DIR --one-step  # + ddpm_1step rows (DDIM-1, 1 member)
    python benchmarks/bench_skill.py --cache DIR --models unet --stage-a-from ddpm  # stage B only
    python benchmarks/bench_skill.py --config default --beds demo --state-dir DIR  # resumable

With ``point_estimate="conditional_mean"`` (``fast()``), the ``ddpm`` row is the DDPM's
one-step conditional mean and ``ddpm_ensmean`` the mean of its members.

Writes ``--out`` (a CSV of every row) when given; ``--cache DIR`` keeps the fitted models, so
a rerun (say, after a change to prediction) only predicts and scores. Figures measured with this script are in the
docs' training guide.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import testbeds  # noqa: E402
from _common import (  # noqa: E402
    cached_fit,
    load_pair,
    parse_overrides,
    skill_config,
    skill_fit_name,
    use_prediction_settings,
)

from xdownscale import DownscaleConfig, Downscaler  # noqa: E402
from xdownscale.diagnostics.baselines import (  # noqa: E402
    bias_corrected,
    interpolated,
    log_bias,
    score_against_baselines,
)
from xdownscale.predict.drift import coarse_consistent  # noqa: E402


def run_one(bed: str, seed: int, model: str, target: str, config: str, members: int,
            season: str = "JJA", cache: Path | None = None,
            inference: str | None = None,
            untied_row: bool = False,
            one_step_row: bool = False,
            coarse_consistency: bool | None = None,
            as_shipped: bool = False, overrides: dict | None = None,
            tag: str = "", verbose: bool = False,
            stage_a_from: str | None = None,
            state_dir: Path | None = None,
            save_predictions: Path | None = None) -> tuple[pd.DataFrame, dict]:
    coarse, fine, elev = load_pair(bed, seed=seed)  # "demo": the shipped A1 pair
    base = DownscaleConfig.fast if config == "fast" else DownscaleConfig
    # as_shipped: fit exactly as fit() does by default (validation and spread calibration
    # after stage B), for timing; otherwise those are skipped, the scores do not use them
    cfg = skill_config(base, seed=seed, overrides=overrides, target=target,
                       as_shipped=as_shipped, verbose=verbose,
                       coarse_consistency=coarse_consistency)

    def name(kind):
        return skill_fit_name(bed, season, kind, target=target, config=config, tag=tag,
                              seed=seed)

    pretrained = None
    if stage_a_from is not None:  # the same stage A, already trained by another model's fit
        if cache is None or not (cache / name(stage_a_from) / "estimator.json").exists():
            raise SystemExit(f"--stage-a-from {stage_a_from}: no fitted {name(stage_a_from)} "
                             f"in --cache {cache}")
        pretrained = Downscaler.load(cache / name(stage_a_from))

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Downscaler(cfg, model=model, seasons=[season]).fit(
                coarse, fine, elev, pretrained=pretrained,
                state_dir=None if state_dir is None else state_dir / name(model))

    if cache is None:
        t0 = time.perf_counter()
        est = fit()
        fit_s = time.perf_counter() - t0
    else:  # a cached model reports the fit time it was saved with
        path = cache / name(model)
        est, fit_s = cached_fit(path, fit, what=path.name, data=(coarse, fine))
        stamp = path / "fit_seconds.txt"
        if fit_s:
            stamp.write_text(f"{fit_s:.1f}\n")
        fit_s = float(stamp.read_text()) if stamp.exists() else float("nan")
        use_prediction_settings(est, cfg)  # a model saved by an earlier version
    days = est.test_days_[season]
    t0 = time.perf_counter()
    m = members if model == "ddpm" else 1
    plan = est.plans_[season]
    train = np.concatenate([plan.train, plan.holdout])
    tied = est.config_.ties_to_driver(model)
    point = model == "ddpm" and est.config_.point_estimate == "conditional_mean" and m > 1
    pred = est.predict(coarse.sel(time=days), history=fine, members=m, seed=seed,
                       inference=inference, coarse_consistency=False if untied_row else None,
                       keep_members=point or (save_predictions is not None and m > 1))
    pred_s = time.perf_counter() - t0
    if save_predictions is not None:  # for bench_ensembles.py --predictions: scored, not redone
        save_predictions.mkdir(parents=True, exist_ok=True)
        pred.attrs.update(predict_seconds=pred_s, members=m)
        pred.to_netcdf(save_predictions / f"{name(model)}.nc")
    truth = fine["DUEXTTAU"]
    interp = interpolated(coarse, truth, method=cfg.regrid_method)
    bias = log_bias(interp, truth, train)
    rows = {model: pred, "bicubic": interp.sel(time=days),
            "bicubic_bc": bias_corrected(interp.sel(time=days), bias)}
    if untied_row:  # one prediction without the step; the step after the fact is the default's
        rows[f"{model}_untied"] = pred
        if tied:
            rows[model] = coarse_consistent(pred, coarse, reference=fine.sel(time=train),
                                            method=cfg.regrid_method,
                                            clamp=est.config_.regrid_clamp)
    if point:  # the point is the one-step mean: score the members' mean beside it
        rows[f"{model}_ensmean"] = pred["DUEXTTAU_members"].mean("member")
        if untied_row and tied:
            rows[f"{model}_ensmean"] = coarse_consistent(
                rows[f"{model}_ensmean"], coarse, reference=fine.sel(time=train),
                method=cfg.regrid_method, clamp=est.config_.regrid_clamp)
    if one_step_row and model == "ddpm":  # the model's conditional-mean estimate, one pass
        rows[f"{model}_1step"] = est.predict(coarse.sel(time=days), history=fine, members=1,
                                             steps=1, seed=seed, inference=inference)
    table = score_against_baselines(rows, truth.sel(time=days))
    steps = int(est.training_log_.loc[(season, "B")]["steps"].iloc[-1])
    info = dict(fit_s=fit_s, predict_s=pred_s, steps_b=steps, n_train_days=len(plan.train))
    return table, info


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--beds", nargs="+", default=list(testbeds.BEDS),
                   help="test-beds, or 'demo' for the shipped synthetic pair (A1)")
    p.add_argument("--seasons", nargs="+", default=["JJA"])
    p.add_argument("--inference", choices=["auto", "tiles", "patches"], default=None,
                   help="how the test days are predicted (default: the configuration's)")
    p.add_argument("--models", nargs="+", default=["ddpm", "unet"])
    p.add_argument("--targets", nargs="+", default=["residual"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--config", choices=["fast", "default"], default="fast")
    p.add_argument("--members", type=int, default=8,
                   help="DDPM ensemble size (its mean is scored; 8 as in the training guide)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", default=None, help="CSV of every row")
    p.add_argument("--one-step", action="store_true",
                   help="also score the DDPM's one-step prediction (DDIM-1, one member: its "
                   "estimate of the conditional mean) as ddpm_1step")
    p.add_argument("--untied", action="store_true",
                   help="also score each prediction without the coarse-consistency step (rows "
                   "<model>_untied; the step is then applied after the fact for the main row, "
                   "which gives the same numbers)")
    p.add_argument("--as-shipped", action="store_true",
                   help="fit with the validation and spread calibration fit() adds by default "
                   "(to time a fit as a user gets it)")
    p.add_argument("--no-coarse-consistency", action="store_true",
                   help="predict without the coarse-consistency step (as before it was the "
                   "default)")
    p.add_argument("--cache", default=None,
                   help="folder of fitted models: reused when present, saved when fitted")
    p.add_argument("--stage-a-from", default=None, metavar="MODEL",
                   help="reuse the stage-A model of MODEL's cached fit of the same bed, season, "
                   "target, configuration and seed (fit(pretrained=...)): it is the same "
                   "training, so only stage B runs")
    p.add_argument("--state-dir", default=None, metavar="DIR",
                   help="write each fit's training state under DIR after every round, and "
                   "resume from it: a run stopped half-way (a time limit) continues where it "
                   "was when started again (the fit time printed is then the last part's; the "
                   "training log's seconds add up to the whole)")
    p.add_argument("--save-predictions", default=None, metavar="DIR",
                   help="write each model's prediction of the test days (the DDPM's members "
                   "kept) to DIR/<fit name>.nc, for bench_ensembles.py --predictions DIR")
    p.add_argument("--verbose", action="store_true",
                   help="log every training round (steps, losses) while fitting")
    p.add_argument("--set", nargs="+", default=None, metavar="NAME=VALUE",
                   help="configuration overrides of every fit (cached under a name with them)")
    args = p.parse_args(argv)
    overrides, tag = parse_overrides(args.set)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    rows = []
    started = time.perf_counter()
    cache = None if args.cache is None else Path(args.cache)
    runs = [(bed, season, model, target, seed) for bed in args.beds for season in args.seasons
            for model in args.models for target in args.targets for seed in args.seeds]
    for bed, season, model, target, seed in runs:
        table, info = run_one(bed, seed, model, target, args.config, args.members,
                              season=season, cache=cache, inference=args.inference,
                              untied_row=args.untied,
                              one_step_row=args.one_step,
                              coarse_consistency=False if args.no_coarse_consistency else None,
                              as_shipped=args.as_shipped, overrides=overrides, tag=tag,
                              verbose=args.verbose, stage_a_from=args.stage_a_from,
                              state_dir=None if args.state_dir is None else Path(args.state_dir),
                              save_predictions=None if args.save_predictions is None
                              else Path(args.save_predictions))
        for method, r in table.iterrows():
            rows.append(dict(bed=bed, season=season, model=model, target=target,
                             seed=seed, method=method, **r.to_dict(), **info))
        t = table
        print(f"{bed:13s} {season} {model:5s} {target:9s} seed {seed}: R2 log10 "
              f"{t.loc[model, 'r2_log10']:.3f} (bc {t.loc['bicubic_bc', 'r2_log10']:.3f}"
              f", bicubic {t.loc['bicubic', 'r2_log10']:.3f}"
              + (f", without the step {t.loc[f'{model}_untied', 'r2_log10']:.3f}"
                 if f"{model}_untied" in t.index else "")
              + (f", members' mean {t.loc[f'{model}_ensmean', 'r2_log10']:.3f} / "
                 f"{t.loc[f'{model}_ensmean', 'r2_data']:.3f}"
                 if f"{model}_ensmean" in t.index else "")
              + (f", one step {t.loc[f'{model}_1step', 'r2_log10']:.3f} / "
                 f"{t.loc[f'{model}_1step', 'r2_data']:.3f}"
                 if f"{model}_1step" in t.index else "") + "); R2 data "
              f"{t.loc[model, 'r2_data']:.3f} (bc {t.loc['bicubic_bc', 'r2_data']:.3f}); "
              f"fit {info['fit_s']:.0f} s ({info['steps_b']} steps), predict "
              f"{info['predict_s']:.0f} s", flush=True)
        if args.out:  # after every fit, so a long run stopped half-way keeps what it did
            pd.DataFrame(rows).to_csv(args.out, index=False)
    df = pd.DataFrame(rows)
    # margins over bias-corrected bicubic, per bed x season x model x target, over seeds
    key = ["bed", "season", "model", "target", "seed"]
    model_rows = df[df["method"] == df["model"]].set_index(key)
    bc = df[df["method"] == "bicubic_bc"].set_index(key)
    margin = pd.DataFrame({
        "r2_log10": model_rows["r2_log10"],
        "margin_log10": model_rows["r2_log10"] - bc["r2_log10"],
        "margin_data": model_rows["r2_data"] - bc["r2_data"],
        "rmse_data_ratio": model_rows["rmse_data"] / bc["rmse_data"],
        "fit_s": model_rows["fit_s"],
    })
    if "crps_log10" in model_rows:
        margin["crps_log10"] = model_rows["crps_log10"]
    g = margin.groupby(level=["bed", "season", "model", "target"])
    summary = g.mean().add_suffix("_mean").join(
        (g.max() - g.min())[["margin_log10", "margin_data"]].add_suffix("_range"))
    pd.set_option("display.width", 200)
    print()
    print(f"{args.config} configuration{' with ' + ' '.join(args.set) if args.set else ''}, "
          f"seeds {args.seeds}: mean over seeds (range = max - min)")
    print(summary.round(3).to_string())
    ok = (margin["margin_log10"] >= 0.05) & (margin["margin_data"] >= 0)
    print(f"\n{int(ok.sum())}/{len(ok)} fits beat bias-corrected bicubic by >= 0.05 R2 (log10) "
          f"and are not worse in data units; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
