"""Diagnostics of daily gridded fields: the paper's Tables 1-3/A1 and Figures 3-9.

Every function takes a Dataset (with ``var=``, default ``"DUEXTTAU"``) or a DataArray with dims
``time, lat, lon`` and works lazily on dask input where it maps over days. statsmodels,
scikit-gstat, pyproj and matplotlib are imported only when a function needs them. The
figures live in :mod:`xdownscale.diagnostics.plots` and, for ensembles and spectra,
:mod:`xdownscale.diagnostics.plots_ensemble`.
"""

from __future__ import annotations

from .compare import compare
from .distance import wasserstein
from .ensemble import rank_histogram, spread_skill
from .ood import ood_checks
from .skill import crps, skill
from .spectrum import power_spectrum
from .summary import summary
from .temporal import acf, correlogram, lag_metrics, pacf
from .variogram import semivariogram

__all__ = [
    "summary",
    "wasserstein",
    "semivariogram",
    "acf",
    "pacf",
    "correlogram",
    "lag_metrics",
    "skill",
    "crps",
    "compare",
    "ood_checks",
    "rank_histogram",
    "spread_skill",
    "power_spectrum",
]

