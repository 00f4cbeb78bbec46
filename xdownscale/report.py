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
from .seasons import season_of

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


def _season_sel(da: xr.DataArray, season: str) -> xr.DataArray:
    return da.isel(time=np.flatnonzero(season_of(pd.DatetimeIndex(da["time"].values)) == season))


def _skill_rows(pred, truth, label: str, var: str) -> list[dict]:
    rows = []
    days = pd.DatetimeIndex(pred["time"].values)
    for season in [s for s in ("DJF", "MAM", "JJA", "SON") if (season_of(days) == s).any()]:
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
                 predictions, rollout, var: str = "DUEXTTAU", n_pairs: int = 30000) -> str:
    """Compute the diagnostics of one area, save figures and tables, return Markdown."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out)
    lines = [f"## Area {area}", ""]
    coarse_da = coarse[var] if isinstance(coarse, xr.Dataset) else coarse
    fine_days = fine["time"].values
    coarse_ov = coarse_da.sel(time=fine_days)
    bic_ov = bicubic.sel(time=fine_days)
    if isinstance(bic_ov, xr.Dataset):
        bic_ov = bic_ov[var]

    # Table 1
    t1 = pd.concat({"G5NR-like fine": dg.summary(fine).to_dataframe(),
                    "MERRA-2-like coarse": dg.summary(coarse_ov).to_dataframe()}, names=["product"])
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
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    dg_plots().plot_map(fine.sel(time=[day]), coarse_da.sel(time=[day]), axes=axes,
                        labels=["fine (G5NR-like)", "coarse (MERRA-2-like)"], time=day)
    figs.append((f"Figure 2 — one {season} day ({day.date()}), fine and native coarse",
                 _savefig(fig, out, f"{area}_fig2_maps.png")))
    ax = dg_plots().plot_lag_metrics(fine_s, bic_s, labels=["fine", "bicubic coarse"])
    figs.append((f"Figure 3 — lag R² and RMSE (log10), {season}",
                 _savefig(ax[0].figure, out, f"{area}_fig3_lags.png")))
    ax = dg_plots().plot_semivariogram(fine_s, coarse_s, labels=["fine", "native coarse"],
                                       n_pairs=n_pairs)
    figs.append((f"Figure 4 — semivariograms at native resolution (log10), {season}",
                 _savefig(ax.figure, out, f"{area}_fig4_semivariogram.png")))
    ax = dg_plots().plot_acf(fine_s, coarse_s, labels=["fine", "native coarse"], nlags=16)
    figs.append((f"Figure 5 — ACF and PACF of the regional mean, {season}",
                 _savefig(ax[0].figure, out, f"{area}_fig5_acf.png")))
    for model, pred in predictions.items():
        tday = pd.Timestamp(pred["time"].values[len(pred["time"]) // 2])
        ax = dg_plots().plot_map(fine.sel(time=[tday]), pred[var].sel(time=[tday]),
                                 labels=["truth", f"{model} prediction"], time=tday)
        figs.append((f"Figure 6 — {model}: test-day prediction and difference "
                     f"({tday.date()})", _savefig(ax[0].figure, out, f"{area}_fig6_{model}.png")))
    if rollout is not None:
        rdays = rollout["time"].values
        rbic = bicubic.sel(time=rdays)
        rbic = rbic[var] if isinstance(rbic, xr.Dataset) else rbic
        rday = pd.Timestamp(rdays[min(10, len(rdays) - 1)])
        ax = dg_plots().plot_map(coarse_da.sel(time=[rday]), rollout[var].sel(time=[rday]),
                                 labels=["coarse driver", "rollout prediction"], time=rday)
        figs.append((f"Figure 7 — out-of-data day {rday.date()}",
                     _savefig(ax[0].figure, out, f"{area}_fig7_ood_map.png")))
        ax = dg_plots().plot_semivariogram(rollout[var], rbic, labels=["rollout", "bicubic coarse"],
                                           n_pairs=n_pairs)
        figs.append(("Figure 8 — out-of-data semivariograms",
                     _savefig(ax.figure, out, f"{area}_fig8_ood_semivariogram.png")))
        nl = max(2, min(15, len(rdays) // 3))
        ax = dg_plots().plot_acf(rollout[var], rbic, labels=["rollout", "bicubic coarse"], nlags=nl)
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
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for (season, stage), h in hist.groupby(["season", "stage"]):
            a = axes[0 if stage == "A" else 1]
            a.plot(h["epoch"], h["val_loss"], marker="o", label=f"{season} val")
            a.plot(h["epoch"], h["train_loss"], ls="--", label=f"{season} train")
        axes[0].set_title(f"{model}: stage A (small U-Net, coarse)")
        axes[1].set_title(f"{model}: stage B (large model, fine)")
        for a in axes:
            a.set_xlabel("epoch")
            a.set_ylabel("loss")
            a.legend(fontsize=7)
        figs.append((f"Training curves — {model}", _savefig(fig, out, f"{area}_train_{model}.png")))
    lines += ["### Figures", ""]
    for title, rel in figs:
        lines += [f"**{title}**", "", f"![{title}]({rel})", ""]
    return "\n".join(lines)


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
