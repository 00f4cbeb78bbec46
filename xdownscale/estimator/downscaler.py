"""The fitted estimator: :class:`Downscaler`.

``Downscaler`` follows scikit-learn's estimator rules: ``__init__`` stores settings only,
``fit`` sets attributes ending in ``_`` and returns ``self``, ``predict`` before ``fit``
raises :class:`~xdownscale.errors.NotFittedError`. Torch is imported when a model is built,
not when this module is imported.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .._coords import DEFAULT_VAR
from ..data.seasons import SEASONS
from ..errors import ConfigError, NotFittedError
from ..predict.drift import DEFAULT_DRIFT_THRESHOLD
from .config import MAX_TEXTURE, DownscaleConfig

__all__ = ["Downscaler", "fit", "MODELS"]

MODELS = ("ddpm", "unet", "vae")


class Downscaler:
    """Transfer-encoder downscaler: one model per season, chosen per day.

    Parameters
    ----------
    config : DownscaleConfig, optional
        Settings; ``DownscaleConfig()`` (the paper's architecture with a 20-step DDIM sampler
        and the residual target) when omitted.
    model : {"ddpm", "unet", "vae"}
        The large model: the conditional DDPM of the paper, the deterministic U-Net, or the
        FiLM-conditioned VAE baseline.
    seasons : sequence of str, optional
        Seasons to fit (``"DJF", "MAM", "JJA", "SON"``); all seasons present in the fine
        record when None.
    var : str
        The data variable of Datasets passed to ``fit``/``predict``.

    Examples
    --------
    >>> import xdownscale
    >>> coarse, fine, elev = xdownscale.datasets.synthetic(area="A1", seed=0)  # doctest: +SKIP
    >>> est = coarse.downscale.fit(fine, elevation=elev, model="unet",
    ...                            config=xdownscale.DownscaleConfig.fast())    # doctest: +SKIP
    >>> pred = est.predict(coarse.sel(time="2007-05"), history=fine)         # doctest: +SKIP
    """

    def __init__(self, config: DownscaleConfig | None = None, model: str = "ddpm",
                 seasons: Sequence[str] | None = None, var: Hashable = DEFAULT_VAR) -> None:
        self.config = config
        self.model = model
        self.seasons = seasons
        self.var = var

    # -- scikit-learn style parameters ------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        return {"config": self.config, "model": self.model, "seasons": self.seasons, "var": self.var}

    def set_params(self, **params) -> Downscaler:
        valid = self.get_params()
        for key, value in params.items():
            if key in valid:
                setattr(self, key, value)
            elif self.config is not None or key in DownscaleConfig.__dataclass_fields__:
                self.config = (self.config or DownscaleConfig()).replace(**{key: value})
            else:
                raise ConfigError(f"unknown parameter {key!r}")
        return self

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "not fitted"
        seasons = getattr(self, "seasons_", self.seasons)
        return f"Downscaler(model={self.model!r}, seasons={seasons}, {state})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "modules_")

    @property
    def history_(self) -> pd.DataFrame:
        """Old name of :attr:`training_log_` (``history`` now means only the fine record)."""
        import warnings

        warnings.warn("Downscaler.history_ is now training_log_ (the learning curves); the "
                      "old name will be removed", FutureWarning, stacklevel=2)
        return self.training_log_

    def _check_fitted(self, what: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this Downscaler is not fitted yet: call fit(coarse, fine, elevation=...) before "
                f"{what}, or load a saved one with Downscaler.load(path)"
            )

    def _resolved_config(self) -> DownscaleConfig:
        cfg = self.config if self.config is not None else DownscaleConfig()
        if not isinstance(cfg, DownscaleConfig):
            raise ConfigError(f"config must be a DownscaleConfig, got {type(cfg).__name__}")
        if self.model not in MODELS:
            raise ConfigError(f"model={self.model!r} is not one of {list(MODELS)}")
        return cfg.validate()

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, coarse, fine, elevation=None, *, pretrained: Downscaler | None = None,
            state_dir: str | os.PathLike | None = None) -> Downscaler:
        """Pretrain the small model on the coarse record and train the large model on the
        coarse/fine overlap, one pair per season.

        Parameters
        ----------
        coarse : Dataset or DataArray
            Daily coarse record (time, lat, lon), e.g. MERRA-2, on its native grid; it must
            cover the fine grid (with margin for bicubic interpolation) and the fine days.
        fine : Dataset or DataArray
            Daily fine record (time, lat, lon), e.g. G5NR. Its grid is the output grid.
        elevation : Dataset or DataArray, optional
            Terrain height in metres on any grid covering the fine grid (30" DEMs are
            averaged into fine pixels). Without it the elevation map is zeros.
        pretrained : Downscaler, optional
            A fitted estimator whose stage-A models to reuse instead of training them again
            (e.g. the ``"ddpm"`` fit's for a ``"unet"`` fit on the same data). Its small
            model, stage-A settings, coarse pretraining days and scalers must be the same as
            this fit's; otherwise :class:`~xdownscale.errors.ConfigError` says what differs.
        state_dir : str or path, optional
            A folder where both stages write their training state after every round (one
            file per season and stage). Calling ``fit`` again with the same folder, data and
            training settings continues an interrupted fit after its last completed round
            (a wall-clock limit, a pre-empted node), and on the same device ends with the
            weights an uninterrupted fit gives; finished stages are read back, not trained.
            A state written by another configuration or record is refused with
            :class:`~xdownscale.errors.ConfigError`. Settings that only change prediction
            (sampler, inference, ...) may differ. Delete the folder to start afresh.

        Returns
        -------
        Downscaler
            ``self``, fitted. Besides the models it holds ``training_log_`` (the learning curves of
            both stages) and ``validation_``: each season's validation days scored for the
            model beside ``bicubic`` and ``bicubic_bc`` (bicubic with its mean log10 bias on
            the training days removed), a DataFrame indexed by (season, method) with R², RMSE
            and bias in log10 and data units (None with ``validation=False``).

        Warns
        -----
        XDownscaleWarning
            When a season's model does not beat bicubic interpolation on its validation days.
        """
        from .stages import fit_estimator

        cfg = self._resolved_config()
        if pretrained is not None:
            pretrained._check_fitted("reusing its stage-A models")
        fit_estimator(self, cfg, coarse, fine, elevation, pretrained=pretrained,
                      state_dir=state_dir)
        return self

    def calibrate(self, coarse, fine, *, days=None, members: int = 4,
                  max_texture: float | None = MAX_TEXTURE) -> Downscaler:
        """Scale each season's ensemble spread to the error of its mean on held-out days.

        ``fit`` does this on the validation days when ``calibrate_spread`` is on (the
        default, for ``"ddpm"`` and ``"vae"``); call it to recalibrate on other days. The
        season's members are predicted on ``days`` (default: its validation days) with
        ``members`` members; their spread/skill ratio (log10, per day,
        :func:`~xdownscale.diagnostics.spread_skill`) on the median day gives the factor
        ``1 / SSR`` (bounded to 0.5-2) that
        predictions of two or more members then apply to their deviations from the ensemble
        mean (the mean, and a one-member prediction, are unchanged). Scaling the deviations
        also roughens each member, so a factor above 1 stops where a member would be more
        than ``max_texture`` times as rough as the truth at the pixel scale (semivariance of
        neighbouring pixels, log10, median over ``days``). The factors are in
        ``spread_`` and saved with the model.

        Parameters
        ----------
        coarse, fine : Dataset or DataArray
            The coarse record and the fine truth covering ``days`` and their history.
        days : array-like of datetime, optional
            Held-out days to calibrate on; seasons without any keep their factor.
        members : int, default 4
            Ensemble size of the calibration run (at least 2).
        max_texture : float or None, default 1.2
            Bound on a calibrated member's pixel-scale semivariance over the truth's; ``None``
            scales the spread to its error whatever the texture (the factor is then
            ``1 / SSR``, bounded).

        Returns
        -------
        Downscaler
            ``self``, with ``spread_`` updated.
        """
        from .stages import calibrate_spread

        self._check_fitted("calibrate")
        calibrate_spread(self, coarse, fine, days=days, members=members,
                         max_texture=max_texture)
        return self

    # -- prediction -------------------------------------------------------------------------
    def predict(self, coarse, history=None, members: int = 1, sampler: str | None = None,
                steps: int | None = None, seed: int | None = None, keep_members: bool = False,
                fusion: str | None = None, inference: str | None = None,
                coarse_consistency: bool | None = None) -> xr.Dataset:
        """Downscale every day of ``coarse`` onto the fine grid.

        Parameters
        ----------
        coarse : Dataset or DataArray
            Coarse days to downscale (native coarse grid, like the training record).
        history : Dataset or DataArray
            Fine days from which each day's ``n_lags``-day encoder history is taken (true fine
            days in the overlap period). Every day of ``coarse`` needs its full window here.
        members : int
            Ensemble size; the result holds the mean and, for ``members > 1``, the standard
            deviation in data units.
        sampler, steps : optional
            Diffusion sampler (``"ddpm"``, ``"ddim"``, ``"dpmsolver"``) and its number of
            steps; defaults from the config.
        seed : int, optional
            Seed of the sampling noise; the same seed gives the same numbers, whatever the
            chunking. Defaults to the config's seed.
        keep_members : bool
            Also return the members along a ``member`` dimension.
        fusion : {"posthoc", "per_step"}, optional
            Stitch overlapping patches once after sampling (the paper) or fuse them at every
            denoising step.
        inference : {"auto", "tiles", "patches"}, optional
            Predict on large tiles or on the paper's patches; defaults from the config
            (``"auto"``: patches while a day needs at most ``auto_patch_limit`` of them,
            tiles beyond). The attribute ``xdownscale_inference`` says which was used.
        coarse_consistency : bool, optional
            Tie each day to its coarse driver after sampling: shift its log10 field so that
            its mean over every coarse cell minus the driver's equals that difference on the
            season's training days (``cell_offsets_``); every member gets the same factor, so
            the spread keeps its relative size. Defaults from the config (None: on for
            ``"ddpm"`` and ``"vae"``, off for the ``"unet"``, which follows its driver already;
            ``paper()``: off).

        Returns
        -------
        xarray.Dataset
            ``<var>`` (the point, data units: the DDPM's one-step conditional mean with
            ``point_estimate="conditional_mean"``, else the ensemble mean), ``<var>_std``
            when ``members > 1`` and optionally ``<var>_members``. Lazy when ``coarse`` or ``history`` is dask-backed:
            one task per time chunk of ``coarse`` and latitude/longitude tile of ``history``,
            each predicted with a ``patch``-pixel overlap and trimmed, so the chunking does not
            change the numbers.
        """
        from ..predict.labelled import predict_dataset

        self._check_fitted("predict")
        return predict_dataset(self, coarse, history, members=members, sampler=sampler,
                               steps=steps, seed=seed, keep_members=keep_members, fusion=fusion,
                               inference=inference, coarse_consistency=coarse_consistency)

    def rollout(self, coarse, history=None, start=None, end=None, store=None, members: int = 1,
                seed: int | None = None, sampler: str | None = None, steps: int | None = None,
                nan_days: str = "raise", drift_threshold: float | None = DEFAULT_DRIFT_THRESHOLD,
                coarse_consistency: bool | None = None, carry: str = "mean"):
        """Autoregressive downscaling past the end of the fine record.

        Seeded with the last ``n_lags`` days of ``history`` before ``start``; each predicted
        day is appended to the history of the next. What is appended: with ``carry="mean"``
        (default) the DDPM's one-step estimate of the day's conditional mean (one more DDIM
        step per day; returned and stored as ``<var>_history`` unless the output ``<var>`` is
        that estimate already, with ``point_estimate="conditional_mean"``), whatever
        ``members`` and ``sampler`` make the output; with ``carry="ensemble"`` (and always for
        the U-Net and the VAE) the members' mean, which for one sampled member carries its
        noise into every later day. With ``store`` (a zarr
        path) each day is written as soon as it is done and a rerun resumes at the first
        missing day, giving the same result as an uninterrupted run. A coarse day with NaN is
        refused (``nan_days="raise"``) or left undone (``"skip"``); see the reliability page.

        Each day's domain-mean log10 bias against the coarse driver (minus the seed window's)
        is checked: past ``drift_threshold`` an ``XDownscaleWarning`` says so (None: never).
        ``coarse_consistency`` (default: the config's; on for the generative models) ties each
        day's mean over every coarse cell to the driver, with the season's training-day
        offsets as ``predict`` does (the seed window's for a model saved without them), before
        it becomes history (see :mod:`xdownscale.predict.drift`; it kept every measured rollout from
        drifting); False rolls out the model's days as they come.
        """
        from ..predict.rollout import rollout

        self._check_fitted("rollout")
        return rollout(self, coarse, history, start=start, end=end, store=store, members=members,
                       seed=seed, sampler=sampler, steps=steps, nan_days=nan_days,
                       drift_threshold=drift_threshold, coarse_consistency=coarse_consistency,
                       carry=carry)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the fitted estimator to the directory ``path`` (safetensors + JSON, no pickle)."""
        from .checkpoint import save

        self._check_fitted("save")
        save(self, path)

    @classmethod
    def load(cls, path, device: str | None = None) -> Downscaler:
        """Read an estimator written by :meth:`save`; refuses corrupt or incompatible files."""
        from .checkpoint import load

        return load(cls, path, device=device)

    # -- conveniences -----------------------------------------------------------------------
    def season_of(self, times) -> np.ndarray:
        from ..data.seasons import season_of

        return season_of(pd.DatetimeIndex(times))

    @property
    def test_days_(self) -> dict[str, np.ndarray]:
        """Fine test days per season (the temporal last 10 % of each season's days)."""
        self._check_fitted("test_days_")
        return {s: plan.test for s, plan in self.plans_.items()}

    def evaluate_rollout(self, coarse, fine, start, days: int = 30, **kwargs) -> xr.Dataset:
        """Roll out from ``start`` inside the fine record as if the truth ended there, and
        score each lead day beside the true-history prediction and (bias-corrected) bicubic;
        see :func:`xdownscale.predict.evaluation.evaluate_rollout` for ``kwargs`` and the result."""
        from ..predict.evaluation import evaluate_rollout

        self._check_fitted("evaluate_rollout")
        return evaluate_rollout(self, coarse, fine, start=start, days=days, **kwargs)


def fit(coarse, fine, elevation=None, model: str = "ddpm", config: DownscaleConfig | None = None,
        seasons: Sequence[str] | None = None, var: Hashable | None = None,
        state_dir: str | os.PathLike | None = None, **overrides) -> Downscaler:
    """Fit a :class:`Downscaler`; what ``coarse.downscale.fit(fine, ...)`` calls.

    ``overrides`` set any :class:`DownscaleConfig` field by name; ``state_dir`` makes the fit
    resumable (see :meth:`Downscaler.fit`).
    """
    cfg = config if config is not None else DownscaleConfig()
    if overrides:
        cfg = cfg.replace(**overrides)
    if seasons is not None:
        seasons = [seasons] if isinstance(seasons, str) else list(seasons)
        bad = [s for s in seasons if s not in SEASONS]
        if bad:
            raise ConfigError(f"unknown season(s) {bad}; choose from {list(SEASONS)}")
    est = Downscaler(cfg, model=model, seasons=seasons, var=var or DEFAULT_VAR)
    return est.fit(coarse, fine, elevation, state_dir=state_dir)

