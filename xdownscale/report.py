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

from . import diagnostics as dg
from .diagnostics._common import product_label
from .seasons import SEASONS, season_of

__all__ = ["area_section", "write", "markdown_table"]

_SCORES = ("r2", "r2_corr", "rmse", "mae", "nse", "kge", "kge2012", "bias", "crps", "ssr")


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    df = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = []
    for _, row in df.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v)
                 for v in row.to_numpy()]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows])


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
    import matplotlib.pyplot as plt

    out = Path(out)
    products = {"fine": fine, "coarse": coarse, **(products or {})}
    fine_name = product_label(products["fine"], "fine")
    coarse_name = product_label(products["coarse"], "coarse")
    lines = [f"## Area {area}: {_extent(fine)}", "",
             _describe_product(products["fine"], "fine"),
             _describe_product(products["coarse"], "coarse"), ""]
    coarse_da = coarse[var] if isinstance(coarse, xr.Dataset) else coarse
    fine_days = fine["time"].values
    coarse_ov = coarse_da.sel(time=fine_days)
    bic_ov = bicubic.sel(time=fine_days)
    if isinstance(bic_ov, xr.Dataset):
        bic_ov = bic_ov[var]

    # Table 1
    t1 = pd.concat({fine_name: dg.summary(fine).to_dataframe(),
                    coarse_name: dg.summary(coarse_ov).to_dataframe()}, names=["product"])
    t1 = t1.drop(columns=[c for c in t1.columns if c in ("space",)], errors="ignore")
    _table(t1, out, f"{area}_table1_summary.csv")
    lines += ["### Table 1 — statistics over the overlap (data units)", "",
              markdown_table(t1.round(4)), ""]

    # Table 2
    w = dg.wasserstein(bic_ov, fine)
    scal = {k: float(w[k]) for k in w.data_vars if w[k].ndim == 0}
    t2 = pd.DataFrame([scal], index=pd.Index([area], name="area"))
    _table(t2, out, f"{area}_table2_wasserstein.csv")
    lines += ["### Table 2 — Wasserstein distance, bicubic coarse vs fine (log-min-max "
              "normalised)", "", markdown_table(t2), ""]

    # Validation days against the interpolation baselines (scored by fit, est.validation_)
    val = {m: e.validation_ for m, e in estimators.items()
           if getattr(e, "validation_", None) is not None}
    if val:
        tv = pd.concat(val, names=["model"])
        _table(tv, out, f"{area}_validation.csv")
        cols = ["r2_log10", "rmse_log10", "r2_data", "rmse_data", "bias_log10", "n_days"]
        lines += ["### Validation days: each model beside bicubic and bias-corrected bicubic",
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
                          "members).", ""]

    # Tables 3 / A1: skill on the test days, bicubic as the floor
    rows = []
    test_days = None
    for model, pred in predictions.items():
        rows += _skill_rows(pred, fine, model, var)
        test_days = pred["time"].values if test_days is None else test_days
    if test_days is not None:
        rows += _skill_rows(bicubic.sel(time=test_days), fine, "bicubic", var)
    if rows:
        t3 = pd.DataFrame(rows)
        _table(t3.set_index(["model", "season", "space"]), out, f"{area}_table3_skill.csv")
        for space in ("log10", "data"):
            sub = t3[t3["space"] == space]
            lines += [f"### Table 3/A1 — skill on the test days ({space}; mean (std) over days)",
                      "", markdown_table(_fmt_mean_std(sub, ("r2", "r2_corr", "rmse", "mae",
                                                             "nse", "kge", "crps", "ssr"))), ""]
        ens = [m for m, p in predictions.items() if f"{var}_members" in p]
        lines += [("`crps` (fair CRPS, lower is better) and `ssr` (spread-skill ratio, 1 for a "
                   "reliable ensemble) score the ensemble members of " + ", ".join(ens) + "; "
                   if ens else "`crps` and `ssr` need an ensemble (members > 1); ")
                  + "deterministic models and bicubic have none, so their cells are blank.", ""]
        secs = {m: p.attrs.get("seconds_per_day") for m, p in predictions.items()}
        lines += ["Seconds per predicted day: " + ", ".join(
            f"{m} {s:.2f}" for m, s in secs.items() if s is not None), ""]

    figs = []
    # Figures 2-5 follow the paper: one season of one area (JJA when fitted, as its Season 3).
    fitted = [s for e in estimators.values() for s in e.seasons_] or ["JJA"]
    season = "JJA" if "JJA" in fitted else fitted[0]
    sdays = fine_days[season_of(pd.DatetimeIndex(fine_days)) == season]
    fine_s, bic_s, coarse_s = (x.sel(time=sdays) for x in (fine, bic_ov, coarse_ov))
    day = pd.Timestamp(sdays[len(sdays) // 2])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    dg_plots().plot_map(fine.sel(time=[day]), coarse_da.sel(time=[day]), axes=axes,
                        labels=[fine_name, f"{coarse_name}, native grid"], time=day)
    fig.suptitle(f"Area {area}, {season}: one day at both resolutions")
    figs.append((f"Figure 2 — one {season} day ({day.date()}), fine and native coarse",
                 _savefig(fig, out, f"{area}_fig2_maps.png")))
    period = _period(sdays)
    ax = dg_plots().plot_lag_metrics(fine_s, bic_s, labels=[fine_name, f"bicubic {coarse_name}"])
    ax[0].figure.suptitle(f"Area {area}, {season} {period}: persistence of the fields")
    figs.append((f"Figure 3 — lag R² and RMSE (log10), {season}",
                 _savefig(ax[0].figure, out, f"{area}_fig3_lags.png")))
    ax = dg_plots().plot_semivariogram(fine_s, coarse_s,
                                       labels=[fine_name, f"{coarse_name}, native grid"],
                                       n_pairs=n_pairs)
    ax.set_title(f"Area {area}, {season} {period}: mean daily semivariogram")
    figs.append((f"Figure 4 — semivariograms at native resolution (log10), {season}",
                 _savefig(ax.figure, out, f"{area}_fig4_semivariogram.png")))
    ax = dg_plots().plot_acf(fine_s, coarse_s, labels=[fine_name, f"{coarse_name}, native grid"],
                             nlags=16)
    ax[0].figure.suptitle(f"Area {area}, {season} {period}: regional-mean series")
    figs.append((f"Figure 5 — ACF and PACF of the regional mean, {season}",
                 _savefig(ax[0].figure, out, f"{area}_fig5_acf.png")))
    for model, pred in predictions.items():
        tday = pd.Timestamp(pred["time"].values[len(pred["time"]) // 2])
        truth_day, mean_day = fine.sel(time=[tday]), pred[var].sel(time=[tday])
        if f"{var}_members" in pred:  # one member beside the mean: the mean is smoother
            m = pred.sizes["member"]
            member = pred[f"{var}_members"].sel(time=[tday]).isel(member=0, drop=True)
            ax = dg_plots().plot_map(truth_day, member, mean_day, difference=(0, 2),
                                     labels=["truth", f"{model}: member 1 of {m}",
                                             f"{model}: mean of {m} members"], time=tday)
        else:
            ax = dg_plots().plot_map(truth_day, mean_day, labels=["truth", f"{model}"],
                                     time=tday)
        ax[0].figure.suptitle(f"Area {area}: a test day, truth and prediction")
        figs.append((f"Figure 6 — {model}: test-day prediction and difference "
                     f"({tday.date()})", _savefig(ax[0].figure, out, f"{area}_fig6_{model}.png")))
    if rollout is not None:
        rdays = rollout["time"].values
        rbic = bicubic.sel(time=rdays)
        rbic = rbic[var] if isinstance(rbic, xr.Dataset) else rbic
        rday = pd.Timestamp(rdays[min(10, len(rdays) - 1)])
        ax = dg_plots().plot_map(coarse_da.sel(time=[rday]), rollout[var].sel(time=[rday]),
                                 labels=[f"{coarse_name} driver, native grid",
                                         "rollout prediction"], time=rday)
        ax[0].figure.suptitle(f"Area {area}: out-of-data day {rday.date()} (no fine truth)")
        figs.append((f"Figure 7 — out-of-data day {rday.date()}",
                     _savefig(ax[0].figure, out, f"{area}_fig7_ood_map.png")))
        ax = dg_plots().plot_semivariogram(rollout[var], rbic,
                                           labels=["rollout", f"bicubic {coarse_name}"],
                                           n_pairs=n_pairs)
        ax.set_title(f"Area {area}, out of the data {_period(rdays)}: semivariogram")
        figs.append(("Figure 8 — out-of-data semivariograms",
                     _savefig(ax.figure, out, f"{area}_fig8_ood_semivariogram.png")))
        nl = max(2, min(15, len(rdays) // 3))
        ax = dg_plots().plot_acf(rollout[var], rbic, labels=["rollout", f"bicubic {coarse_name}"],
                                 nlags=nl)
        ax[0].figure.suptitle(f"Area {area}, out of the data {_period(rdays)}: regional-mean "
                              f"series (lags up to {nl} only)")
        figs.append(("Figure 9 — out-of-data ACF and PACF",
                     _savefig(ax[0].figure, out, f"{area}_fig9_ood_acf.png")))
        if rollout.attrs.get("xdownscale_model") in estimators:  # pseudo-OOD skill, envelopes
            from .evaluation import report_rollout

            more, more_figs = report_rollout(
                out, area, est=estimators[rollout.attrs["xdownscale_model"]], coarse=coarse,
                bicubic=bicubic, fine=fine, rollout=rollout, var=var,
                n_pairs=n_pairs)
            lines += more
            figs += more_figs
    for model, est in estimators.items():
        hist = est.history_.reset_index()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), constrained_layout=True)
        for (season, stage), h in hist.groupby(["season", "stage"]):
            a = axes[0 if stage == "A" else 1]
            a.plot(h["epoch"], h["val_loss"], marker="o", label=f"{season} val")
            a.plot(h["epoch"], h["train_loss"], ls="--", label=f"{season} train")
        axes[0].set_title(f"{model}: stage A (small U-Net, coarse)")
        axes[1].set_title(f"{model}: stage B (large model, fine)")
        from matplotlib.ticker import MaxNLocator

        for a in axes:
            a.set_xlabel("epoch")
            a.set_ylabel("loss per sample")
            a.xaxis.set_major_locator(MaxNLocator(integer=True))
            a.legend(fontsize=7)
        fig.suptitle(f"Area {area}: training curves ({model})")
        figs.append((f"Training curves — {model}", _savefig(fig, out, f"{area}_train_{model}.png")))
    lines += ["### Figures", ""]
    for title, rel in figs:
        lines += [f"**{title}**", "", f"![{title}]({rel})", ""]
    return "\n".join(lines)


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
    from .diagnostics import plots

    return plots


def write(out: Path, spec, sections: list[str]) -> Path:
    from . import __version__

    cfg = spec.config
    head = [
        f"# {spec.title}", "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M')} by xdownscale {__version__}.", "",
        f"Models: {', '.join(spec.models)}; seasons: {spec.seasons or 'all'}; "
        f"configuration: T_lag={cfg.n_lags}, patch {cfg.patch}, train stride {cfg.train_stride}, "
        f"inference stride {cfg.infer_stride}, halo {cfg.halo}, sampler {cfg.sampler} "
        f"({cfg.sample_steps} steps), members {spec.predict.get('members', 1)}.", "",
        "Skill is scored on each season's test days (the last 10 % of its days in time "
        "order). `r2` is 1 - SSE/SST, `r2_corr` the squared correlation; `bicubic` is the "
        "coarse field interpolated to the fine grid, the floor every model must beat.", "",
    ]
    path = Path(out) / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(head + sections) + "\n")
    tmp.replace(path)
    return path
