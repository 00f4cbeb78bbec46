"""Embedded default data: a synthetic MERRA-2 / G5NR dust-AOD pair and the shipped terrain.

>>> import xdownscale
>>> coarse, fine, elev = xdownscale.datasets.synthetic(area="A1", seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from ._elevation import load_elevation
from .synthetic import synthetic

__all__ = ["synthetic", "load_elevation"]
