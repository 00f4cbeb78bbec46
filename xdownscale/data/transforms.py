"""Value transforms: the ``log10`` of dust AOD and the train-only scalers.

The paper models ``log10(max(x, 1e-6))`` rescaled with statistics pooled over the training
days only (paper section 2.3; the docs' method page). Every function here accepts xarray objects
(attrs kept, lazy on dask), NumPy arrays and torch tensors, so the same code serves the data
pipeline and the models.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import xarray as xr

from .._coords import ensure_dataarray
from ..errors import ConfigError, NegativeValueError, NotFittedError, ScalingError

__all__ = [
    "log10_transform",
    "inverse_log10",
    "check_nonnegative",
    "Scaler",
    "ScalingError",
    "SCALER_KINDS",
]

#: Kinds of :class:`Scaler`.
SCALER_KINDS = ("minmax", "zscore")


def _is_torch(x: Any) -> bool:
    # Checked by module name so that importing xdownscale never imports torch.
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _map_numeric(ds: xr.Dataset, func, **kwargs) -> xr.Dataset:
    """Apply ``func`` to each numeric data variable, keeping the attrs ``func`` sets.

    (``Dataset.map`` would copy the old variable attrs back over the new units.)
    Non-numeric variables such as time bounds are left untouched.
    """
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if var.dtype.kind in "iuf":
            out[name] = func(var, **kwargs)
    return out


def _units_of(attrs: dict) -> str:
    units = str(attrs.get("units", "")).strip()
    return units if units else "1"


# --------------------------------------------------------------------------- log10


def _log10(x: Any, eps: float) -> Any:
    """Kernel: ``log10(max(x, eps))`` on NumPy, dask or torch; NaN stays NaN."""
    if _is_torch(x):
        import torch

        # torch.clamp_min propagates NaN (unlike a masked assignment would).
        return torch.log10(torch.clamp_min(x, eps))
    # np.maximum propagates NaN and dispatches lazily to dask arrays.
    return np.log10(np.maximum(x, eps))


def _pow10(x: Any) -> Any:
    """Kernel: ``10 ** x`` on NumPy, dask or torch."""
    if _is_torch(x):
        import torch

        return torch.pow(10.0, x)
    # A Python float base keeps float32 input float32 (NEP 50) and stays lazy on dask.
    return np.power(10.0, x)


def log10_transform(x: Any, eps: float = 1e-6) -> Any:
    """``log10(max(x, eps))`` of an xarray object, NumPy array or torch tensor.

    Values below ``eps`` (zeros, round-off negatives) are clamped to ``eps`` first, so the
    result is finite for every non-missing input; NaN stays NaN. The transform is pure: it
    does not reject clearly negative AOD, use :func:`check_nonnegative` for that.

    Parameters
    ----------
    x : xarray.DataArray, xarray.Dataset, numpy.ndarray, dask array or torch.Tensor
        Non-negative data. Datasets are transformed variable by variable (numeric ones).
    eps : float, default 1e-6
        Floor applied before the logarithm (the paper's value).

    Returns
    -------
    same type as ``x``
        ``log10(max(x, eps))``. xarray input keeps its attrs and dask backing; ``units``
        becomes ``"log10(<units>)"`` (``"log10(1)"`` for unitless data) and ``log10_eps``
        records ``eps``.

    Raises
    ------
    ConfigError
        If ``eps`` is not a positive finite number.

    Examples
    --------
    >>> log10_transform(np.array([0.0, 0.01, 1.0]))
    array([-6., -2.,  0.])
    """
    eps = _check_eps(eps)
    if isinstance(x, xr.Dataset):
        return _map_numeric(x, log10_transform, eps=eps)
    if isinstance(x, xr.DataArray):
        out = xr.apply_ufunc(_log10, x, kwargs={"eps": eps}, dask="allowed", keep_attrs=True)
        out.attrs["units"] = f"log10({_units_of(x.attrs)})"
        out.attrs["log10_eps"] = eps
        return out
    return _log10(x if _is_torch(x) or hasattr(x, "dtype") else np.asarray(x), eps)


def inverse_log10(x: Any) -> Any:
    """Undo :func:`log10_transform`: ``10 ** x``.

    Values that were clamped to ``eps`` come back as ``eps``, not as the original value.

    Parameters
    ----------
    x : xarray.DataArray, xarray.Dataset, numpy.ndarray, dask array or torch.Tensor
        Data in ``log10`` units.

    Returns
    -------
    same type as ``x``
        ``10 ** x``; on xarray input ``units`` ``"log10(U)"`` becomes ``"U"`` again and the
        ``log10_eps`` attr is dropped.

    Examples
    --------
    >>> inverse_log10(np.array([-2.0, 0.0]))
    array([0.01, 1.  ])
    """
    if isinstance(x, xr.Dataset):
        return _map_numeric(x, inverse_log10)
    if isinstance(x, xr.DataArray):
        out = xr.apply_ufunc(_pow10, x, dask="allowed", keep_attrs=True)
        units = str(x.attrs.get("units", ""))
        if units.startswith("log10(") and units.endswith(")"):
            out.attrs["units"] = units[len("log10(") : -1]
        out.attrs.pop("log10_eps", None)
        return out
    return _pow10(x if _is_torch(x) or hasattr(x, "dtype") else np.asarray(x, dtype=float))


def _check_eps(eps: float) -> float:
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ConfigError(f"eps must be a positive number, got {eps!r}") from None
    if not (math.isfinite(eps) and eps > 0):
        raise ConfigError(f"eps must be a positive finite number, got {eps!r}")
    return eps


# --------------------------------------------------------------------------- validation


#: Values down to ``-NEGATIVE_TOL`` are round-off of packed data, not negative AOD: every
#: check of the package (opening, fitting, predicting, transforming) uses this one tolerance.
NEGATIVE_TOL = 1e-5


def negative_value_error(what: str, minimum: float, count: int | None = None,
                         tol: float = NEGATIVE_TOL) -> NegativeValueError:
    """The one error for negative values: what, how many, the minimum, and what to do."""
    many = f"{count} value(s) below -{tol:g}" if count is not None else f"values below -{tol:g}"
    return NegativeValueError(
        f"{what} has {many} (minimum {minimum:.6g}); dust AOD must be non-negative. Check the "
        "variable and its scale_factor/add_offset, mask retrieval artefacts, or clip known "
        "round-off with .clip(min=0) before downscaling."
    )


def _check_block(block: np.ndarray, tol: float, what: str = "the data") -> np.ndarray:
    bad = block < -tol  # NaN compares False, so missing values pass
    if bad.any():
        raise negative_value_error(what, float(np.nanmin(block)), int(bad.sum()), tol)
    return block


def check_nonnegative(obj: Any, *, tol: float = NEGATIVE_TOL, var: Any = None,
                      what: str = "the data") -> Any:
    """Reject clearly negative values (invalid AOD); NaN is allowed.

    Small negatives down to ``-tol`` (round-off of packed data) pass; :func:`log10_transform`
    clamps them to its ``eps``.

    Parameters
    ----------
    obj : xarray.DataArray, xarray.Dataset, numpy.ndarray or torch.Tensor
        Data to check. For a Dataset, ``var`` (default ``"DUEXTTAU"``, or the only variable)
        is checked.
    tol : float, default 1e-5
        Values below ``-tol`` are errors (10 times the default ``log10`` floor).
    var : hashable, optional
        Variable of a Dataset to check.
    what : str, default "the data"
        How the error message names the input.

    Returns
    -------
    same type as ``obj``
        NumPy-backed input is checked now and returned unchanged. Dask-backed input is not
        computed: the check is inserted in the graph (per chunk) and the returned object
        raises when it is computed.

    Raises
    ------
    NegativeValueError
        If a value is below ``-tol`` (immediately for in-memory data, at compute time for
        dask-backed data).
    """
    if isinstance(obj, (xr.Dataset, xr.DataArray)):
        arr = ensure_dataarray(obj, var)
        if _is_dask(arr.data):
            checked = arr.copy(data=arr.data.map_blocks(_check_block, tol, what, dtype=arr.dtype))
            return obj.assign({arr.name: checked}) if isinstance(obj, xr.Dataset) else checked
        _check_block(np.asarray(arr.data), tol, what)
        return obj
    if _is_torch(obj):
        _check_block(obj.detach().cpu().numpy(), tol, what)
        return obj
    if _is_dask(obj):
        return obj.map_blocks(_check_block, tol, what, dtype=obj.dtype)
    _check_block(np.asarray(obj), tol, what)
    return obj


def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask") and hasattr(x, "map_blocks")


# --------------------------------------------------------------------------- Scaler


def _raw(x: Any) -> Any:
    """The array under an xarray/torch object: NumPy or dask, never computed here."""
    if isinstance(x, xr.Dataset):
        raise TypeError("pass DataArrays (e.g. ds['DUEXTTAU']) to Scaler.fit, not a Dataset")
    if isinstance(x, xr.DataArray):
        return x.data
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return x if _is_dask(x) else np.asarray(x)


def _partial_stats(arr: Any, kind: str) -> tuple:
    """Per-array reductions (lazy on dask) of the valid values: ``(count, a, b)`` with
    ``a, b = min, max`` for ``"minmax"`` and ``mean, M2`` (sum of squared deviations) for
    ``"zscore"``; only what the kind needs, so a min-max fit reads the data once.

    Pooled moments are merged afterwards with Chan et al.'s pairwise update rather than
    from sums of squares, which lose precision when the mean is large against the spread.
    """
    count = (~np.isnan(arr)).sum()
    if kind == "minmax":
        return count, np.nanmin(arr), np.nanmax(arr)
    mean = np.nanmean(arr, dtype=np.float64)
    return count, mean, np.nansum((arr.astype(np.float64) - mean) ** 2)


def _merge(stats: list[tuple], kind: str) -> tuple[int, float, float]:
    """Pool the per-array reductions into ``(n, offset, scale)``."""
    n, a, b = 0, math.inf, -math.inf  # running min, max for minmax
    if kind == "zscore":
        a, b = 0.0, 0.0  # running mean, M2
    for count, x, y in stats:
        count = int(count)
        if count == 0:
            continue
        if kind == "minmax":
            a, b = min(a, float(x)), max(b, float(y))
        else:
            total = n + count
            delta = float(x) - a
            a += delta * count / total
            b += float(y) + delta * delta * n * count / total
        n += count
    if kind == "minmax":
        return n, a, b - a
    return n, a, math.sqrt(b / n) if n else math.nan


class Scaler:
    """Affine scaler ``(x - offset_) / scale_`` fitted on pooled training values.

    Parameters
    ----------
    kind : {"minmax", "zscore"}, default "minmax"
        ``"minmax"`` maps the pooled range to [0, 1] (offset = min, scale = max - min);
        ``"zscore"`` uses the pooled mean and population standard deviation (ddof=0).

    Attributes
    ----------
    offset_, scale_ : float
        Set by :meth:`fit` (or :meth:`from_dict`).
    n_ : int
        Number of valid values the statistics were pooled from.

    Raises
    ------
    ConfigError
        If ``kind`` is not one of :data:`SCALER_KINDS`.

    Examples
    --------
    >>> s = Scaler("minmax").fit(np.array([1.0, 3.0]), np.array([2.0, np.nan]))
    >>> s.offset_, s.scale_
    (1.0, 2.0)
    >>> s.transform(np.array([2.0]))
    array([0.5])
    """

    def __init__(self, kind: str = "minmax") -> None:
        if kind not in SCALER_KINDS:
            raise ConfigError(f"Scaler kind must be one of {SCALER_KINDS}, got {kind!r}")
        self.kind = kind

    def __repr__(self) -> str:
        if not self.is_fitted:
            return f"Scaler(kind={self.kind!r}, not fitted)"
        return f"Scaler(kind={self.kind!r}, offset={self.offset_:.6g}, scale={self.scale_:.6g})"

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_dict`) has set ``offset_`` and ``scale_``."""
        return hasattr(self, "offset_") and hasattr(self, "scale_")

    def fit(self, *arrays: Any) -> Scaler:
        """Pool every valid value of ``arrays`` and set ``offset_`` and ``scale_``.

        All pixels, days and products given are pooled into one pair of numbers (the paper
        pools "all training pixels across days and variables"). Dask-backed inputs are
        reduced in a single ``dask.compute`` call for all arrays together.

        Parameters
        ----------
        *arrays : xarray.DataArray, numpy.ndarray, dask array or torch.Tensor
            Training values; NaN is ignored.

        Returns
        -------
        Scaler
            ``self``, fitted.

        Raises
        ------
        ConfigError
            If no array is given.
        ScalingError
            If there is no valid value, the data is constant (zero range or zero standard
            deviation), or a statistic is infinite.
        """
        import dask

        if not arrays:
            raise ConfigError("Scaler.fit needs at least one array")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # All-NaN inputs warn in nanmin/nanmean; they simply contribute no values.
            warnings.simplefilter("ignore", RuntimeWarning)
            parts = [_partial_stats(_raw(a), self.kind) for a in arrays]
            (parts,) = dask.compute(parts)  # one compute for every array (no-op on NumPy)
        n, offset, scale = _merge(parts, self.kind)
        if n == 0:
            raise ScalingError("cannot fit a Scaler: every value given is NaN")
        if not (math.isfinite(offset) and math.isfinite(scale)):
            raise ScalingError(
                f"cannot fit a {self.kind} Scaler: the data holds infinite values "
                f"(offset {offset}, scale {scale}); mask them as NaN first"
            )
        if scale <= 0:
            raise ScalingError(
                f"cannot fit a {self.kind} Scaler: all {n} valid values equal {offset:.6g}, so the "
                "scale would be zero. Fit on more days or a larger region."
            )
        self.offset_, self.scale_, self.n_ = float(offset), float(scale), int(n)
        return self

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                "this Scaler is not fitted yet; call .fit(training arrays) or "
                "Scaler.from_dict(saved) first"
            )

    def transform(self, x: Any) -> Any:
        """Scale ``x``: ``(x - offset_) / scale_``.

        Parameters
        ----------
        x : xarray object, numpy.ndarray, dask array or torch.Tensor
            Values in the fitted units. Attrs, dtype (float32 stays float32), device and dask
            backing are kept.

        Returns
        -------
        same type as ``x``

        Raises
        ------
        NotFittedError
            If the scaler is not fitted.
        """
        self._check_fitted()
        return self._affine(x, -self.offset_, 1.0 / self.scale_, shift_first=True)

    def inverse_transform(self, x: Any) -> Any:
        """Undo :meth:`transform`: ``x * scale_ + offset_``.

        Parameters
        ----------
        x : xarray object, numpy.ndarray, dask array or torch.Tensor
            Scaled values.

        Returns
        -------
        same type as ``x``

        Raises
        ------
        NotFittedError
            If the scaler is not fitted.
        """
        self._check_fitted()
        return self._affine(x, self.offset_, self.scale_, shift_first=False)

    def fit_transform(self, x: Any) -> Any:
        """Fit on ``x`` alone and return ``transform(x)``."""
        return self.fit(x).transform(x)

    @staticmethod
    def _affine(x: Any, shift: float, factor: float, *, shift_first: bool) -> Any:
        def kernel(a):
            # Python floats keep float32 arrays float32 (NEP 50) and work on any device.
            return (a + shift) * factor if shift_first else a * factor + shift

        if isinstance(x, (xr.DataArray, xr.Dataset)):
            with xr.set_options(keep_attrs=True):
                return kernel(x)
        if not _is_torch(x) and not hasattr(x, "dtype"):
            x = np.asarray(x, dtype=float)
        return kernel(x)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (``kind``, ``offset``, ``scale``, ``n``).

        Raises
        ------
        NotFittedError
            If the scaler is not fitted.
        """
        self._check_fitted()
        return {"kind": self.kind, "offset": self.offset_, "scale": self.scale_,
                "n": getattr(self, "n_", None)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        """Rebuild a fitted scaler from :meth:`to_dict` output.

        Raises
        ------
        ConfigError
            If keys are missing or the scale is not a positive finite number.
        """
        try:
            scaler = cls(d["kind"])
            offset, scale = float(d["offset"]), float(d["scale"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(
                f"not a saved Scaler (need kind, offset, scale): {d!r} ({err})"
            ) from None
        if not (math.isfinite(offset) and math.isfinite(scale) and scale > 0):
            raise ConfigError(f"saved Scaler has invalid offset/scale: {offset}, {scale}")
        scaler.offset_, scaler.scale_ = offset, scale
        if d.get("n") is not None:
            scaler.n_ = int(d["n"])
        return scaler
