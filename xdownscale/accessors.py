"""The ``.downscale`` and ``.dustdiag`` (alias ``.diag``) accessors.

Each method forwards to a module-level function with the accessor's object as the first
argument. The method is generated from the function on first access (the module is imported
then, so that ``import xdownscale`` stays light): ``help()``, ``inspect.signature``, tab
completion and the rendered API pages show the function's own signature (less its first
parameter) and its full docstring, never a hand-copied one. Adding a method is one line::

    rank_histogram = _forward("xdownscale.diagnostics:rank_histogram")

The accessors hold no state: ``fit`` returns an estimator.
"""

from __future__ import annotations

import functools
import inspect
from importlib import import_module

import xarray as xr

__all__ = ["DownscaleAccessor", "DustDiagAccessor", "register"]


class _forward:
    """Descriptor: ``obj.<accessor>.<name>(*args, **kw)`` calls ``func(obj, *args, **kw)``."""

    def __init__(self, target: str) -> None:
        self.module, self.func_name = target.split(":")
        self.__doc__ = f"See :func:`{self.module}.{self.func_name}`."  # until resolved

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    @functools.cached_property
    def func(self):
        return getattr(import_module(self.module), self.func_name)

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        sig = inspect.signature(self.func)
        return sig.replace(parameters=list(sig.parameters.values())[1:])

    def __get__(self, accessor, owner=None):
        func = self.func
        if accessor is None:  # class access (Sphinx, help(DustDiagAccessor)): unbound form
            @functools.wraps(func)
            def unbound(acc, *args, **kwargs):
                return func(acc._obj, *args, **kwargs)

            unbound.__name__ = unbound.__qualname__ = self.name
            return unbound

        @functools.wraps(func)
        def method(*args, **kwargs):
            return func(accessor._obj, *args, **kwargs)

        method.__name__ = self.name
        method.__qualname__ = f"{type(accessor).__name__}.{self.name}"
        method.__signature__ = self.signature
        return method


class _Base:
    def __init__(self, xarray_obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = xarray_obj


class DownscaleAccessor(_Base):
    """Data preparation and model fitting: ``obj.downscale.<method>``."""

    clip = _forward("xdownscale.data.regions:clip")
    regrid_like = _forward("xdownscale.data.regrid:regrid_like")
    log10 = _forward("xdownscale.data.transforms:log10_transform")
    seasons = _forward("xdownscale.data.seasons:seasons")
    split = _forward("xdownscale.data.seasons:split")
    fit = _forward("xdownscale.estimator.downscaler:fit")


class DustDiagAccessor(_Base):
    """Diagnostics of daily gridded fields: ``obj.dustdiag.<method>`` (also ``obj.diag``).

    Named for dust extinction, the paper's variable, but nothing in it is dust-specific:
    pass ``var=`` for any other variable.
    """

    summary = _forward("xdownscale.diagnostics:summary")
    wasserstein = _forward("xdownscale.diagnostics:wasserstein")
    semivariogram = _forward("xdownscale.diagnostics:semivariogram")
    acf = _forward("xdownscale.diagnostics:acf")
    pacf = _forward("xdownscale.diagnostics:pacf")
    lag_metrics = _forward("xdownscale.diagnostics:lag_metrics")
    skill = _forward("xdownscale.diagnostics:skill")
    plot_semivariogram = _forward("xdownscale.diagnostics.plots:plot_semivariogram")
    plot_acf = _forward("xdownscale.diagnostics.plots:plot_acf")
    plot_lag_metrics = _forward("xdownscale.diagnostics.plots:plot_lag_metrics")
    plot_map = _forward("xdownscale.diagnostics.plots:plot_map")
    rank_histogram = _forward("xdownscale.diagnostics:rank_histogram")
    spread_skill = _forward("xdownscale.diagnostics:spread_skill")
    power_spectrum = _forward("xdownscale.diagnostics:power_spectrum")
    plot_rank_histogram = _forward("xdownscale.diagnostics.plots_ensemble:plot_rank_histogram")
    plot_power_spectrum = _forward("xdownscale.diagnostics.plots_ensemble:plot_power_spectrum")


#: Accessor names; ``diag`` is the variable-neutral alias of ``dustdiag`` (same class).
ACCESSORS = (("downscale", DownscaleAccessor), ("dustdiag", DustDiagAccessor),
             ("diag", DustDiagAccessor))

def register() -> None:
    """Register the accessors on Dataset and DataArray (idempotent)."""
    for cls in (xr.Dataset, xr.DataArray):
        for name, acc in ACCESSORS:
            # xarray warns when an accessor name is overridden; register only once, and
            # never over an attribute someone else put there.
            if hasattr(cls, name):
                continue
            register_fn = (xr.register_dataset_accessor if cls is xr.Dataset
                           else xr.register_dataarray_accessor)
            register_fn(name)(acc)
