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
