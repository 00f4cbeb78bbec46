"""The paper-style report: Markdown with PNG figures and CSV tables.

Tables follow the paper: Table 1 (statistics of both products per season), Table 2
(Wasserstein domain similarity), Tables 3 and A1 (skill per model and season on the test
days, with bicubic interpolation of the coarse field as the floor every model must beat).
Figures are the analogues of the paper's Figures 2-9 plus the training curves.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .. import diagnostics as dg
from ..data.seasons import SEASONS, season_of
from ..diagnostics._common import product_label

__all__ = ["area_section", "write", "markdown_table"]

_SCORES = ("r2", "r2_corr", "rmse", "mae", "nse", "kge", "kge2012", "bias", "crps", "ssr")


def markdown_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub-flavoured Markdown table of ``df`` (its index too, unless a plain range)."""
    return df.to_markdown(index=not isinstance(df.index, pd.RangeIndex), floatfmt=floatfmt)


def _savefig(fig, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    path = out / "figures" / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f"figures/{name}"


def _table(df: pd.DataFrame, out: Path, name: str) -> str:
    df.to_csv(out / "tables" / name)
    return f"tables/{name}"


def _describe_product(obj, role: str) -> str:
    attrs = getattr(obj, "attrs", {})
    parts = [f"**{product_label(obj, role)}**"]
    for key in ("title", "source", "comment"):
        if attrs.get(key):
            parts.append(f"{key}: {attrs[key]}")
    return "- " + "; ".join(parts)


def _extent(da: xr.DataArray) -> str:
    lat, lon = np.asarray(da["lat"]), np.asarray(da["lon"])
    return (f"lat {lat.min():.2f}–{lat.max():.2f} °N, lon {lon.min():.2f}–{lon.max():.2f} °E "
            f"(fine pixel centres; {lat.size} × {lon.size} pixels)")


def _season_sel(da: xr.DataArray, season: str) -> xr.DataArray:
    return da.isel(time=np.flatnonzero(season_of(pd.DatetimeIndex(da["time"].values)) == season))


def _skill_rows(pred, truth, label: str, var: str) -> list[dict]:
    rows = []
    days = pd.DatetimeIndex(pred["time"].values)
    for season in [s for s in SEASONS if (season_of(days) == s).any()]:
        sel = np.flatnonzero(season_of(days) == season)
        sk = dg.skill(pred.isel(time=sel), _season_sel(truth, season), var=var)
        for space in sk["space"].values:
            row = {"model": label, "season": season, "space": str(space),
                   "n_days": int(sk.sizes["time"])}
            for s in _SCORES:
                if f"{s}_mean" in sk:
                    row[s] = float(sk[f"{s}_mean"].sel(space=space))
                    row[f"{s}_std"] = float(sk[f"{s}_std"].sel(space=space))
            rows.append(row)
    return rows


def _fmt_mean_std(df: pd.DataFrame, scores) -> pd.DataFrame:
    out = df[["model", "season", "n_days"]].copy()
    for s in scores:
        if s in df:
            out[s] = [f"{m:.3f} ({sd:.3f})" if np.isfinite(m) else "" for m, sd in
                      zip(df[s], df.get(f"{s}_std", np.nan * df[s]), strict=True)]
    return out


def area_section(out: Path, area: str, *, coarse, bicubic, fine, elevation, estimators,
                 predictions, rollout, var: str = "DUEXTTAU", n_pairs: int = 30000,
                 products: dict | None = None) -> str:
    """Compute the diagnostics of one area, save figures and tables, return Markdown.

    ``products`` maps ``"fine"``/``"coarse"`` to the Datasets as read (their global attrs say
    what the data are); by default the attrs of ``fine`` and ``coarse`` themselves.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    a = _Area(Path(out), area, coarse, bicubic, fine, var, n_pairs,
              {"fine": fine, "coarse": coarse, **(products or {})})
    lines = [f"## Area {area}: {_extent(fine)}", "",
             _describe_product(a.products["fine"], "fine"),
             _describe_product(a.products["coarse"], "coarse"), ""]
    lines += _data_tables(a)
    lines += _validation_lines(a, estimators)
    lines += _skill_tables(a, predictions)
    figs = _data_figures(a, estimators) + _prediction_figures(a, predictions)
    if rollout is not None:
        figs += _rollout_figures(a, rollout)
        est = estimators.get(rollout.attrs.get("xdownscale_model"))
        if est is not None:  # pseudo out-of-data skill and the envelope checks
            more, more_figs = _rollout_checks(a, est, rollout)
            lines += more
            figs += more_figs
    figs += [_training_figure(a, model, est) for model, est in estimators.items()]
    lines += ["### Figures", ""]
    for title, rel in figs:
        lines += [f"**{title}**", "", f"![{title}]({rel})", ""]
    return "\n".join(lines)


class _Area:
    """What every section of one area's report needs: the records, names and output folder."""

    def __init__(self, out, area, coarse, bicubic, fine, var, n_pairs, products):
        self.out, self.area, self.var, self.n_pairs = out, area, var, n_pairs
        self.fine, self.bicubic, self.products = fine, bicubic, products
        self.coarse = coarse
        self.coarse_da = coarse[var] if isinstance(coarse, xr.Dataset) else coarse
        self.fine_name = product_label(products["fine"], "fine")
        self.coarse_name = product_label(products["coarse"], "coarse")
        self.fine_days = fine["time"].values
        self.coarse_ov = self.coarse_da.sel(time=self.fine_days)  # on the overlap
        bic = bicubic.sel(time=self.fine_days)
        self.bic_ov = bic[var] if isinstance(bic, xr.Dataset) else bic


def _data_tables(a: _Area) -> list[str]:
    """Tables 1 and 2: statistics of both products, Wasserstein distance of bicubic to fine."""
    t1 = pd.concat({a.fine_name: dg.summary(a.fine).to_dataframe(),
                    a.coarse_name: dg.summary(a.coarse_ov).to_dataframe()}, names=["product"])
    t1 = t1.drop(columns=[c for c in t1.columns if c in ("space",)], errors="ignore")
    _table(t1, a.out, f"{a.area}_table1_summary.csv")
    w = dg.wasserstein(a.bic_ov, a.fine)
    t2 = pd.DataFrame([{k: float(w[k]) for k in w.data_vars if w[k].ndim == 0}],
                      index=pd.Index([a.area], name="area"))
    _table(t2, a.out, f"{a.area}_table2_wasserstein.csv")
    return ["### Table 1 — statistics over the overlap (data units)", "",
            markdown_table(t1.round(4)), "",
            "### Table 2 — Wasserstein distance, bicubic coarse vs fine (log-min-max "
            "normalised)", "", markdown_table(t2), ""]


def _validation_lines(a: _Area, estimators) -> list[str]:
    """Validation days against the interpolation baselines (scored by fit: ``validation_``)."""
    val = {m: e.validation_ for m, e in estimators.items()
           if getattr(e, "validation_", None) is not None}
    if not val:
        return []
    tv = pd.concat(val, names=["model"])
    _table(tv, a.out, f"{a.area}_validation.csv")
    cols = ["r2_log10", "rmse_log10", "r2_data", "rmse_data", "bias_log10", "n_days"]
    lines = ["### Validation days: each model beside bicubic and bias-corrected bicubic",
             "", markdown_table(tv[[c for c in cols if c in tv]].round(4)), "",
             "`bicubic_bc` removes bicubic's mean log10 bias on the training days. A model "
             "that does not beat `bicubic` here made `fit` warn.", ""]
    for model, t in val.items():
        if "spread_factor" not in t:
            continue
        rows = t.xs(model, level="method").dropna(subset=["spread_factor"])
        for season, r in rows.iterrows():
            lines += [f"{model} {season}: the ensemble spread was calibrated on these days "
                      f"(spread/skill {r['ssr']:.2f} as sampled; members' deviations from "
                      f"their mean × {r['spread_factor']:.2f} in predictions of two or more "
                      "members)" + (f"; a member's pixel-scale texture is "
                                    f"{r['texture_calibrated']:.2f} × the truth's "
                                    f"({r['texture_sampled']:.2f} as sampled)"
                                    if np.isfinite(r.get("texture_calibrated", np.nan))
                                    else "") + ".", ""]
    return lines


def _skill_tables(a: _Area, predictions) -> list[str]:
    """Tables 3 / A1: skill on the test days per model and season, bicubic as the floor."""
    rows = []
    for model, pred in predictions.items():
        rows += _skill_rows(pred, a.fine, model, a.var)
    if not rows:
        return []
    test_days = next(iter(predictions.values()))["time"].values
    rows += _skill_rows(a.bicubic.sel(time=test_days), a.fine, "bicubic", a.var)
    t3 = pd.DataFrame(rows)
    _table(t3.set_index(["model", "season", "space"]), a.out, f"{a.area}_table3_skill.csv")
    lines = []
    for space in ("log10", "data"):
        sub = t3[t3["space"] == space]
        lines += [f"### Table 3/A1 — skill on the test days ({space}; mean (std) over days)",
                  "", markdown_table(_fmt_mean_std(sub, ("r2", "r2_corr", "rmse", "mae",
                                                         "nse", "kge", "crps", "ssr"))), ""]
    ens = [m for m, p in predictions.items() if f"{a.var}_members" in p]
    lines += [("`crps` (fair CRPS, lower is better) and `ssr` (spread-skill ratio, 1 for a "
               "reliable ensemble) score the ensemble members of " + ", ".join(ens) + "; "
               if ens else "`crps` and `ssr` need an ensemble (members > 1); ")
              + "deterministic models and bicubic have none, so their cells are blank.", ""]
    secs = {m: p.attrs.get("seconds_per_day") for m, p in predictions.items()}
    lines += ["Seconds per predicted day: " + ", ".join(
        f"{m} {s:.2f}" for m, s in secs.items() if s is not None), ""]
    return lines


def _data_figures(a: _Area, estimators) -> list[tuple[str, str]]:
    """Figures 2-5 of the paper: one season of the area (JJA when fitted, its Season 3)."""
    import matplotlib.pyplot as plt

    plots = dg_plots()
    fitted = [s for e in estimators.values() for s in e.seasons_] or ["JJA"]
    season = "JJA" if "JJA" in fitted else fitted[0]
    sdays = a.fine_days[season_of(pd.DatetimeIndex(a.fine_days)) == season]
    fine_s, bic_s, coarse_s = (x.sel(time=sdays) for x in (a.fine, a.bic_ov, a.coarse_ov))
    day = pd.Timestamp(sdays[len(sdays) // 2])
    native = f"{a.coarse_name}, native grid"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    plots.plot_map(a.fine.sel(time=[day]), a.coarse_da.sel(time=[day]), axes=axes,
                   labels=[a.fine_name, native], time=day)
    fig.suptitle(f"Area {a.area}, {season}: one day at both resolutions")
    figs = [(f"Figure 2 — one {season} day ({day.date()}), fine and native coarse",
             _savefig(fig, a.out, f"{a.area}_fig2_maps.png"))]
    period = _period(sdays)
    ax = plots.plot_lag_metrics(fine_s, bic_s, labels=[a.fine_name, f"bicubic {a.coarse_name}"])
    ax[0].figure.suptitle(f"Area {a.area}, {season} {period}: persistence of the fields")
    figs.append((f"Figure 3 — lag R² and RMSE (log10), {season}",
                 _savefig(ax[0].figure, a.out, f"{a.area}_fig3_lags.png")))
    ax = plots.plot_semivariogram(fine_s, coarse_s, labels=[a.fine_name, native],
                                  n_pairs=a.n_pairs)
    ax.set_title(f"Area {a.area}, {season} {period}: mean daily semivariogram")
    figs.append((f"Figure 4 — semivariograms at native resolution (log10), {season}",
                 _savefig(ax.figure, a.out, f"{a.area}_fig4_semivariogram.png")))
    ax = plots.plot_acf(fine_s, coarse_s, labels=[a.fine_name, native], nlags=16)
    ax[0].figure.suptitle(f"Area {a.area}, {season} {period}: regional-mean series")
    figs.append((f"Figure 5 — ACF and PACF of the regional mean, {season}",
                 _savefig(ax[0].figure, a.out, f"{a.area}_fig5_acf.png")))
    return figs


def _prediction_figures(a: _Area, predictions) -> list[tuple[str, str]]:
    """Figure 6 per model: a test day's truth, one member, the point prediction (the ensemble
    mean, or the DDPM's one-step conditional mean), differences."""
    figs, var = [], a.var
    for model, pred in predictions.items():
        tday = pd.Timestamp(pred["time"].values[len(pred["time"]) // 2])
        truth_day, mean_day = a.fine.sel(time=[tday]), pred[var].sel(time=[tday])
        if f"{var}_members" in pred:  # one member beside the mean: the mean is smoother
            m = pred.sizes["member"]
            member = pred[f"{var}_members"].sel(time=[tday]).isel(member=0, drop=True)
            point = (f"{model}: one-step conditional mean"
                     if pred[var].attrs.get("xdownscale_point") == "conditional_mean"
                     else f"{model}: mean of {m} members")
            ax = dg_plots().plot_map(truth_day, member, mean_day, difference=(0, 2),
                                     labels=["truth", f"{model}: member 1 of {m}", point],
                                     time=tday)
        else:
            ax = dg_plots().plot_map(truth_day, mean_day, labels=["truth", f"{model}"],
                                     time=tday)
        ax[0].figure.suptitle(f"Area {a.area}: a test day, truth and prediction")
        figs.append((f"Figure 6 — {model}: test-day prediction and difference ({tday.date()})",
                     _savefig(ax[0].figure, a.out, f"{a.area}_fig6_{model}.png")))
    return figs


def _rollout_figures(a: _Area, rollout) -> list[tuple[str, str]]:
    """Figures 7-9: an out-of-data day, its semivariogram and ACF beside bicubic."""
    plots, var = dg_plots(), a.var
    rdays = rollout["time"].values
    rbic = a.bicubic.sel(time=rdays)
    rbic = rbic[var] if isinstance(rbic, xr.Dataset) else rbic
    rday = pd.Timestamp(rdays[min(10, len(rdays) - 1)])
    labels = ["rollout", f"bicubic {a.coarse_name}"]
    ax = plots.plot_map(a.coarse_da.sel(time=[rday]), rollout[var].sel(time=[rday]),
                        labels=[f"{a.coarse_name} driver, native grid", "rollout prediction"],
                        time=rday)
    ax[0].figure.suptitle(f"Area {a.area}: out-of-data day {rday.date()} (no fine truth)")
    figs = [(f"Figure 7 — out-of-data day {rday.date()}",
             _savefig(ax[0].figure, a.out, f"{a.area}_fig7_ood_map.png"))]
    ax = plots.plot_semivariogram(rollout[var], rbic, labels=labels, n_pairs=a.n_pairs)
    ax.set_title(f"Area {a.area}, out of the data {_period(rdays)}: semivariogram")
    figs.append(("Figure 8 — out-of-data semivariograms",
                 _savefig(ax.figure, a.out, f"{a.area}_fig8_ood_semivariogram.png")))
    nl = max(2, min(15, len(rdays) // 3))
    ax = plots.plot_acf(rollout[var], rbic, labels=labels, nlags=nl)
    ax[0].figure.suptitle(f"Area {a.area}, out of the data {_period(rdays)}: regional-mean "
                          f"series (lags up to {nl} only)")
    figs.append(("Figure 9 — out-of-data ACF and PACF",
                 _savefig(ax[0].figure, a.out, f"{a.area}_fig9_ood_acf.png")))
    return figs


def _rollout_checks(a: _Area, est, rollout, days: int | None = None):
    """Pseudo out-of-data skill by lead day (every fitted season) and the envelope checks.

    ``days`` defaults to the rollout's length, at most 14: each season costs 2 x ``days``
    predicted days (a few minutes per season for a ``fast()`` DDPM on a CPU). The summary
    covers the last third of the leads. Returns ``(markdown lines, figures)``.
    """
    from ..diagnostics.ood import ood_checks, plot_ood_checks
    from ..predict.evaluation import (
        evaluate_rollout,
        lead_summary,
        plot_rollout_skill,
        pseudo_start,
    )

    days = int(days or min(14, rollout.sizes["time"]))
    fine_days = pd.DatetimeIndex(a.fine_days)
    lo = max(1, days - days // 3 + 1)
    lines, figs, rows = [], [], []
    for season in est.seasons_:
        start = pseudo_start(est, fine_days, season, days)
        if start is None:
            continue
        res = evaluate_rollout(est, a.coarse, a.fine, start=start, days=days,
                               seed=est.config_.seed)
        res.to_dataframe().to_csv(a.out / "tables" / f"{a.area}_rollout_skill_{season}.csv")
        rows.append(lead_summary(res, slice(lo, days)).assign(
            season=season, start=str(start.date()),
            n_training_days=res.attrs["n_training_days"]))
        axes = plot_rollout_skill(res)
        axes[0].figure.suptitle(f"{a.area} {season}: {days}-day rollout from {start.date()}")
        figs.append((f"Pseudo out-of-data skill by lead day, {season} ({days} days from "
                     f"{start.date()}, as if the fine record ended there)",
                     _savefig(axes[0].figure, a.out, f"{a.area}_rollout_skill_{season}.png")))
    if rows:
        t = pd.concat(rows).reset_index()[["season", "start", "source", "r2", "abs_mean_bias",
                                           "rmse", "drift", "n_training_days"]]
        lines += [f"### Rollout skill, lead days {lo}-{days} (log10; pseudo out-of-data: rolled "
                  "out from inside the fine record, scored against it)", "",
                  markdown_table(t), ""]
    rend = pd.Timestamp(rollout["time"].values[-1])
    ref = a.bicubic.sel(time=slice(fine_days[0], rend))
    checks = ood_checks(rollout, a.fine, ref, var=a.var, n_pairs=min(a.n_pairs, 5000),
                        min_days=min(20, rollout.sizes["time"]))
    env = checks[["sill", "acf1", "lag1_r2", "sill_inside", "acf1_inside", "lag1_r2_inside"]]
    env = env.to_dataframe()[lambda d: d["product"] == "rollout"]
    _table(env, a.out, f"{a.area}_rollout_envelopes.csv")
    lines += ["### Rolled-out blocks against the fine/coarse envelopes (1 = inside)", "",
              markdown_table(env.reset_index(drop=True)[["season", "n_days", "sill",
                                                          "sill_inside", "acf1", "acf1_inside",
                                                          "lag1_r2", "lag1_r2_inside"]]), ""]
    axes = plot_ood_checks(checks)
    figs.append(("Out-of-data checks: sill, lag-1 ACF, ACF and lag R² of the rolled-out blocks "
                 "against the fine and coarse envelopes",
                 _savefig(axes[0].figure, a.out, f"{a.area}_rollout_envelopes.png")))
    return lines, figs


def _training_figure(a: _Area, model: str, est) -> tuple[str, str]:
    """Learning curves of both stages, per season, against training rounds."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    log = est.training_log_.reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
    for (season, stage), h in log.groupby(["season", "stage"]):
        ax = axes[0 if stage == "A" else 1]
        ax.plot(h["epoch"], h["val_loss"], marker="o", label=f"{season} val")
        ax.plot(h["epoch"], h["train_loss"], ls="--", label=f"{season} train")
    axes[0].set_title(f"{model}: stage A (small U-Net, coarse)")
    axes[1].set_title(f"{model}: stage B (large model, fine)")
    for ax in axes:
        # a round is `min_steps / epochs` optimizer steps or one pass, whichever is more
        ax.set_xlabel("training round")
        ax.set_ylabel("loss per sample")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(f"Area {a.area}: training curves ({model})")
    return f"Training curves — {model}", _savefig(fig, a.out, f"{a.area}_train_{model}.png")


def _period(days) -> str:
    """"14 days, 2007-06-17 .. 2007-06-30": a season's days of several years are not a span."""
    days = pd.DatetimeIndex(days)
    if not len(days):
        return ""
    years = sorted(set(days.year))
    when = (f"{days.min().date()} .. {days.max().date()}" if len(years) == 1
            else f"of {years[0]}–{years[-1]}")
    return f"({len(days)} days {when})"


def dg_plots():
    from ..diagnostics import plots

    return plots


def write(out: Path, spec, sections: list[str]) -> Path:
    from .. import __version__

    cfg = spec.config
    head = [
        f"# {spec.title}", "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} by xdownscale {__version__}.", "",
        f"Models: {', '.join(spec.models)}; seasons: {spec.seasons or 'all'}; "
        f"configuration: T_lag={cfg.n_lags}, patch {cfg.patch}, train stride {cfg.train_stride}, "
        f"inference stride {cfg.infer_stride}, halo {cfg.halo}, sampler {cfg.sampler} "
        f"({cfg.sample_steps} steps), members {spec.predict.get('members', 1)}, inference "
        f"{cfg.inference}, coarse consistency "
        f"{ {None: 'for ddpm/vae', True: 'on', False: 'off'}[cfg.coarse_consistency]}.", "",
        "Skill is scored on each season's test days (the last 10 % of its days in time "
        "order). `r2` is 1 - SSE/SST, `r2_corr` the squared correlation; `bicubic` is the "
        "coarse field interpolated to the fine grid, the floor every model must beat.", "",
    ]
    path = Path(out) / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(head + sections) + "\n")
    tmp.replace(path)
    return path
