"""The two training stages of :meth:`xdownscale.Downscaler.fit`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import pipeline
from ._modules import SeasonModule, build_small
from .covariates import CovariateSpec
from .errors import ConfigError
from .patches import DayPatchDataset, patch_starts
from .seasons import SEASONS, season_of
from .training import resolve_device, train
from .transforms import Scaler, log10_transform


def _seasons_to_fit(est, fine_times) -> list[str]:
    present = [s for s in SEASONS if (season_of(fine_times) == s).any()]
    wanted = list(est.seasons) if est.seasons is not None else present
    missing = [s for s in wanted if s not in present]
    if missing:
        raise ConfigError(f"the fine record has no days in season(s) {missing}")
    return wanted


def _in_memory(nbytes: float, cfg) -> bool:
    limit = float(cfg.extra.get("in_memory_mb", 2048)) * 2**20
    return nbytes <= limit


def _datasets(days_train, days_val, load_day, starts, cfg, *, batch_size, seed):
    common = dict(patch=cfg.patch, batch_size=batch_size, seed=seed,
                  patches_per_day=cfg.patches_per_day)
    tr = DayPatchDataset(list(days_train), load_day, starts, shuffle=True, **common)
    va = DayPatchDataset(list(days_val), load_day, starts, shuffle=False, **common)
    return tr, va


def _stage_a(small, plan, load_small, starts, cfg, device, season) -> pd.DataFrame:
    tr, va = _datasets(plan.small_train, plan.small_holdout, load_small, starts, cfg,
                       batch_size=cfg.small_batch_size, seed=cfg.seed)
    return train(small, lambda m, b: torch.nn.functional.l1_loss(m(b["x"]), b["y"]), tr, va,
                 epochs=cfg.small_epochs, lr=cfg.small_lr, weight_decay=cfg.weight_decay,
                 grad_clip=cfg.grad_clip, plateau_patience=cfg.small_plateau_patience,
                 plateau_factor=cfg.plateau_factor, early_stop_patience=cfg.small_early_stop,
                 device=device, seed=cfg.seed, verbose=cfg.verbose,
                 desc=f"{season} stage A (small)")


def _native_small_source(coarse_da, span, scaler, cfg):
    """Stage A on the native coarse grid (the authors' scripts): the same log10 transform and
    scaler, patches cut from the coarse grid itself. The convolutional encoder is then applied
    to fine patches in stage B, as in the paper, at a scale it was not trained on."""
    shape = (coarse_da.sizes["lat"], coarse_da.sizes["lon"])
    if min(shape) < cfg.patch:
        raise ConfigError(
            f"small_grid='native' cuts {cfg.patch}x{cfg.patch} patches from the coarse grid, "
            f"but it has only {shape[0]}x{shape[1]} cells over this area; use "
            "small_grid='fine' (the default) or a larger area")
    native = scaler.transform(log10_transform(coarse_da.sel(time=span), eps=cfg.eps))
    src = pipeline.ArraySource(native, in_memory=_in_memory(native.nbytes, cfg))
    # Few cells: a stride of a quarter patch gives stage A enough distinct patches per day.
    starts = patch_starts(shape, patch=cfg.patch, stride=min(cfg.train_stride, cfg.patch // 4))
    return pipeline.small_loader(src, cfg.n_lags), starts


def fit_estimator(est, cfg, coarse, fine, elevation) -> None:
    """Run stage A and stage B for each season and set the fitted attributes on ``est``."""
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    coarse_da, coarse_f, fine_da, elev = pipeline.prepare_inputs(
        coarse, fine, elevation, var=est.var, regrid_method=cfg.regrid_method)
    fine_times = pd.DatetimeIndex(fine_da["time"].values)
    coarse_times = pd.DatetimeIndex(coarse_da["time"].values)
    seasons = _seasons_to_fit(est, fine_times)
    lat = fine_da["lat"].values
    lon = fine_da["lon"].values
    elev_values = (np.zeros((lat.size, lon.size), np.float32) if elev is None
                   else elev.values.astype(np.float32))
    spec = CovariateSpec.from_data(fine_times.to_numpy(), elev_values, lat, lon)
    static = pipeline.StaticMaps(spec, lat, lon, elev_values)
    starts = patch_starts((lat.size, lon.size), patch=cfg.patch, stride=cfg.train_stride)

    log_fine = log10_transform(fine_da, eps=cfg.eps)
    log_coarse = log10_transform(coarse_f, eps=cfg.eps)
    modules, scalers, plans, histories = {}, {}, {}, []
    for season in seasons:
        plan = pipeline.plan_season(season, coarse_times, fine_times, cfg)
        train_days = np.concatenate([plan.train, plan.holdout])
        scaler = Scaler(cfg.scaler).fit(log_fine.sel(time=train_days),
                                        log_coarse.sel(time=train_days))
        fine_src = pipeline.ArraySource(
            scaler.transform(log_fine), in_memory=_in_memory(fine_da.nbytes, cfg))
        needed = pd.DatetimeIndex(np.concatenate([
            plan.small_train, plan.small_holdout, plan.train, plan.holdout, plan.val, plan.test]))
        span = pd.date_range(needed.min() - pd.Timedelta(days=cfg.n_lags), needed.max())
        span = span.intersection(coarse_times)
        coarse_sel = log_coarse.sel(time=span)
        coarse_src = pipeline.ArraySource(
            scaler.transform(coarse_sel), in_memory=_in_memory(coarse_sel.nbytes, cfg))
        load_small, load_large = pipeline.day_loaders(coarse_src, fine_src, static, cfg.n_lags)
        small_starts = starts
        if cfg.small_grid == "native":
            load_small, small_starts = _native_small_source(coarse_da, span, scaler, cfg)

        # Stage A: the small model on the long coarse record of this season (skipped by the
        # ablations that do not use a pretrained encoder).
        small = build_small(est.model, cfg)
        hist_a = pd.DataFrame()
        if cfg.encoder == "pretrained":
            hist_a = _stage_a(small, plan, load_small, small_starts, cfg, device, season)
        # Stage B: freeze and transfer the encoder, train the large model on the overlap.
        module = SeasonModule(est.model, cfg, pipeline.N_COND, small=small)
        module.freeze_small()
        tr, va = _datasets(plan.train, plan.holdout if plan.holdout.size else plan.val,
                           load_large, starts, cfg, batch_size=cfg.batch_size, seed=cfg.seed + 1)
        hist_b = train(module, lambda m, b: m.large_loss(b), tr, va, epochs=cfg.epochs, lr=cfg.lr,
                       weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
                       plateau_patience=cfg.plateau_patience, plateau_factor=cfg.plateau_factor,
                       early_stop_patience=cfg.early_stop, device=device, seed=cfg.seed,
                       verbose=cfg.verbose, desc=f"{season} stage B ({est.model})",
                       amp=cfg.mixed_precision)
        module.eval()
        modules[season], scalers[season], plans[season] = module, scaler, plan
        for stage, h in (("A", hist_a), ("B", hist_b)):
            if h.empty:
                continue
            h = h.reset_index()
            h.insert(0, "stage", stage)
            h.insert(0, "season", season)
            histories.append(h)

    est.config_ = cfg
    est.modules_ = modules
    est.scalers_ = scalers
    est.plans_ = plans
    est.seasons_ = seasons
    est.covariate_spec_ = spec
    est.lat_ = lat
    est.lon_ = lon
    est.elevation_ = elev_values
    est.elevation_used_ = elev is not None
    est.coarse_grid_ = {"lat": coarse_da["lat"].values, "lon": coarse_da["lon"].values}
    est.var_ = est.var
    est.attrs_ = dict(fine_da.attrs)
    est.device_ = device
    est.history_ = pd.concat(histories, ignore_index=True).set_index(["season", "stage", "epoch"])
