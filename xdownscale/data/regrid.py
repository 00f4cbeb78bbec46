"""Regridding onto another object's latitude/longitude grid.

:func:`regrid_like` builds one sparse weight matrix per axis from the two grids' coordinates and
applies them separably, ``Wy @ field @ Wx.T``, to every day at once (kernels in
:mod:`xdownscale.data._regrid_kernels`). Over time it is lazy: dask-backed input gives dask-backed
output through :func:`xarray.apply_ufunc`.

Methods
-------
``"cubic"``
    Keys' bicubic convolution (a = -0.5) to the target pixel centres. Chosen over a cubic
    spline because it is what "bicubic" means in imaging and in the paper, and because its
    4-tap local support means a missing value spoils only its 4 x 4 neighbourhood. On a
    non-uniform grid the slopes come from the local spacings (see
    :func:`~xdownscale.data._regrid_kernels._interp_matrix`), so quadratics are still reproduced.
``"linear"``, ``"nearest"``
    Bilinear and nearest-centre, same machinery.
``"spline"``
    Tensor not-a-knot cubic spline (global support: one NaN spoils its whole row/column).
``"mean"``
    Mean of all native samples whose centres fall in each target pixel (pixel edges halfway
    between target centres). For aggregating a fine grid such as a 30-arc-second DEM to
    0.0625 degrees, where 7.5 samples per side rule out a plain ``coarsen``. NaN-aware.
``"conservative"``
    Area-weighted mean of the overlapping source cells (exact spherical cell areas),
    NaN-aware: the fine-to-coarse operator.

``clamp=True`` clips an interpolation to the range of the four source values around each
target point. Cubic interpolation overshoots beside a sharp peak, and between a dust plume and
a clean background it can go negative, which a later ``log10`` turns into a hole at its
floor; clamped, the field stays between its neighbours (and non-negative), and points that did
not overshoot are unchanged.

xESMF's names ``"bilinear"``, ``"nearest_s2d"`` and ``"conservative_normed"`` are accepted
as aliases of ``"linear"``, ``"nearest"`` and ``"conservative"``. For many fields on the same
pair of grids, build a :class:`Regridder` once: it keeps the weights, as xESMF's does.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import scipy.sparse as sp
import xarray as xr

from .._coords import get_latlon_names
from ..errors import (
    ConfigError,
    DimensionError,
    ExtrapolationError,
    GridMismatchError,
    MissingDependencyError,
    MissingVariableError,
)
from ._regrid_kernels import (
    AGG_METHODS,
    INTERP_METHODS,
    _apply_separable,
    _bin_mean_matrices,
    _bracket,
    _interp_matrix,
    _overlap_matrix,
    cell_edges,
)

__all__ = ["regrid_like", "Regridder", "METHODS", "ALIASES"]

METHODS = INTERP_METHODS + AGG_METHODS
#: xESMF's method names, accepted for ours: ``"bilinear"``, ``"nearest_s2d"`` (source to
#: destination: the nearest source centre), ``"conservative_normed"`` (NaN-aware, as ours).
ALIASES = {"bilinear": "linear", "nearest_s2d": "nearest", "conservative_normed": "conservative"}
_XESMF_METHODS = {"linear": "bilinear", "nearest": "nearest_s2d",
                  "conservative": "conservative_normed"}


def _axis_values(obj: xr.Dataset | xr.DataArray, dim: Hashable, role: str) -> np.ndarray:
    """The 1-D coordinate values along ``dim`` (the dim's own coordinate or a CF 1-D one)."""
    if dim in obj.coords:
        values = obj[dim].values
    else:
        found = [c for c in obj.coords.values() if c.dims == (dim,)]
        if not found:
            raise DimensionError(f"the {role} has a {dim!r} dimension but no coordinate values "
                                 "along it; assign them with .assign_coords")
        values = found[0].values
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise DimensionError(f"the {role}'s {dim!r} coordinate must be 1-D, non-empty and finite")
    step = np.diff(values)
    if values.size > 1 and not (np.all(step > 0) or np.all(step < 0)):
        raise DimensionError(
            f"the {role}'s {dim!r} coordinate is not strictly monotonic (unsorted or duplicated "
            f"values); sort it with .sortby({dim!r}) and drop duplicates first"
        )
    return values


def _check_support(src: np.ndarray, dst: np.ndarray, method: str, axis: str,
                   extrapolate: bool) -> np.ndarray:
    """Boolean mask of the (ascending) destination points/cells inside the source support;
    raise :class:`ExtrapolationError` for any outside unless ``extrapolate``."""
    interp_inner = method in ("cubic", "linear", "spline")
    if interp_inner or src.size < 2:
        lo, hi = src[0], src[-1]
    else:
        e = cell_edges(src)
        lo, hi = e[0], e[-1]
    spacing = np.min(np.abs(np.diff(src))) if src.size > 1 else 1.0
    tol = 1e-6 * spacing
    if method in AGG_METHODS:
        if dst.size < 2:
            raise GridMismatchError(
                f"method={method!r} infers target cell edges from neighbouring centres, so it "
                f"needs at least 2 target {axis} centres (got {dst.size})"
            )
        de = cell_edges(dst)
        inside = (de[:-1] >= lo - tol) & (de[1:] <= hi + tol)
        what, ext = "target cell edges", (de[0], de[-1])
    else:
        inside = (dst >= lo - tol) & (dst <= hi + tol)
        what, ext = "target centres", (dst[0], dst[-1])
    if not inside.all() and not extrapolate:
        bad = dst[~inside]
        support = "outermost source centres" if interp_inner else "source cell edges"
        raise ExtrapolationError(
            f"{int((~inside).sum())} {axis} {what} lie outside the source ({support} "
            f"{lo:.6g}..{hi:.6g}): offending centres {bad.min():.6g}..{bad.max():.6g} "
            f"(target spans {ext[0]:.6g}..{ext[1]:.6g}). Give the source a margin (e.g. "
            "open_merra2(..., pad=1.0)), clip the target, or pass extrapolate=True to get NaN "
            "there. If one grid uses 0-360 longitudes, normalise both with "
            "xdownscale.data.regions.normalize_lonlat."
        )
    return inside


def _axis_matrix(src: np.ndarray, dst: np.ndarray, method: str, axis: str,
                 extrapolate: bool) -> sp.csr_matrix:
    """Weights for one axis, for coordinates in any strictly monotonic order."""
    so, do = np.argsort(src), np.argsort(dst)
    s, d = src[so], dst[do]
    inside = _check_support(s, d, method, axis, extrapolate)
    if method in INTERP_METHODS:
        w = _interp_matrix(s, d, method)
    elif method == "mean":
        w = _bin_mean_matrices(s, d)
        empty = (np.diff(w.indptr) == 0) & inside
        if empty.any():
            raise GridMismatchError(
                f"method='mean' found no source sample centre inside {int(empty.sum())} target "
                f"{axis} pixels (source spacing {np.min(np.diff(s)):.6g}, target spacing "
                f"{np.min(np.diff(d)) if d.size > 1 else float('nan'):.6g}): the source must be "
                "finer than the target. Use method='conservative' or an interpolation instead."
            )
    else:
        se, de = cell_edges(s), cell_edges(d)
        if axis == "latitude":  # a cell edge past a pole would make sin() fold back
            se, de = np.clip(se, -90, 90), np.clip(de, -90, 90)
        w = _overlap_matrix(se, de, latitude=axis == "latitude")
    if method in AGG_METHODS and not inside.all():
        # Partly covered cells are NaN (documented), not means over the covered part.
        w = (sp.diags(inside.astype(float)) @ w).tocsr()
        w.eliminate_zeros()
    # Back to the caller's orders: columns by source position, rows by target position.
    perm_src = sp.csr_matrix((np.ones(s.size), (np.arange(s.size), so)), shape=(s.size, s.size))
    return (w @ perm_src).tocsr()[np.argsort(do)]


def _regrid_dataarray(da: xr.DataArray, lat: Hashable, lon: Hashable, target_coords: dict,
                      wy: sp.csr_matrix, wx: sp.csr_matrix, method: str,
                      keep_attrs: bool, bracket=None) -> xr.DataArray:
    lat_t, lon_t = list(target_coords)
    if da.chunks is not None:
        chunks = dict(zip(da.dims, da.chunks, strict=True))
        if len(chunks[lat]) > 1 or len(chunks[lon]) > 1:
            raise DimensionError(
                f"{da.name!r} is chunked along {lat!r}/{lon!r}; regridding needs whole maps per "
                f"chunk. Rechunk with .chunk({{{lat!r}: -1, {lon!r}: -1}}) (chunk over time "
                "instead)."
            )
    # Coordinates on the source grid do not carry over to the target grid.
    drop = [c for c in da.coords if set(da[c].dims) & {lat, lon}]
    da = da.drop_vars(drop)
    out_dtype = np.result_type(da.dtype, np.float32)
    nan = "skip" if method in AGG_METHODS else "propagate"
    out = xr.apply_ufunc(
        _apply_separable, da,
        input_core_dims=[[lat, lon]], output_core_dims=[[lat_t, lon_t]],
        exclude_dims={lat, lon},
        kwargs={"wy": wy, "wx": wx, "nan": nan, "dtype": out_dtype, "bracket": bracket},
        dask="parallelized", output_dtypes=[out_dtype],
        dask_gufunc_kwargs={"output_sizes": {lat_t: wy.shape[0], lon_t: wx.shape[0]}},
        keep_attrs=keep_attrs,
    )
    # apply_ufunc puts core dims last; keep the source's dim order.
    order = [{lat: lat_t, lon: lon_t}.get(d, d) for d in da.dims]
    out = out.transpose(*order).assign_coords(target_coords)
    out.attrs = {**(da.attrs if keep_attrs else {}), "regrid_method": method}
    if bracket is not None:
        out.attrs["regrid_clamp"] = 1
    return out


def regrid_like(source: xr.Dataset | xr.DataArray, target: xr.Dataset | xr.DataArray,
                method: str = "cubic", *, var: Hashable | None = None,
                extrapolate: bool = False, backend: str = "numpy",
                keep_attrs: bool = True, clamp: bool = False) -> xr.Dataset | xr.DataArray:
    """Regrid ``source`` onto the latitude/longitude grid of ``target``.

    Parameters
    ----------
    source : xarray.Dataset or xarray.DataArray
        Field(s) with latitude/longitude dims (found by name or CF attributes) and any other
        dims (e.g. ``time``). Every data variable with both spatial dims is regridded;
        variables with neither are kept, others dropped. May be dask-backed, but not chunked
        along latitude/longitude.
    target : xarray.Dataset or xarray.DataArray
        Only its latitude/longitude coordinates are used.
    method : {"cubic", "linear", "nearest", "spline", "mean", "conservative"}
        See the module docstring; xESMF's ``"bilinear"``, ``"nearest_s2d"`` and
        ``"conservative_normed"`` are aliases.
    var : hashable, optional
        Regrid only this data variable of a Dataset.
    extrapolate : bool, default False
        Target points (cells for mean/conservative) outside the source support raise by default;
        with True they come out NaN. Support: between the outermost source centres for
        interpolation, within the outer source cell edges for nearest, mean and conservative
        (a target cell must lie wholly inside; partly covered cells are NaN). Longitudes do not
        wrap around the globe.
    backend : {"numpy", "xesmf"}
        ``"numpy"`` needs nothing beyond scipy. ``"xesmf"`` hands linear, nearest and
        conservative to xESMF (needs ESMF from conda-forge).
    keep_attrs : bool, default True
        Copy the source attrs. ``regrid_method`` is always recorded.
    clamp : bool, default False
        Clip an interpolation (cubic, spline; linear and nearest never leave the range) to the
        range of the 2 x 2 source values around each target point (module notes). Not offered
        for ``"mean"``, ``"conservative"`` or the xESMF backend.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same type as ``source``, on ``target``'s latitude/longitude coordinates (values, names
        and attrs), dtype kept for floats (integers become float32/float64), lazy if the input
        was. NaN in the input propagates (interpolation) or is skipped (mean, conservative;
        NaN where no valid sample).

    Raises
    ------
    ExtrapolationError
        A target point lies outside the source support and ``extrapolate`` is False.
    DimensionError
        Missing or non-monotonic latitude/longitude, or chunks along them.
    GridMismatchError
        ``method="mean"`` with a source that is not finer than the target.
    MissingVariableError
        ``var`` is not in ``source``.
    MissingDependencyError
        ``backend="xesmf"`` and xESMF cannot be imported.
    ConfigError
        Unknown method or backend, a method the backend does not offer, or ``clamp`` with
        an aggregating method or the xESMF backend.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> src = xr.DataArray(np.arange(16.0).reshape(4, 4), dims=("lat", "lon"),
    ...                    coords={"lat": [0.0, 1, 2, 3], "lon": [0.0, 1, 2, 3]})
    >>> dst = xr.Dataset(coords={"lat": [1.5], "lon": [0.5, 2.5]})
    >>> regrid_like(src, dst, method="linear").values
    array([[6.5, 8.5]])

    A cubic overshoot beside a peak, and the clamped value:

    >>> spike = xr.DataArray([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], dims="lat",
    ...                      coords={"lat": np.arange(7.0)}).expand_dims(lon=[0.0, 1.0], axis=1)
    >>> at = xr.Dataset(coords={"lat": [1.5], "lon": [0.0]})
    >>> float(regrid_like(spike, at).squeeze()), float(regrid_like(spike, at, clamp=True).squeeze())
    (-0.0625, 0.0)
    """
    method = _method(method)
    if backend not in ("numpy", "xesmf"):
        raise ConfigError(f"unknown regrid backend {backend!r}; expected 'numpy' or 'xesmf'")
    source = _select(source, var)
    if backend == "xesmf":  # xESMF builds its own weights: ours would be computed for nothing
        if clamp:
            raise ConfigError("clamp=True is offered by backend='numpy' only")
        return _regrid_xesmf(source, target, method, keep_attrs)
    return Regridder(source, target, method, extrapolate=extrapolate,
                     clamp=clamp)(source, keep_attrs=keep_attrs)


def _method(method: str) -> str:
    """Our name of ``method`` (xESMF names accepted); ConfigError if unknown."""
    method = ALIASES.get(method, method)
    if method not in METHODS:
        raise ConfigError(f"unknown regrid method {method!r}; expected one of {METHODS} "
                          f"or an xESMF alias {sorted(ALIASES)}")
    return method


def _select(source, var):
    if not isinstance(source, xr.Dataset | xr.DataArray):
        raise TypeError("source and target must be xarray Datasets or DataArrays")
    if var is not None and isinstance(source, xr.Dataset):
        if var not in source.data_vars:
            raise MissingVariableError(f"variable {var!r} not in the source; it has "
                                       f"{sorted(map(str, source.data_vars))}")
        source = source[[var]]
    return source


class Regridder:
    """Regridding weights from one latitude/longitude grid to another, built once.

    The xESMF habit: build the regridder for a pair of grids, then call it on every field on
    the source grid (other variables, other years) without recomputing the weights, which
    :func:`regrid_like` does on each call.

    Parameters
    ----------
    source, target : xarray.Dataset or xarray.DataArray
        Only their latitude/longitude coordinates are used (found by name or CF attributes).
    method : str, default "cubic"
        One of :data:`METHODS` or an xESMF name in :data:`ALIASES`.
    extrapolate, clamp : bool, default False
        As for :func:`regrid_like`.

    Raises
    ------
    ConfigError
        Unknown method, or ``clamp`` with an aggregating method.
    ExtrapolationError, DimensionError, GridMismatchError
        As for :func:`regrid_like`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> src = xr.DataArray(np.arange(16.0).reshape(4, 4), dims=("lat", "lon"),
    ...                    coords={"lat": [0.0, 1, 2, 3], "lon": [0.0, 1, 2, 3]})
    >>> dst = xr.Dataset(coords={"lat": [1.5], "lon": [0.5, 2.5]})
    >>> regridder = Regridder(src, dst, "bilinear")
    >>> regridder
    Regridder(method='linear', (4, 4) -> (1, 2))
    >>> regridder(2 * src).values
    array([[13., 17.]])
    """

    def __init__(self, source, target, method: str = "cubic", *, extrapolate: bool = False,
                 clamp: bool = False):
        method = _method(method)
        if clamp and method not in INTERP_METHODS:
            raise ConfigError(f"clamp=True clips interpolations {INTERP_METHODS}; method "
                              f"{method!r} averages and never leaves the source range")
        if not isinstance(source, xr.Dataset | xr.DataArray) or not isinstance(
                target, xr.Dataset | xr.DataArray):
            raise TypeError("source and target must be xarray Datasets or DataArrays")
        self.method = method
        lat_s, lon_s = get_latlon_names(source)
        lat_t, lon_t = get_latlon_names(target)
        self._ys, self._xs = _axis_values(source, lat_s, "source"), _axis_values(source, lon_s,
                                                                                 "source")
        yt, xt = _axis_values(target, lat_t, "target"), _axis_values(target, lon_t, "target")
        self.weights = (_axis_matrix(self._ys, yt, method, "latitude", extrapolate),
                        _axis_matrix(self._xs, xt, method, "longitude", extrapolate))
        self._target_coords = {lat_t: _target_coord(target, lat_t),
                               lon_t: _target_coord(target, lon_t)}
        self.clamp = bool(clamp)
        # the clamp's 2 x 2 brackets come from the linear weights' columns
        self._bracket = (tuple(_bracket(_axis_matrix(s, t, "linear", ax, extrapolate)) for s, t, ax
                               in ((self._ys, yt, "latitude"), (self._xs, xt, "longitude")))
                         if self.clamp and method in ("cubic", "spline") else None)

    def __repr__(self) -> str:
        (wy, wx) = self.weights
        return (f"Regridder(method={self.method!r}, ({wy.shape[1]}, {wx.shape[1]}) -> "
                f"({wy.shape[0]}, {wx.shape[0]}){', clamped' if self.clamp else ''})")

    def __call__(self, source: xr.Dataset | xr.DataArray, *, var: Hashable | None = None,
                 keep_attrs: bool = True) -> xr.Dataset | xr.DataArray:
        """Regrid ``source`` (on the grid this regridder was built for) to the target grid.

        Parameters and returns as for :func:`regrid_like`.

        Raises
        ------
        GridMismatchError
            ``source`` is not on the grid the weights were built for.
        """
        source = _select(source, var)
        lat_s, lon_s = get_latlon_names(source)
        for dim, ref in ((lat_s, self._ys), (lon_s, self._xs)):
            got = _axis_values(source, dim, "source")
            if got.shape != ref.shape or not np.allclose(got, ref, rtol=0, atol=1e-9):
                raise GridMismatchError(
                    f"this Regridder was built for another {dim!r} grid ({ref.size} values "
                    f"from {ref[0]:g}, got {got.size} from {got[0]:g}); build one for this grid")
        wy, wx = self.weights
        method, coords = self.method, self._target_coords
        if isinstance(source, xr.DataArray):
            return _regrid_dataarray(source, lat_s, lon_s, coords, wy, wx, method, keep_attrs,
                                     self._bracket)
        out_vars = {}
        for name, da in source.data_vars.items():
            spatial = {lat_s, lon_s} & set(da.dims)
            if spatial == {lat_s, lon_s}:
                out_vars[name] = _regrid_dataarray(da, lat_s, lon_s, coords, wy, wx, method,
                                                   keep_attrs, self._bracket)
            elif not spatial:
                out_vars[name] = da
        other = {k: v for k, v in source.coords.items() if not set(v.dims) & {lat_s, lon_s}}
        out = xr.Dataset(out_vars, coords={**other, **coords})
        out.attrs = {**(source.attrs if keep_attrs else {}), "regrid_method": method}
        if self.clamp:
            out.attrs["regrid_clamp"] = 1
        return out


def _target_coord(target: xr.Dataset | xr.DataArray, dim: Hashable) -> xr.Variable:
    if dim in target.coords:
        return target[dim].variable
    coord = next(c for c in target.coords.values() if c.dims == (dim,))
    return xr.Variable((dim,), coord.values, coord.attrs)


def _with_bounds(obj):
    lat, lon = get_latlon_names(obj)
    edges = {f"{d}_b": cell_edges(_axis_values(obj, d, "grid")) for d in (lat, lon)}
    if "lat_b" in obj.coords:
        return obj
    return obj.assign_coords(lat_b=("lat_b", np.clip(edges[f"{lat}_b"], -90, 90)),
                             lon_b=("lon_b", edges[f"{lon}_b"]))


def _regrid_xesmf(source, target, method: str, keep_attrs: bool):
    """Delegate to xESMF (imported here: ESMF is a conda-only dependency)."""
    try:
        import xesmf
    except Exception as exc:  # ImportError, or ESMF failing to load its shared library
        raise MissingDependencyError(
            f"backend='xesmf' needs xESMF, which could not be imported ({exc}). xESMF needs the "
            "ESMF library, which pip cannot install: use `conda install -c conda-forge xesmf`. "
            "backend='numpy' (the default) needs nothing extra and offers every method."
        ) from exc
    if method not in _XESMF_METHODS:
        raise ConfigError(f"backend='xesmf' offers {sorted(_XESMF_METHODS)}, not {method!r}; "
                          "use backend='numpy' for it")
    if method == "conservative":  # xESMF reads cell bounds from lat_b/lon_b
        source, target = _with_bounds(source), _with_bounds(target)
    regridder = xesmf.Regridder(source, target, _XESMF_METHODS[method],
                                unmapped_to_nan=True)
    out = regridder(source, keep_attrs=keep_attrs)
    out.attrs["regrid_method"] = method
    out.attrs["regrid_backend"] = "xesmf"
    return out
