"""The ``.downscale`` and ``.dustdiag`` accessors.

Each method is a one-line forward to a module-level function (imported when called, so that
``import xdownscale`` stays light). The accessors hold no state: ``fit`` returns an estimator.
"""

from __future__ import annotations

import xarray as xr


class _Base:
    def __init__(self, xarray_obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = xarray_obj


class DownscaleAccessor(_Base):
    """Data preparation and model fitting: ``obj.downscale.<method>``."""

    def clip(self, region, **kwargs):
        """Clip to a region; see :func:`xdownscale.regions.clip`."""
        from .regions import clip

        return clip(self._obj, region, **kwargs)

    def regrid_like(self, target, method: str = "cubic", **kwargs):
        """Regrid onto ``target``'s grid; see :func:`xdownscale.regrid.regrid_like`."""
        from .regrid import regrid_like

        return regrid_like(self._obj, target, method=method, **kwargs)

    def log10(self, eps: float = 1e-6):
        """``log10(max(x, eps))``; see :func:`xdownscale.transforms.log10_transform`."""
        from .transforms import log10_transform

        return log10_transform(self._obj, eps=eps)

    def seasons(self, buffer_days: int = 45, **kwargs):
        """Split by season with lag buffers; see :func:`xdownscale.seasons.seasons`."""
        from .seasons import seasons

        return seasons(self._obj, buffer_days=buffer_days, **kwargs)

    def split(self, train: float = 0.8, val: float = 0.1, test: float = 0.1, **kwargs):
        """Temporal train/val/test split; see :func:`xdownscale.seasons.split`."""
        from .seasons import split

        return split(self._obj, train=train, val=val, test=test, **kwargs)

    def fit(self, fine, elevation=None, model: str = "ddpm", config=None, seasons=None, **overrides):
        """Fit a :class:`xdownscale.Downscaler` with this object as the coarse record."""
        from .estimator import fit

        return fit(self._obj, fine, elevation=elevation, model=model, config=config,
                   seasons=seasons, **overrides)


class DustDiagAccessor(_Base):
    """Diagnostics of dust-extinction fields: ``obj.dustdiag.<method>``."""

    def summary(self, **kwargs):
        """Table-1 statistics per season; see :func:`xdownscale.diagnostics.summary`."""
        from .diagnostics import summary

        return summary(self._obj, **kwargs)

    def wasserstein(self, other, bins: int = 100, **kwargs):
        """Per-day and pooled W1; see :func:`xdownscale.diagnostics.wasserstein`."""
        from .diagnostics import wasserstein

        return wasserstein(self._obj, other, bins=bins, **kwargs)

    def semivariogram(self, n_pairs: int = 30000, max_dist_km: float = 600, n_bins: int = 30,
                      model: str = "spherical", seed: int = 0, **kwargs):
        """Daily semivariograms and a fitted model; see :func:`xdownscale.diagnostics.semivariogram`."""
        from .diagnostics import semivariogram

        return semivariogram(self._obj, n_pairs=n_pairs, max_dist_km=max_dist_km,
                             n_bins=n_bins, model=model, seed=seed, **kwargs)

    def acf(self, nlags: int = 30, **kwargs):
        """ACF of the regional-mean series; see :func:`xdownscale.diagnostics.acf`."""
        from .diagnostics import acf

        return acf(self._obj, nlags=nlags, **kwargs)

    def pacf(self, nlags: int = 30, **kwargs):
        """PACF of the regional-mean series; see :func:`xdownscale.diagnostics.pacf`."""
        from .diagnostics import pacf

        return pacf(self._obj, nlags=nlags, **kwargs)

    def lag_metrics(self, max_lag: int = 10, **kwargs):
        """Image-wise RMSE and R² against earlier days; see :func:`xdownscale.diagnostics.lag_metrics`."""
        from .diagnostics import lag_metrics

        return lag_metrics(self._obj, max_lag=max_lag, **kwargs)

    def skill(self, truth, **kwargs):
        """Per-day skill scores against ``truth``; see :func:`xdownscale.diagnostics.skill`."""
        from .diagnostics import skill

        return skill(self._obj, truth, **kwargs)

    def plot_semivariogram(self, *others, **kwargs):
        """Plot semivariograms; see :func:`xdownscale.diagnostics.plots.plot_semivariogram`."""
        from .diagnostics.plots import plot_semivariogram

        return plot_semivariogram(self._obj, *others, **kwargs)

    def plot_acf(self, *others, **kwargs):
        """Plot ACF and PACF; see :func:`xdownscale.diagnostics.plots.plot_acf`."""
        from .diagnostics.plots import plot_acf

        return plot_acf(self._obj, *others, **kwargs)

    def plot_lag_metrics(self, *others, **kwargs):
        """Plot lag RMSE/R²; see :func:`xdownscale.diagnostics.plots.plot_lag_metrics`."""
        from .diagnostics.plots import plot_lag_metrics

        return plot_lag_metrics(self._obj, *others, **kwargs)

    def plot_map(self, *others, **kwargs):
        """Plot maps (and a difference map); see :func:`xdownscale.diagnostics.plots.plot_map`."""
        from .diagnostics.plots import plot_map

        return plot_map(self._obj, *others, **kwargs)

    def rank_histogram(self, truth, **kwargs):
        """Rank histogram of the truth among the members; see :func:`xdownscale.diagnostics.rank_histogram`."""
        from .diagnostics import rank_histogram

        return rank_histogram(self._obj, truth, **kwargs)

    def spread_skill(self, truth, **kwargs):
        """Spread/skill ratio of an ensemble; see :func:`xdownscale.diagnostics.spread_skill`."""
        from .diagnostics import spread_skill

        return spread_skill(self._obj, truth, **kwargs)

    def power_spectrum(self, **kwargs):
        """Radial power spectrum per day; see :func:`xdownscale.diagnostics.power_spectrum`."""
        from .diagnostics import power_spectrum

        return power_spectrum(self._obj, **kwargs)

    def plot_rank_histogram(self, truth=None, **kwargs):
        """Plot a rank histogram; see :func:`xdownscale.diagnostics.plots_ensemble.plot_rank_histogram`."""
        from .diagnostics.plots_ensemble import plot_rank_histogram

        return plot_rank_histogram(self._obj, truth, **kwargs)

    def plot_power_spectrum(self, *others, **kwargs):
        """Plot power spectra; see :func:`xdownscale.diagnostics.plots_ensemble.plot_power_spectrum`."""
        from .diagnostics.plots_ensemble import plot_power_spectrum

        return plot_power_spectrum(self._obj, *others, **kwargs)


def register() -> None:
    """Register both accessors on Dataset and DataArray (idempotent)."""
    for cls in (xr.Dataset, xr.DataArray):
        for name, acc in (("downscale", DownscaleAccessor), ("dustdiag", DustDiagAccessor)):
            if getattr(cls, name, None) is not acc:
                # xarray warns when an accessor name is overridden; register only once.
                if hasattr(cls, name):
                    continue
                register_fn = (xr.register_dataset_accessor if cls is xr.Dataset
                               else xr.register_dataarray_accessor)
                register_fn(name)(acc)
