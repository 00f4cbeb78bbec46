"""The two training stages of :meth:`xdownscale.Downscaler.fit`."""

from __future__ import annotations

import copy
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .._lock import WriterLock
from ..data.cells import CellGeometry, cell_offsets
from ..data.covariates import CovariateSpec
from ..data.seasons import SEASONS, season_of
from ..data.transforms import Scaler, log10_transform
from ..diagnostics import baselines
from ..diagnostics._common import field
from ..errors import CheckpointError, ConfigError, XDownscaleWarning
from ..tiling.patches import DayPatchDataset, patch_starts
from . import inputs, resume
from .config import MAX_TEXTURE
from .fitted import FittedState
from .modules import SeasonModule, build_small
from .training import resolve_device, train


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


def _budget(min_steps: int, max_steps, epochs: int) -> dict:
    """The step budget of one stage: rounds of at least ``ceil(min_steps / epochs)`` steps."""
    return dict(min_steps=min_steps, max_steps=max_steps,
                round_steps=-(-min_steps // epochs) if min_steps else 0)


# Settings that change neither stage's training, only prediction, scoring or execution: a
# resumed fit (state_dir) may change them; any other field's change refuses the saved state.
_NOT_TRAINING = frozenset((
    "verbose", "device", "predict_batch_size", "validation", "calibrate_spread", "inference",
    "auto_patch_limit", "tile", "tile_halo", "tile_overlap", "member_shift", "sampler",
    "sample_steps", "eta", "point_estimate", "fusion", "coarse_consistency", "infer_stride",
    "halo", "window", "extra"))


def _state_path(state_dir, season: str, stage: str):
    return None if state_dir is None else Path(state_dir) / season / f"stage_{stage}.pt"


def _stage_a_key(est, cfg, season, plan, scaler) -> dict:
    """What decides the stage-A model of ``season`` (for a resumed fit's state)."""
    return dict(stage="A", season=season, vae=est.model == "vae",
                config={f: getattr(cfg, f) for f in _STAGE_A_FIELDS},
                days=resume.array_digest(plan.small_train, plan.small_holdout),
                scaler=scaler.to_dict())


def _stage_b_key(est, cfg, season, plan, scaler, module) -> dict:
    """What decides the stage-B model of ``season``: every training setting, the days, the
    scaler and the frozen stage-A weights it builds on."""
    return dict(stage="B", season=season, model=est.model,
                config={k: v for k, v in cfg.to_dict().items() if k not in _NOT_TRAINING},
                days=resume.array_digest(plan.train, plan.holdout, plan.val),
                scaler=scaler.to_dict(), residual_scale=float(module.residual_scale),
                small=resume.module_digest(module.small) if module.small is not None else None)


def _stage_a(small, plan, load_small, starts, cfg, device, season, state=None
             ) -> pd.DataFrame:
    tr, va = _datasets(plan.small_train, plan.small_holdout, load_small, starts, cfg,
                       batch_size=cfg.small_batch_size, seed=cfg.seed)
    return train(small, lambda m, b: torch.nn.functional.l1_loss(m(b["x"]), b["y"]), tr, va,
                 epochs=cfg.small_epochs, lr=cfg.small_lr, weight_decay=cfg.weight_decay,
                 grad_clip=cfg.grad_clip, plateau_patience=cfg.small_plateau_patience,
                 plateau_factor=cfg.plateau_factor, early_stop_patience=cfg.small_early_stop,
                 device=device, seed=cfg.seed, verbose=cfg.verbose,
                 desc=f"{season} stage A (small)",
                 **_budget(cfg.small_min_steps, cfg.small_max_steps, cfg.small_epochs),
                 **(state or {}))


def mix_history(batch: dict, p: float) -> dict:
    """``batch`` with each sample's fine history swapped, with probability ``p``, for the same
    lag days of the coarse record on the fine grid (``batch["hist_coarse"]``).

    A rollout feeds the model its own predictions as history, which are smoother than the
    truth it was trained on; a model that has also learned from the coarse history, the
    smoothest one there is, is not thrown by them. The draw uses torch's generator, which
    ``train`` seeds, so a fit stays reproducible.
    """
    alt = batch.pop("hist_coarse", None)
    if alt is None or p <= 0:
        return batch
    swap = torch.rand(alt.shape[0], device=alt.device) < p
    return {**batch, "hist": torch.where(swap[:, None, None, None], alt, batch["hist"])}


def pushforward_history(module, batch: dict, p: float) -> dict:
    """``batch`` with each sample's most recent history day replaced, with probability ``p``,
    by ``module``'s own prediction of that day (its point: the DDPM's one-step conditional
    mean) from the inputs of the day before (``batch["prev_hist"]``, ``["prev_cond"]``).

    From its second day on, a rollout feeds the model its own prediction of yesterday, which
    the model trained on true histories reads as truth; one step of "pushforward" training
    (Brandstetter et al., 2022, for neural PDE solvers) shows it that history while it learns.
    No gradient flows through the prediction. The draw uses torch's generator, which ``train``
    seeds, so a fit stays reproducible.
    """
    prev_hist, prev_cond = batch.pop("prev_hist", None), batch.pop("prev_cond", None)
    if prev_hist is None or p <= 0:
        return batch
    swap = torch.rand(prev_hist.shape[0], device=prev_hist.device) < p
    rows = swap.nonzero().squeeze(1)
    if rows.numel() == 0:
        return batch
    kwargs = dict(sampler="ddim", steps=1) if module.kind == "ddpm" else {}
    with torch.no_grad():
        own = module.predict_batch(prev_hist[rows], prev_cond[rows], **kwargs)
    hist = batch["hist"].clone()
    hist[rows, -1:] = own.to(hist.dtype)
    return {**batch, "hist": hist}


def _stage_b(module, plan, load_large, starts, cfg, device, season, kind, state=None
             ) -> pd.DataFrame:
    tr, va = _datasets(plan.train, plan.holdout if plan.holdout.size else plan.val,
                       load_large, starts, cfg, batch_size=cfg.batch_size, seed=cfg.seed + 1)
    p, q = cfg.history_mix, cfg.pushforward

    def loss(m, b):
        # validation days are scored on their true history, as the fit is judged
        b = pushforward_history(m, b, q if m.training else 0.0)
        return m.loss(mix_history(b, p if m.training else 0.0))

    return train(module, loss, tr, va, epochs=cfg.epochs, lr=cfg.lr,
                 weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
                 plateau_patience=cfg.plateau_patience, plateau_factor=cfg.plateau_factor,
                 early_stop_patience=cfg.early_stop, device=device, seed=cfg.seed,
                 verbose=cfg.verbose, desc=f"{season} stage B ({kind})",
                 amp=cfg.mixed_precision, **_budget(cfg.min_steps, cfg.max_steps, cfg.epochs),
                 **(state or {}))


def _residual_scale(fine_src, coarse_src, days, max_days: int = 64) -> float:
    """Spread of (fine - upsampled coarse) in scaled space over (up to ``max_days``) training
    days: the unit of the residual target."""
    days = pd.DatetimeIndex(days)
    if len(days) > max_days:
        days = days[np.linspace(0, len(days) - 1, max_days).round().astype(int)]
    diff = fine_src.take(days) - coarse_src.take(days)
    scale = float(np.nanstd(diff))
    return scale if np.isfinite(scale) and scale > 1e-6 else 1.0


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
    src = inputs.ArraySource(native, in_memory=_in_memory(native.nbytes, cfg))
    # Few cells: a stride of a quarter patch gives stage A enough distinct patches per day.
    starts = patch_starts(shape, patch=cfg.patch, stride=min(cfg.train_stride, cfg.patch // 4))
    return inputs.small_loader(src, cfg.n_lags), starts


# Settings that decide what stage A learns (with the model kind, the plan and the scaler).
_STAGE_A_FIELDS = ("n_lags", "buffer_days", "split", "holdout", "eps", "scaler", "regrid_method",
                   "regrid_clamp",
                   "small_grid", "patch", "train_stride", "patches_per_day", "small_widths",
                   "small_lr", "small_batch_size", "small_epochs", "small_plateau_patience",
                   "small_early_stop", "small_max_days", "small_min_steps", "small_max_steps",
                   "plateau_factor", "grad_clip", "weight_decay", "seed", "encoder")


def _reused_stage_a(pretrained, est, cfg, season, plan, scaler):
    """The stage-A model and learning curve of ``pretrained`` for ``season``, after checking that
    this fit would have trained the same one; ConfigError naming the difference otherwise."""
    if season not in pretrained.modules_:
        raise ConfigError(f"pretrained has no {season} model (it has {pretrained.seasons_})")
    other = pretrained.config_
    why = [f"{f}: {getattr(other, f)!r} there, {getattr(cfg, f)!r} here"
           for f in _STAGE_A_FIELDS if getattr(other, f) != getattr(cfg, f)]
    if (pretrained.model == "vae") != (est.model == "vae"):
        why.append(f"small model: {pretrained.model!r} and {est.model!r} pretrain different "
                   "small models")
    theirs = pretrained.plans_[season]
    if not (np.array_equal(theirs.small_train, plan.small_train)
            and np.array_equal(theirs.small_holdout, plan.small_holdout)):
        why.append("the coarse pretraining days differ (another record?)")
    if pretrained.scalers_[season].to_dict() != scaler.to_dict():
        why.append("the scalers differ (other training days or data)")
    if why:
        raise ConfigError(f"cannot reuse the {season} stage-A model of pretrained: "
                          + "; ".join(why))
    small = copy.deepcopy(pretrained.modules_[season].small)
    return small, pretrained.training_log_.loc[(season, "A")].copy()


def _fit_season(est, cfg, season, data, device, pretrained=None, state_dir=None):
    """Plan, scale, stage A and stage B of one season: ``(module, scaler, plan, learning curves)``.
    With ``state_dir``, each stage writes its training state there after every round and
    resumes from it (:mod:`.resume`)."""
    plan = inputs.plan_season(season, data.coarse_times, data.fine_times, cfg)
    train_days = np.concatenate([plan.train, plan.holdout])
    scaler = Scaler(cfg.scaler).fit(data.log_fine.sel(time=train_days),
                                    data.log_coarse.sel(time=train_days))
    fine_src = inputs.ArraySource(
        scaler.transform(data.log_fine), in_memory=_in_memory(data.log_fine.nbytes, cfg))
    needed = pd.DatetimeIndex(np.concatenate([
        plan.small_train, plan.small_holdout, plan.train, plan.holdout, plan.val, plan.test]))
    span = pd.date_range(needed.min() - pd.Timedelta(days=cfg.n_lags), needed.max())
    span = span.intersection(data.coarse_times)
    coarse_sel = data.log_coarse.sel(time=span)
    coarse_src = inputs.ArraySource(
        scaler.transform(coarse_sel), in_memory=_in_memory(coarse_sel.nbytes, cfg))
    load_small, load_large = inputs.day_loaders(coarse_src, fine_src, data.static, cfg.n_lags,
                                                coarse_history=cfg.history_mix > 0,
                                                previous_day=cfg.pushforward > 0)
    small_starts = data.starts
    if cfg.small_grid == "native":
        load_small, small_starts = _native_small_source(data.coarse_da, span, scaler, cfg)

    # Stage A: the small model on the long coarse record of this season (skipped by the
    # ablations that do not use a pretrained encoder).
    small = build_small(est.model, cfg)
    hist_a = pd.DataFrame()
    if cfg.encoder == "pretrained" and pretrained is not None:
        small, hist_a = _reused_stage_a(pretrained, est, cfg, season, plan, scaler)
        small.to(device)
    elif cfg.encoder == "pretrained":
        state = None if state_dir is None else dict(
            state_path=_state_path(state_dir, season, "a"),
            state_key=_stage_a_key(est, cfg, season, plan, scaler))
        hist_a = _stage_a(small, plan, load_small, small_starts, cfg, device, season, state)
    # Stage B: freeze and transfer the encoder, train the large model on the overlap.
    module = SeasonModule(est.model, cfg, small=small)
    if cfg.target == "residual":
        module.residual_scale.fill_(_residual_scale(fine_src, coarse_src, train_days))
    state = None if state_dir is None else dict(
        state_path=_state_path(state_dir, season, "b"),
        state_key=_stage_b_key(est, cfg, season, plan, scaler, module))
    hist_b = _stage_b(module, plan, load_large, data.starts, cfg, device, season, est.model,
                      state)
    module.eval()
    parts = []
    for stage, h in (("A", hist_a), ("B", hist_b)):
        if not h.empty:
            h = h.reset_index()
            h.insert(0, "stage", stage)
            h.insert(0, "season", season)
            parts.append(h)
    return module, scaler, plan, pd.concat(parts, ignore_index=True)


class _Inputs:
    """The validated inputs of a fit on the fine grid, shared by every season."""

    def __init__(self, est, cfg, coarse, fine, elevation) -> None:
        self.coarse_da, coarse_f, self.fine_da, self.elev = inputs.prepare_inputs(
            coarse, fine, elevation, var=est.var, regrid_method=cfg.regrid_method,
            regrid_clamp=cfg.regrid_clamp)
        self.coarse_on_fine = coarse_f
        self.fine_times = pd.DatetimeIndex(self.fine_da["time"].values)
        self.coarse_times = pd.DatetimeIndex(self.coarse_da["time"].values)
        self.lat = self.fine_da["lat"].values
        self.lon = self.fine_da["lon"].values
        self.elev_values = (np.zeros((self.lat.size, self.lon.size), np.float32)
                            if self.elev is None else self.elev.values.astype(np.float32))
        self.spec = CovariateSpec.from_data(self.fine_times.to_numpy(), self.elev_values,
                                            self.lat, self.lon)
        self.static = inputs.StaticMaps(self.spec, self.lat, self.lon, self.elev_values)
        self.starts = patch_starts((self.lat.size, self.lon.size), patch=cfg.patch,
                                   stride=cfg.train_stride)
        self.log_fine = log10_transform(self.fine_da, eps=cfg.eps)
        self.log_coarse = log10_transform(coarse_f, eps=cfg.eps)


def fit_estimator(est, cfg, coarse, fine, elevation, pretrained=None, state_dir=None) -> None:
    """Run stage A and stage B for each season, set the fitted attributes on ``est``, then
    score the validation days against the interpolation baselines. ``state_dir``: where the
    stages write their training state after every round, and resume from it."""
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    data = _Inputs(est, cfg, coarse, fine, elevation)
    seasons = _seasons_to_fit(est, data.fine_times)
    modules, scalers, plans, logs = {}, {}, {}, []
    lock = nullcontext()
    if state_dir is not None:  # one fit at a time writes a state folder
        if Path(state_dir).exists() and not Path(state_dir).is_dir():
            raise CheckpointError(f"state_dir={str(state_dir)!r} is a file; give a folder "
                                  "(it is created)")
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        lock = WriterLock(Path(state_dir) / ".lock", f"the training state {state_dir}",
                          CheckpointError)
    with lock:
        for season in seasons:
            module, scaler, plan, log = _fit_season(est, cfg, season, data, device, pretrained,
                                                    state_dir)
            modules[season], scalers[season], plans[season] = module, scaler, plan
            logs.append(log)

    FittedState(
        config=cfg, var=est.var, seasons=seasons, modules=modules, scalers=scalers, plans=plans,
        covariate_spec=data.spec, lat=data.lat, lon=data.lon, elevation=data.elev_values,
        elevation_used=data.elev is not None,
        coarse_grid={"lat": data.coarse_da["lat"].values, "lon": data.coarse_da["lon"].values},
        attrs=dict(data.fine_da.attrs), device=device,
        training_log=pd.concat(logs, ignore_index=True).set_index(["season", "stage", "epoch"]),
        validation=None, spread={},
        cell_offsets=training_cell_offsets(data.log_fine, data.log_coarse, plans,
                                           data.coarse_da)).apply(est)
    # 2 members: the pooled ratio over a season's validation pixels is already precise, and
    # member 0 is the one-member prediction the validation scores need anyway
    calibration = (calibrate_spread(est, data.coarse_da, data.fine_da, members=2,
                                    max_texture=MAX_TEXTURE)
                   if cfg.calibrate_spread and est.model in GENERATIVE else {})
    est.validation_ = (validation_scores(est, data.coarse_da, data.coarse_on_fine, data.fine_da,
                                         calibration) if cfg.validation else None)


def training_cell_offsets(fine_log, coarse_on_fine_log, plans, coarse) -> dict:
    """Per season, the target of the coarse-consistency step: over the training days (those
    the bias-corrected baseline learns from too), the mean of the fine field's log10 mean over
    each coarse cell of ``coarse``'s native grid minus the driver's (regridded) mean there."""
    geom = CellGeometry.from_grids(fine_log["lat"], fine_log["lon"], coarse["lat"], coarse["lon"])
    out = {}
    for season, plan in plans.items():
        days = np.concatenate([plan.train, plan.holdout])
        out[season] = cell_offsets(fine_log.sel(time=days).values,
                                   coarse_on_fine_log.sel(time=days).values, geom)
    return out


GENERATIVE = ("ddpm", "vae")
# a factor beyond 2 from a few validation days is more likely an unrepresentative period than
# the model: on the heavy-tails test-bed 9 validation days in one extreme event asked for 6.6
# where the test days needed 1.6 (the demo pair needed 2.1; docs, prediction guide)
SPREAD_LIMITS = (0.5, 2.0)


def _pixel_semivariance_terms(dev_from: np.ndarray, around: np.ndarray):
    """Per day, the three terms of the pixel-neighbour semivariance of ``around + f * dev``
    as a quadratic in ``f``: ``a + 2 f b + f² c``, averaged over members, both grid
    directions and the finite pixel pairs.

    ``dev_from`` (member, time, y, x), ``around`` (time, y, x), both log10. Written out, not
    taken from the variogram module: the factor search evaluates it for many ``f`` and needs
    the three sums, not a binned curve.
    """
    a = np.zeros(around.shape[0])
    b, c, n = a.copy(), a.copy(), a.copy()
    for axis in (-1, -2):
        dm = np.diff(around, axis=axis)[None]
        dd = np.diff(dev_from, axis=axis)
        ok = np.isfinite(dm) & np.isfinite(dd)
        dm, dd = np.where(ok, dm, 0.0), np.where(ok, dd, 0.0)
        a += 0.5 * (dm**2).sum(axis=(0, 2, 3))
        b += 0.5 * (dm * dd).sum(axis=(0, 2, 3))
        c += 0.5 * (dd**2).sum(axis=(0, 2, 3))
        n += ok.sum(axis=(0, 2, 3))
    n = np.where(n > 0, n, np.nan)
    return a / n, b / n, c / n


def _pixel_semivariance(x: np.ndarray) -> np.ndarray:
    """Per day (axis 0), the pixel-neighbour semivariance of a (time, y, x) field."""
    a, _, _ = _pixel_semivariance_terms(np.zeros((1,) + x.shape), x)
    return a


def texture_bounded_factor(members_log: np.ndarray, truth_log: np.ndarray, factor: float,
                           max_texture: float | None = MAX_TEXTURE) -> tuple[float, float, float]:
    """The largest factor in ``[1, factor]`` whose scaled members are at most ``max_texture``
    times as rough as the truth at the pixel scale (median over days).

    Returns ``(factor, texture_before, texture_after)``: the members' pixel-neighbour
    semivariance over the truth's as sampled and after the chosen factor. A factor of 1 or
    less (the spread is shrunk, and the texture with it) and ``max_texture=None`` leave
    ``factor`` as it is; members already rougher than the bound as sampled keep 1.
    """
    mean = np.nanmean(members_log, axis=0)
    a, b, c = _pixel_semivariance_terms(members_log - mean[None], mean)
    truth = _pixel_semivariance(truth_log)

    def texture(f):
        return float(np.nanmedian((a + 2 * f * b + f * f * c) / truth))

    before = texture(1.0)
    if max_texture is not None and factor > 1.0 and texture(factor) > max_texture:
        # the median of quadratics that grow with f (b, c >= 0 in practice) on a fine grid
        grid = np.linspace(1.0, factor, 201)
        ok = [f for f in grid if texture(f) <= max_texture]
        factor = float(ok[-1]) if ok else 1.0
    return factor, before, texture(factor)


def calibrate_spread(est, coarse, fine, days=None, members: int = 4,
                     max_texture: float | None = MAX_TEXTURE) -> dict:
    """Fit, per season, the factor on the members' deviations from their mean that makes the
    spread/skill ratio 1 on held-out days, and set it in ``est.spread_``.

    A conditional generative model trained for minutes is rarely calibrated: its members
    spread too little (or too much) for the error of their mean. The usual remedy in
    ensemble post-processing is to scale the spread on days the model did not train on.
    The ratio is the variance form of :func:`~xdownscale.diagnostics.spread_skill` (log10)
    per day, and the factor ``1 / median over days``, bounded to ``SPREAD_LIMITS``: a pooled
    ratio is set by the worst days, and a few days of one extreme event in a short
    validation period would inflate every later ensemble for them. A factor above 1 also
    roughens each member; it stops where a member would be more than ``max_texture`` times
    as rough as the truth at the pixel scale on those days (:func:`texture_bounded_factor`;
    ``None``: no bound): an ensemble a little narrower than its error rather than members
    with texture the truth does not have. ``days``: the days to use (default:
    each season's validation days, else its holdout). Seasons without such days keep their
    factor. Returns ``{season: {"ssr": before, "factor": factor, "factor_ssr": 1 / ssr
    bounded, "texture": (members over truth as sampled, after), "days": the days,
    "first": member 0 (the one-member prediction of those days)}}``.
    """
    from ..diagnostics.ensemble import spread_skill

    if members < 2:
        raise ConfigError(f"calibrating the spread needs at least 2 members, got {members}")
    if est.model not in GENERATIVE:
        raise ConfigError(f"the {est.model} model is deterministic: it has no spread to "
                          "calibrate")
    report = {}
    chosen = None if days is None else pd.DatetimeIndex(days)
    for season in est.seasons_:
        plan = est.plans_[season]
        if chosen is None:
            sdays = pd.DatetimeIndex(plan.val if plan.val.size else plan.holdout)
        else:
            sdays = chosen[season_of(chosen) == season]
        if not sdays.size:
            continue
        before = est.spread_.pop(season, None)  # judge the members as sampled
        try:
            pred = est.predict(coarse.sel(time=sdays), history=fine, members=members,
                               seed=est.config_.seed, keep_members=True)
        except Exception:  # bad input loses nothing: the season keeps the factor it had
            if before is not None:
                est.spread_[season] = before
            raise
        ens = pred[f"{est.var}_members"]
        daily = spread_skill(ens, fine.sel(time=sdays), var=est.var, truth_var=est.var,
                             eps=est.config_.eps)["ssr"].values
        ssr = float(np.nanmedian(daily)) if np.isfinite(daily).any() else np.nan
        by_ssr = float(np.clip(1.0 / ssr, *SPREAD_LIMITS)) if np.isfinite(ssr) and ssr > 0 else 1.0
        # the log10 space spread_skill judged the same days in
        eps = est.config_.eps
        truth = field(fine, est.var).sel(time=sdays).transpose("time", "lat", "lon")
        factor, *texture = texture_bounded_factor(
            log10_transform(ens.transpose("member", "time", "lat", "lon").values, eps),
            log10_transform(truth.values, eps), by_ssr, max_texture)
        est.spread_[season] = factor
        report[season] = {"ssr": ssr, "factor": factor, "factor_ssr": by_ssr,
                          "texture": tuple(texture), "days": sdays,
                          "first": pred[est.var].copy(data=ens.isel(member=0).values)}
    return report


def validation_scores(est, coarse, coarse_on_fine, fine, calibration=None) -> pd.DataFrame:
    """Score each season's validation days: the model (one member, the configured sampler)
    beside bicubic and bias-corrected bicubic (log10 bias learned on the training days).

    Returns a DataFrame indexed by (season, method) with R², RMSE, bias in log10 and data
    units, and for a calibrated generative model its spread/skill ratio before calibration
    (``ssr``), the factor fitted (``spread_factor``) and a member's pixel-scale
    semivariance over the truth's as sampled and calibrated (``texture_sampled``,
    ``texture_calibrated``); warns with
    :class:`~xdownscale.errors.XDownscaleWarning` for every season where the model does not
    beat bicubic interpolation in both spaces.
    """
    tables = {}
    for season in est.seasons_:
        plan = est.plans_[season]
        days = pd.DatetimeIndex(plan.val if plan.val.size else plan.holdout)
        if not days.size:
            continue
        truth = fine.sel(time=days)
        done = (calibration or {}).get(season)
        # member 0 of the calibration run is the one-member prediction, unless the members were
        # tied to the driver: the ensemble's factor is its mean's, not member 0's own
        if (done is not None and done["days"].equals(days)
                and not est.config_.ties_to_driver(est.model)):
            pred = done["first"]
        else:
            pred = est.predict(coarse.sel(time=days), history=fine, members=1,
                               seed=est.config_.seed)
        interp = coarse_on_fine.sel(time=days)
        bias = baselines.log_bias(coarse_on_fine, fine, np.concatenate([plan.train, plan.holdout]),
                                  eps=est.config_.eps)
        tables[season] = baselines.score_against_baselines(
            {est.model: pred, "bicubic": interp,
             "bicubic_bc": baselines.bias_corrected(interp, bias)}, truth, eps=est.config_.eps)
        t = tables[season]
        if season in (calibration or {}):
            t.loc[est.model, "ssr"] = calibration[season]["ssr"]
            t.loc[est.model, "spread_factor"] = calibration[season]["factor"]
            t.loc[est.model, "texture_sampled"], t.loc[est.model, "texture_calibrated"] = (
                calibration[season]["texture"])
        worse = [space for space in ("log10", "data")
                 if t.loc[est.model, f"r2_{space}"] < t.loc["bicubic", f"r2_{space}"]]
        if worse:
            warnings.warn(
                f"the {season} {est.model} model does not beat bicubic interpolation on its "
                f"{days.size} validation day(s) (R² in {' and '.join(worse)}: "
                + ", ".join(f"{t.loc[est.model, f'r2_{s}']:.3f} vs {t.loc['bicubic', f'r2_{s}']:.3f}"
                            for s in worse)
                + "); train longer (min_steps), try target='residual', or use the interpolation",
                XDownscaleWarning, stacklevel=4)
    if not tables:
        return None
    out = pd.concat(tables, names=["season", "method"])
    return out
