"""The embedded default data: a synthetic MERRA-2 / G5NR dust-AOD pair on the real grids.

Real MERRA-2 and G5NR need an Earthdata login and many gigabytes, so :func:`synthetic` builds a
statistically realistic stand-in over real GLOBE terrain. The model and what it gets right (or
not) are described in ``docs/synthetic.rst``; the numbers behind it live in :mod:`._fields`.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import ConfigError, TimeAxisError
from ._elevation import elevation_for_window
from ._fields import TruthModel, day_numbers
from ._grids import Grids, make_grids, resolve_window

__all__ = ["synthetic"]

_VERSION = "1"  # bump when the generator's numbers change
_FULL_CHUNK = 32  # default time chunk of size="full"
_EAGER_BLOCK_PIXELS = 4_000_000  # truth pixels per block on the eager path (~16 MB float32)
_VAR_ATTRS = {"long_name": "Dust Extinction AOT [550 nm]", "units": "1"}


def _as_day(value, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise TimeAxisError(f"{name} must be a date such as '2005-05-15', got {value!r}") from None
    if ts is pd.NaT or ts != ts.normalize():
        raise TimeAxisError(f"{name} must be a date at 00:00 (daily data), got {value!r}")
    return ts


def _check_args(seed, coarse_start, coarse_end, fine_start, fine_days, chunks):
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(fine_days, bool) or not isinstance(fine_days, int | np.integer) or fine_days < 1:
        raise ConfigError(f"fine_days must be an integer >= 1, got {fine_days!r}")
    if isinstance(chunks, dict):
        chunks = chunks.get("time")
    if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int | np.integer)
                               or chunks < 1):
        raise ConfigError(f"chunks must be None or a number of days >= 1 (or {{'time': n}}), "
                          f"got {chunks!r}")
    c0, c1 = _as_day(coarse_start, "coarse_start"), _as_day(coarse_end, "coarse_end")
    if c1 < c0:
        raise TimeAxisError(f"coarse_end {c1.date()} is before coarse_start {c0.date()}")
    f0 = _as_day(fine_start, "fine_start")
    f1 = f0 + pd.Timedelta(days=int(fine_days) - 1)
    if f0 < c0 or f1 > c1:
        raise TimeAxisError(
            f"the fine record {f0.date()} .. {f1.date()} ({fine_days} days) must lie inside the "
            f"coarse record {c0.date()} .. {c1.date()}: the coarse data is the regional driver "
            "of every fine day. Move fine_start, shorten fine_days or widen the coarse period."
        )
    return pd.date_range(c0, c1, freq="D"), pd.date_range(f0, f1, freq="D"), chunks


def _coords(times: pd.DatetimeIndex, lat: np.ndarray, lon: np.ndarray) -> dict:
    return {
        "time": ("time", times.to_numpy("datetime64[ns]"),
                 {"standard_name": "time", "long_name": "time (daily mean, UTC)", "axis": "T"}),
        "lat": ("lat", lat, {"standard_name": "latitude", "long_name": "latitude",
                             "units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "long_name": "longitude",
                             "units": "degrees_east", "axis": "X"}),
    }


def _dataset(data, times, lat, lon, var: Hashable, kind: str, grid: str, area: str, seed: int,
             grids: Grids) -> xr.Dataset:
    attrs = {**_VAR_ATTRS,
             "source": f"synthetic ({kind}-like), xdownscale.datasets.synthetic; not real data"}
    w = grids.window
    return xr.Dataset(
        {var: (("time", "lat", "lon"), data, attrs)},
        coords=_coords(times, lat, lon),
        attrs={
            "title": f"Synthetic {kind}-like daily dust extinction AOD, area {area}",
            "source": f"xdownscale.datasets.synthetic version {_VERSION}",
            "comment": f"generated, statistically {kind}-like data; see docs/synthetic.rst",
            "grid": grid,
            "area": area,
            "seed": int(seed),
            "window": f"lat {w.lat_min:g}..{w.lat_max:g}, lon {w.lon_min:g}..{w.lon_max:g}",
            "terrain": "GLOBE 30-arc-second DEM (GLOBE Task Team 1999, NOAA NGDC), public domain",
            "Conventions": "CF-1.8",
        },
    )


def _eager(model: TruthModel, coarse_days: np.ndarray, fine_days: np.ndarray):
    """Both fields in memory, computed in blocks of days (the truth of a block is shared)."""
    g = model.grids
    block = max(1, _EAGER_BLOCK_PIXELS // (g.truth_lat.size * g.truth_lon.size))
    coarse = np.empty((coarse_days.size, g.coarse_lat.size, g.coarse_lon.size), np.float32)
    fine = np.empty((fine_days.size, g.fine_lat.size, g.fine_lon.size), np.float32)
    f0 = int(np.searchsorted(coarse_days, fine_days[0]))
    f1 = f0 + fine_days.size
    for b0 in range(0, coarse_days.size, block):
        b1 = min(b0 + block, coarse_days.size)
        truth = model.log10_truth(coarse_days[b0:b1])
        lo, hi = max(b0, f0), min(b1, f1)
        if lo < hi:
            fine[lo - f0:hi - f0] = model.fine(coarse_days[lo:hi], truth[lo - b0:hi - b0])
        coarse[b0:b1] = model.coarse(coarse_days[b0:b1], truth)
    return coarse, fine


def _lazy(method, days: np.ndarray, chunk: int, shape: tuple[int, int], name: str):
    """A dask array (days, *shape) whose blocks call ``method(day_numbers)``."""
    import dask.array as dsa

    d = dsa.from_array(days, chunks=chunk, name=f"{name}-days")
    return d.map_blocks(method, new_axis=[1, 2], chunks=(d.chunks[0], (shape[0],), (shape[1],)),
                        dtype=np.float32, name=name, meta=np.empty((0, 0, 0), np.float32))


def synthetic(area: str = "A1", seed: int = 0, *, size: str = "demo", window=None,
              coarse_start="2000-01-01", coarse_end="2024-12-31", fine_start="2005-05-15",
              fine_days: int = 763, chunks: int | None = None,
              var: Hashable = "DUEXTTAU") -> tuple[xr.Dataset, xr.Dataset, xr.DataArray]:
    """A synthetic MERRA-2-like / G5NR-like daily dust-AOD pair over real terrain.

    Parameters
    ----------
    area : {"A1", "A0"}
        The paper's area: A1 (Gulf countries and Djibouti) or A0 (Afghanistan and Kyrgyzstan).
    seed : int, default 0
        Non-negative seed; the same seed gives the same numbers on any machine, window or
        chunking.
    size : {"demo", "full"}, default "demo"
        ``"demo"``: a 4 x 4 degree window of 64 x 64 G5NR pixels over strong terrain
        contrast (A1: Mesopotamia and the Zagros, lat 32-36 N, lon 44-48 E; A0: the Sistan
        basin and the Afghan highlands, lat 30-34 N, lon 61-65 E). ``"full"``: the whole area
        (A1 432 x 357, A0 224 x 318 pixels), lazy by default.
    window : (lat_min, lat_max, lon_min, lon_max), optional
        A custom box inside the area (overrides the window chosen by ``size``).
    coarse_start, coarse_end : date-like
        The MERRA-2-like record, both ends included (default 2000-01-01 .. 2024-12-31).
    fine_start : date-like, default "2005-05-15"
        First day of the G5NR-like record.
    fine_days : int, default 763
        Length of the G5NR-like record; it must lie inside the coarse record.
    chunks : int, optional
        Time chunk (days) for dask-backed, lazy output; ``size="full"`` defaults to 32.
        Values are identical to the eager (numpy) output.
    var : hashable, default "DUEXTTAU"
        Name of the data variable.

    Returns
    -------
    coarse : xarray.Dataset
        ``var`` (time, lat, lon) float32 on the MERRA-2 0.5 x 0.625 degree grid (centres at
        multiples of 0.5 / 0.625 degrees), covering the window plus two coarse cells, daily at
        00:00 over the coarse record.
    fine : xarray.Dataset
        ``var`` (time, lat, lon) float32 on the G5NR 0.0625-degree grid inside the window
        (what ``xdownscale.data.regions.clip`` keeps), daily over the fine record.
    elevation : xarray.DataArray
        GLOBE terrain in metres (float32): at 30 arc-seconds over the fine pixels' footprint when
        the window lies in a shipped 30" tile (the demo windows), else at 0.0625 degrees on the
        fine grid; the ``resolution`` attr says which.

    Raises
    ------
    RegionError
        Unknown area, a window not inside the area, or one holding fewer than 2 x 2 pixels.
    TimeAxisError
        Unparsable dates, ``coarse_end`` before ``coarse_start``, or a fine record outside the
        coarse record.
    ConfigError
        Bad ``seed``, ``size``, ``fine_days`` or ``chunks``.

    Examples
    --------
    >>> import xdownscale
    >>> coarse, fine, elev = xdownscale.datasets.synthetic("A1", seed=0, fine_days=30,
    ...                                                    coarse_start="2005-01-01",
    ...                                                    coarse_end="2005-12-31")
    >>> dict(fine.sizes), dict(coarse.sizes)
    ({'time': 30, 'lat': 64, 'lon': 64}, {'time': 365, 'lat': 12, 'lon': 10})
    >>> elev.attrs["resolution"], elev.shape
    ('30s', (481, 481))
    """
    coarse_times, fine_times, chunks = _check_args(seed, coarse_start, coarse_end, fine_start,
                                                   fine_days, chunks)
    grids = make_grids(area, resolve_window(area, size, window))
    if chunks is None and size == "full":
        chunks = _FULL_CHUNK
    model = TruthModel(area, int(seed), grids)
    cdays, fdays = day_numbers(coarse_times), day_numbers(fine_times)
    if chunks is None:
        coarse, fine = _eager(model, cdays, fdays)
    else:
        from dask.base import tokenize

        token = tokenize(_VERSION, area, int(seed), grids.window.bounds, cdays[0], cdays[-1],
                         fdays[0], fdays[-1], int(chunks))
        coarse = _lazy(model.coarse, cdays, int(chunks),
                       (grids.coarse_lat.size, grids.coarse_lon.size), f"synthetic-coarse-{token}")
        fine = _lazy(model.fine, fdays, int(chunks), (grids.fine_lat.size, grids.fine_lon.size),
                     f"synthetic-fine-{token}")
    coarse_ds = _dataset(coarse, coarse_times, grids.coarse_lat, grids.coarse_lon, var, "MERRA-2",
                         "MERRA-2 0.5 x 0.625 degree", area, seed, grids)
    fine_ds = _dataset(fine, fine_times, grids.fine_lat, grids.fine_lon, var, "G5NR",
                       "G5NR 0.0625 degree", area, seed, grids)
    return coarse_ds, fine_ds, elevation_for_window(grids)
