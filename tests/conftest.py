"""Shared fixtures and helpers for the test suite."""

from __future__ import annotations

import contextlib
import os

import dask
import pytest

# Tests run on 2 cores; keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")


class CountingScheduler:
    """A dask scheduler that counts how often it is asked to compute (xarray's test idiom)."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many computes. Total: {self.total_computes} > max: {self.max_computes}."
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail if the block triggers more than ``max_computes`` dask computations."""
    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler


@pytest.fixture(params=["numpy", "dask"])
def backend(request):
    """Parametrize a test over numpy- and dask-backed inputs."""
    return request.param


def make_toy_pair(ny: int = 24, nx: int = 24, seed: int = 0):
    """A small coarse/fine pair on the real MERRA-2 and G5NR grids (fine values = smooth coarse
    structure times a fixed fine-scale pattern, plus noise), and an elevation map."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(seed)
    flat = 20.0 + 0.0625 * np.arange(ny)
    flon = 40.0 + 0.0625 * np.arange(nx)
    clat = np.arange(19.0, flat[-1] + 1.01, 0.5)
    clon = np.arange(38.75, flon[-1] + 1.3, 0.625)
    ctimes = pd.date_range("2004-06-01", "2008-12-31")
    ftimes = pd.date_range("2005-05-15", periods=763)
    t = np.arange(len(ctimes))
    season = 0.2 + 0.1 * np.sin(2 * np.pi * t / 365.25)[:, None, None]
    cvals = season * (1 + 0.3 * rng.random((len(ctimes), clat.size, clon.size)))
    attrs = {"units": "1", "long_name": "Dust Extinction AOT [550 nm]"}
    coarse = xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), cvals.astype("float32"), attrs)},
                        coords={"time": ctimes, "lat": clat, "lon": clon})
    smooth = coarse["DUEXTTAU"].sel(time=ftimes).interp(lat=flat, lon=flon).values
    pattern = 1 + 0.4 * np.sin(flat[:, None] * 9.0) * np.cos(flon[None, :] * 7.0)
    fvals = smooth * pattern * (1 + 0.05 * rng.standard_normal(smooth.shape))
    fine = xr.Dataset({"DUEXTTAU": (("time", "lat", "lon"), np.abs(fvals).astype("float32"),
                                    attrs)}, coords={"time": ftimes, "lat": flat, "lon": flon})
    elev = xr.DataArray((1000 * pattern).astype("float32"), dims=("lat", "lon"),
                        coords={"lat": flat, "lon": flon}, name="elevation",
                        attrs={"units": "m"})
    return coarse, fine, elev


@pytest.fixture(scope="session")
def toy_pair():
    return make_toy_pair()


def tiny_config(**overrides):
    """A configuration small enough to fit in seconds on one CPU core."""
    from xdownscale import DownscaleConfig

    base = dict(small_widths=(8, 16, 32), large_widths=(8, 16, 32), small_epochs=1,
                small_max_days=24, epochs=1, min_steps=0, small_min_steps=0, sample_steps=3, verbose=False,
                patches_per_day=4, infer_stride=8, timesteps=50, vae_latent=8)
    base.update(overrides)
    return DownscaleConfig.fast(**base)
