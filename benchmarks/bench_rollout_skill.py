"""Does a rollout drift? Skill by lead day of a 30-day pseudo out-of-data rollout.

A ``DownscaleConfig.fast()`` DDPM (season JJA) is fitted on the synthetic A1 demo pair
(64 x 64 fine pixels) with the G5NR-like record lengthened to 839 days (2005-05-15 ..
2007-08-31), so that the last 30 days of the record are validation/test days of JJA 2007 the
model never took a gradient step on; it is cached with ``Downscaler.save`` under ``--cache``.
``est.evaluate_rollout`` then rolls out from ``--start`` as if the fine record ended the day
before, twice: without and with the coarse-consistency step (the default; each day's mean
over every coarse cell tied to the driver, with the training days' per-cell offsets, before
it becomes history). Beside each: the same days predicted from the true history the same way
(without or with the step), bicubic, and bicubic corrected by its mean log10 bias on the
training days.

Printed: for lead days 21-30, R² (log10, mean over days), |mean log10 bias|, RMSE (log10),
R² in data units and the drift against the coarse driver, per source (the true-history rows
of both runs: the step also removes the model's own bias, which is not drift; the two rows
tell them apart); the bar (R² ≥
bias-corrected bicubic, within 0.05 of the true history, |bias| ≤ 0.05); the per-lead table
goes to ``--out`` as CSV, the skill-vs-lead figure as PNG.

Run::

    python benchmarks/bench_rollout_skill.py --cache /tmp/xds-bench/rollout-skill --out /tmp/xds-bench/rollout-skill
    python benchmarks/bench_rollout_skill.py --beds base biased-noisy --skill-cache DIR

With ``--beds`` the pairs are the test-beds of ``tests/testbeds.py`` and the models the
``fast()`` DDPMs that ``bench_skill.py --cache DIR`` fitted (fitted here and saved there when
missing); the window is the last ``--days`` consecutive JJA days of each bed's fine record
with a full lag window before them (``xdownscale.predict.evaluation.pseudo_start``), and one
row per bed and run is printed at the end.

DDIM with ``--steps`` steps (default 10; the sampler table in the prediction guide shows
DDIM-20 adds 0.002 R²), one member, one torch thread. 120 predicted days in all (two rollouts,
two true-history predictions): about 4 minutes on one thread beside another job, plus 7
minutes for the fit when it is not cached. The table is in the rollout guide.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import cached_fit, load_pair, parse_overrides, skill_fit

import xdownscale
from xdownscale import DownscaleConfig
from xdownscale.diagnostics._common import log10
from xdownscale.diagnostics.baselines import interpolated, log_bias
from xdownscale.predict.evaluation import lead_summary, plot_rollout_skill, pseudo_start

VAR = "DUEXTTAU"


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", default="bench-cache", help="folder for the fitted model")
    p.add_argument("--out", default=None, help="folder for the CSV table and the figure")
    p.add_argument("--fine-days", type=int, default=839)
    p.add_argument("--start", default="2007-08-02")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--leads", default="21,30", help="first,last lead day of the summary")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--members", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--beds", nargs="+", default=None,
                   help="test-beds instead of the lengthened demo pair")
    p.add_argument("--skill-cache", default=None,
                   help="bench_skill.py's --cache folder (the test-beds' fitted models)")
    p.add_argument("--set", nargs="+", default=None, metavar="NAME=VALUE",
                   help="configuration overrides of the fits (as bench_skill.py --set)")
    p.add_argument("--model", default=None,
                   help="a saved estimator fitted on the shipped demo pair (say, with the "
                   "default configuration): rolled out over the last --days consecutive "
                   "days of its season with a lag window")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.beds:
        return _beds(args)
    if args.model:
        return _saved(args)
    coarse, fine, elev = xdownscale.datasets.synthetic(area="A1", seed=args.seed,
                                                       fine_days=args.fine_days)

    overrides, tag = parse_overrides(args.set)

    def fit():
        torch.manual_seed(args.seed)
        cfg = DownscaleConfig.fast(seed=args.seed, verbose=False, **overrides)
        return coarse.downscale.fit(fine, elevation=elev, model="ddpm", seasons=["JJA"],
                                    config=cfg)

    path = Path(args.cache) / f"ddpm_A1_JJA_{args.fine_days}d{tag}_seed{args.seed}"
    est, fit_s = cached_fit(path, fit, "the DDPM", data=(coarse, fine))
    print(f"\nsynthetic A1 demo pair ({args.fine_days} fine days), fast() DDPM, JJA")
    return evaluate(est, coarse, fine, pd.Timestamp(args.start), args, fit_s=fit_s)


def _beds(args) -> pd.DataFrame:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    cache = Path(args.skill_cache or args.cache)
    overrides, tag = parse_overrides(args.set)
    rows, persistence = [], {}
    for bed in args.beds:
        coarse, fine, elev = load_pair(bed, seed=args.seed)
        est, fit_s = skill_fit(cache, bed, "JJA", "ddpm", (coarse, fine, elev), seed=args.seed,
                               overrides=overrides, tag=tag)
        start = pseudo_start(est, pd.DatetimeIndex(fine["time"].values), "JJA", args.days)
        if start is None:
            print(f"{bed}: no {args.days} consecutive JJA days with a lag window before them")
            continue
        print(f"\ntest-bed {bed} (seed {args.seed}), fast() DDPM, JJA")
        table = evaluate(est, coarse, fine, start, args, fit_s=fit_s, tag=f"_{bed}")
        persistence[bed] = table.attrs["persistence"]
        rows.append(table.assign(bed=bed))
    table = pd.concat(rows)
    print("\nall beds, lead days " + args.leads)
    print(table[["bed", "run", "source", "r2", "abs_mean_log10_bias", "r2_data", "drift"]]
          .to_string(index=False, float_format="{:.3f}".format))
    print("\nmodel-free worth of yesterday's true fine day (bc + rho r(t-1) against bc):")
    print(pd.DataFrame(persistence).T.assign(gap=lambda d: d["oracle"] - d["bc"])
          .to_string(float_format="{:.3f}".format))
    return table


def _saved(args) -> pd.DataFrame:
    """A saved estimator on the shipped demo pair, with the prediction settings it was saved
    with."""
    est = xdownscale.Downscaler.load(args.model)
    coarse, fine, _ = load_pair("demo", seed=args.seed)
    (season,) = est.seasons_[:1]
    start = pseudo_start(est, pd.DatetimeIndex(fine["time"].values), season, args.days)
    if start is None:
        raise SystemExit(f"no {args.days} consecutive {season} days with a lag window")
    print(f"\nshipped demo pair, saved model {args.model} ({est.model}, {season}, "
          f"inference {est.config_.inference})")
    return evaluate(est, coarse, fine, start, args, tag="_" + Path(args.model).name)


def persistence_oracle(est, coarse, fine, days) -> tuple[float, float, float]:
    """What yesterday's true fine day adds to bias-corrected bicubic, model-free.

    The residual ``r = log10(fine) - log10(bc)`` is regressed on its value the day before
    (one pooled slope ``rho`` over consecutive training days); on ``days``, ``bc + rho *
    r(t-1)`` uses the true fine field of the day before, as a prediction from the true
    history can, and a rollout at lead 21 or more cannot (its last true day is weeks old).
    Returns ``(rho, R² of bc, R² of bc + rho r(t-1))``, per-day R² in log10 averaged over
    ``days``: the gap is a floor on what the true history is worth on this pair.
    """
    eps = est.config_.eps
    truth = fine[VAR].transpose("time", "lat", "lon")
    bic = interpolated(coarse[VAR].sel(time=truth["time"]), truth,
                       method=est.config_.regrid_method)
    train = pd.DatetimeIndex(est.plans_["JJA"].train)
    bias = log_bias(bic, truth, train, eps=eps)
    log_truth, log_bic = (log10(x, eps).load() for x in (truth, bic))
    resid = log_truth - log_bic - bias
    times = pd.DatetimeIndex(truth["time"].values)
    pairs = [(d - pd.Timedelta(days=1), d) for d in train if d - pd.Timedelta(days=1) in train]
    prev = resid.sel(time=[p for p, _ in pairs]).values.ravel()
    now = resid.sel(time=[d for _, d in pairs]).values.ravel()
    ok = np.isfinite(prev) & np.isfinite(now)
    rho = float(np.dot(prev[ok], now[ok]) / np.dot(prev[ok], prev[ok]))

    def r2(pred, obs):
        sse = np.nansum((pred - obs) ** 2)
        return 1.0 - sse / np.nansum((obs - np.nanmean(obs)) ** 2)

    scores = []
    for d in days:
        if d - pd.Timedelta(days=1) not in times:
            continue
        obs = log_truth.sel(time=d).values
        bc = log_bic.sel(time=d).values + bias
        scores.append((r2(bc, obs), r2(bc + rho * resid.sel(time=d - pd.Timedelta(days=1)).values,
                                       obs)))
    bc_r2, oracle_r2 = np.mean(scores, axis=0)
    return rho, float(bc_r2), float(oracle_r2)


def evaluate(est, coarse, fine, start, args, *, fit_s=0.0, tag="") -> pd.DataFrame:
    """Both rollouts from ``start`` and their scores; prints the table and the bar."""
    kw = dict(start=start, days=args.days, members=args.members, seed=args.seed,
              steps=args.steps)
    days = pd.date_range(start, periods=args.days)
    results, seconds = {}, {}
    for name, cc in (("no step", False), ("coarse consistency", True)):
        # each run beside the true-history prediction made the same way (the step, when on,
        # ties both with the training days' per-cell offsets)
        t0 = time.perf_counter()
        direct = est.predict(coarse.sel(time=days), history=fine, members=args.members,
                             seed=args.seed, steps=args.steps, keep_members=args.members > 1,
                             coarse_consistency=cc).load()
        results[name] = est.evaluate_rollout(coarse, fine, coarse_consistency=cc,
                                             true_history=direct, **kw)
        seconds[name] = time.perf_counter() - t0
    lo, hi = (int(x) for x in args.leads.split(","))
    print(f"{args.days}-day rollout from {start.date()}, DDIM-{args.steps}, {args.members} "
          f"member(s); {results['no step'].attrs['n_training_days']} of the rolled-out days "
          f"are in the training period; load average {os.getloadavg()[0]:.1f}")
    print(f"seconds: fit {fit_s:.0f} (0 = cached), "
          + ", ".join(f"true-history prediction + rollout + scoring, {k}: {v:.0f}"
                      for k, v in seconds.items()))
    rows = []
    for name, res in results.items():
        log = lead_summary(res, (lo, hi), "log10")
        data = lead_summary(res, (lo, hi), "data")
        for src in log.index:
            if name != "no step" and src not in ("rollout", "true_history"):
                continue
            rows.append({"run": name, "source": src,
                         "r2": log.loc[src, "r2"], "abs_mean_log10_bias":
                         log.loc[src, "abs_mean_bias"], "rmse_log10": log.loc[src, "rmse"],
                         "r2_data": data.loc[src, "r2"], "drift": log.loc[src, "drift"]})
    table = pd.DataFrame(rows)
    print(f"\nlead days {lo}-{hi} (means over the days; R2, bias, RMSE in log10)")
    print(table.to_string(index=False, float_format="{:.3f}".format))
    base = lead_summary(results["no step"], (lo, hi))
    for name, res in results.items():
        summary = lead_summary(res, (lo, hi))
        s = summary.loc["rollout"]
        ok = (s.r2 >= base.loc["bias_corrected_bicubic", "r2"],
              s.r2 >= summary.loc["true_history", "r2"] - 0.05, s.abs_mean_bias <= 0.05)
        print(f"{name}: R2 >= bias-corrected bicubic {ok[0]}, within 0.05 of true history "
              f"{ok[1]}, |mean log10 bias| <= 0.05 {ok[2]}")
    lead_days = pd.date_range(start + pd.Timedelta(days=lo - 1), periods=hi - lo + 1)
    rho, bc_r2, oracle_r2 = persistence_oracle(est, coarse, fine, lead_days)
    print(f"model-free: bias-corrected bicubic + {rho:.2f} x yesterday's true residual R2 "
          f"{oracle_r2:.3f} against {bc_r2:.3f} on lead days {lo}-{hi}: the true history is "
          f"worth at least {oracle_r2 - bc_r2:+.3f} here")
    table.attrs["persistence"] = {"rho": rho, "bc": bc_r2, "oracle": oracle_r2}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        per_lead = pd.concat({k: v.to_dataframe() for k, v in results.items()}, names=["run"])
        per_lead.to_csv(out / f"rollout_skill_by_lead{tag}.csv")
        import matplotlib

        matplotlib.use("Agg")
        axes = plot_rollout_skill(list(results.values()), labels=list(results))
        axes[0].figure.savefig(out / f"rollout_skill_by_lead{tag}.png", dpi=110,
                               bbox_inches="tight")
        print(f"\nwrote {out / f'rollout_skill_by_lead{tag}.csv'} and the .png beside it")
    return table


if __name__ == "__main__":
    main()
