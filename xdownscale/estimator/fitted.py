"""The fitted state of a :class:`~xdownscale.Downscaler`: what ``fit`` sets and ``save`` writes.

One owner for every fitted attribute: ``fit`` builds it, ``save`` writes it and ``load`` reads
it back.

Every attribute a fitted estimator carries is a field of :class:`FittedState`; the estimator
exposes them as ``est.<name>_`` (scikit-learn's convention). The JSON side (settings, scalers,
grids, days) is :meth:`FittedState.to_dict` / :meth:`FittedState.from_dict`; the arrays and
tables that are not JSON (weights, the elevation map, the learning curves, the validation
scores) travel beside it and are passed in by the checkpoint code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FittedState"]


@dataclass
class FittedState:
    """What a fit produces (see the training guide for each attribute)."""

    config: Any  # DownscaleConfig
    var: str
    seasons: list
    modules: dict  # season -> TransferModel
    scalers: dict  # season -> Scaler
    plans: dict  # season -> SeasonPlan
    covariate_spec: Any  # CovariateSpec
    lat: np.ndarray
    lon: np.ndarray
    elevation: np.ndarray
    elevation_used: bool
    coarse_grid: dict
    attrs: dict
    device: Any
    training_log: pd.DataFrame  # learning curves: season x stage x round
    validation: pd.DataFrame | None
    # season -> factor on the ensemble members' deviations from their mean (calibrate);
    # a season without one predicts its members as sampled
    spread: dict = field(default_factory=dict)
    # season -> (ncy, ncx) mean over the training days of the fine field's log10 mean over
    # each coarse cell minus the driver's: the target of the coarse-consistency step
    cell_offsets: dict = field(default_factory=dict)

    # the fields that are not JSON: saved beside the JSON by the checkpoint code
    ARRAYS = ("modules", "elevation", "training_log", "validation", "device")

    def apply(self, est) -> None:
        """Set every field on ``est`` as ``<name>_``."""
        for f in fields(self):
            setattr(est, f"{f.name}_", getattr(self, f.name))

    @classmethod
    def of(cls, est) -> FittedState:
        """The state of a fitted estimator."""
        return cls(**{f.name: getattr(est, f"{f.name}_") for f in fields(cls)})

    def to_dict(self) -> dict:
        """The JSON side of the state."""
        return {
            "var": str(self.var),
            "seasons": list(self.seasons),
            "config": self.config.to_dict(),
            "scalers": {s: sc.to_dict() for s, sc in self.scalers.items()},
            "covariate_spec": self.covariate_spec.to_dict(),
            "lat": np.asarray(self.lat).tolist(),
            "lon": np.asarray(self.lon).tolist(),
            "coarse_grid": {k: np.asarray(v).tolist() for k, v in self.coarse_grid.items()},
            "attrs": {k: (v if isinstance(v, (str, int, float, bool)) else str(v))
                      for k, v in self.attrs.items()},
            "elevation_used": bool(self.elevation_used),
            "plans": {s: p.to_dict() for s, p in self.plans.items()},
            "spread": {s: float(k) for s, k in self.spread.items()},
            # NaN (a cell no fine pixel falls in) as null: JSON has no NaN
            "cell_offsets": {s: np.where(np.isfinite(a), a, None).tolist()
                             for s, a in self.cell_offsets.items()},
        }

    @classmethod
    def from_dict(cls, data: dict, **arrays) -> FittedState:
        """Rebuild from :meth:`to_dict`'s output plus the :attr:`ARRAYS` fields by keyword."""
        from ..data.covariates import CovariateSpec
        from ..data.transforms import Scaler
        from .config import DownscaleConfig
        from .inputs import SeasonPlan

        missing = set(cls.ARRAYS) - set(arrays)
        if missing:
            raise TypeError(f"from_dict needs {sorted(missing)}")
        return cls(
            config=DownscaleConfig.from_dict(data["config"], saved=True),
            var=data["var"],
            seasons=list(data["seasons"]),
            scalers={s: Scaler.from_dict(d) for s, d in data["scalers"].items()},
            plans={s: SeasonPlan.from_dict(s, p) for s, p in data["plans"].items()},
            covariate_spec=CovariateSpec.from_dict(data["covariate_spec"]),
            lat=np.asarray(data["lat"], np.float64),
            lon=np.asarray(data["lon"], np.float64),
            coarse_grid={k: np.asarray(v) for k, v in data["coarse_grid"].items()},
            attrs=dict(data["attrs"]),
            elevation_used=bool(data["elevation_used"]),
            spread={s: float(k) for s, k in data.get("spread", {}).items()},
            cell_offsets={s: np.array(a, dtype=np.float64)  # null -> NaN
                          for s, a in data.get("cell_offsets", {}).items()},
            **arrays,
        )
