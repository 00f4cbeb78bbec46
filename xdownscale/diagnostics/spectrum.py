"""Radially averaged power spectra of daily 2-D fields (the texture of the paper's Figure 9).

Method
------
Each day's map is treated as a plane: the grid spacings in km are those of the WGS84
ellipsoid at the map's central latitude (``dy`` from the meridian degree, ``dx`` from the
parallel degree), which on a region 20 degrees tall puts the km scale of the outer rows a few
per cent off; wavelengths are accurate to that. Before the 2-D FFT the map is detrended
(``"linear"``: the least-squares plane ``a + b y + c x`` is removed, the default, so a
large-scale gradient does not leak into short wavelengths; ``"mean"``: only the mean;
``None``: nothing) and tapered by a separable periodic Hann window (``window="hann"``,
default: the map is not periodic, and the jump between opposite edges of an untapered map
would add a k^-2 tail exactly at the short wavelengths that tell a rough field from a
smooth one; ``window=None`` tapers nothing).

Normalisation: ``|FFT|² / (N² mean(w²))`` per Fourier mode, N pixels and w the window, so
the power summed over all 2-D modes (``total_power``) is the mean square of the detrended,
tapered map divided by the window's mean square: with ``window=None`` and
``detrend="mean"`` it is exactly the map's variance (Parseval). The radial spectrum *sums*
the power of the modes in each annulus ``(i - 1/2) dk <= |k| < (i + 1/2) dk``, ``dk`` the
larger of the two fundamental wavenumbers, for i = 1 up to the largest annulus inside both
Nyquist wavenumbers (the corners beyond it are left out), so a spectrum's bins add up to the
variance at those wavelengths.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..errors import ConfigError
from ._common import LOG_EPS, check_core_unchunked, field, quiet, tag

__all__ = ["power_spectrum", "grid_spacing_km"]

DETRENDS = ("linear", "mean", None)
WINDOWS = ("hann", None)
_A_KM = 6378.137  # WGS84 equatorial radius
_E2 = 0.00669437999014  # WGS84 first eccentricity squared


def grid_spacing_km(lat: np.ndarray, lon: np.ndarray) -> tuple[float, float]:
    """Mean grid spacings ``(dy, dx)`` in km of a regular lat/lon grid at its central latitude.

    Uses the WGS84 meridian and parallel radii of curvature at the mid latitude.
    """
    lat, lon = np.asarray(lat, float), np.asarray(lon, float)
    phi = np.deg2rad(0.5 * (lat.min() + lat.max()))
    w = np.sqrt(1 - _E2 * np.sin(phi) ** 2)
    km_lat = np.pi / 180 * _A_KM * (1 - _E2) / w**3
    km_lon = np.pi / 180 * _A_KM * np.cos(phi) / w
    dlat = abs(lat[-1] - lat[0]) / max(lat.size - 1, 1)
    dlon = abs(lon[-1] - lon[0]) / max(lon.size - 1, 1)
    return float(dlat * km_lat), float(dlon * km_lon)


def _window(n: int) -> np.ndarray:
    """Periodic Hann window (scipy.signal.get_window's default), the spectral-analysis one."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def _radial_bins(ny: int, nx: int, dy: float, dx: float):
    """Annulus index of every 2-D mode ``(ny, nx)``, the annulus width dk and their number."""
    ky, kx = np.fft.fftfreq(ny, d=dy), np.fft.fftfreq(nx, d=dx)
    dk = max(1.0 / (ny * dy), 1.0 / (nx * dx))
    k = np.hypot(ky[:, None], kx[None, :])
    n_bins = int(np.floor(min(0.5 / dy, 0.5 / dx) / dk + 0.5)) - 1
    n_bins = max(n_bins, 1)
    return np.floor(k / dk + 0.5).astype(np.int64), dk, n_bins


def _spectra(z: np.ndarray, *, dy: float, dx: float, detrend: str | None,
             window: str | None, log10: bool = False, eps: float = LOG_EPS):
    """Kernel: radial power ``(..., n_bins)`` and total power ``(...)`` of maps ``(..., ny, nx)``.

    Maps with any non-finite pixel give NaN (a spectrum needs a complete field).
    """
    ny, nx = z.shape[-2:]
    idx, _, n_bins = _radial_bins(ny, nx, dy, dx)
    maps = np.asarray(z, np.float64).reshape(-1, ny, nx)
    if log10:
        maps = np.log10(np.maximum(maps, eps))
    w = np.outer(_window(ny), _window(nx)) if window == "hann" else np.ones((ny, nx))
    y, x = np.meshgrid(np.arange(ny) - (ny - 1) / 2, np.arange(nx) - (nx - 1) / 2,
                       indexing="ij")
    design = np.stack([np.ones(ny * nx), y.ravel(), x.ravel()], axis=1)
    radial = np.full((maps.shape[0], n_bins), np.nan)
    total = np.full(maps.shape[0], np.nan)
    keep = (idx >= 1) & (idx <= n_bins)
    for k, zk in enumerate(maps):
        if not np.isfinite(zk).all():
            continue
        if detrend == "linear":
            coef, *_ = np.linalg.lstsq(design, zk.ravel(), rcond=None)
            zk = zk - (design @ coef).reshape(ny, nx)
        elif detrend == "mean":
            zk = zk - zk.mean()
        power = np.abs(np.fft.fft2(zk * w)) ** 2 / (ny * nx) ** 2 / np.mean(w**2)
        total[k] = power.sum()
        radial[k] = np.bincount(idx[keep] - 1, weights=power[keep], minlength=n_bins)
    return radial.reshape(*z.shape[:-2], n_bins), total.reshape(z.shape[:-2])


def power_spectrum(
    obj: xr.Dataset | xr.DataArray,
    *,
    var: Hashable | None = None,
    detrend: str | None = "linear",
    window: str | None = "hann",
    log10: bool = True,
    eps: float = LOG_EPS,
) -> xr.Dataset:
    """Radially averaged power spectrum of each day's map, and its mean over days.

    See the module notes for the km scale, the detrending, the window and the normalisation.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Daily fields with dims ``time, lat, lon`` on a regular grid (more leading dims, e.g.
        ``member``, are kept; a single map works too).
    var : hashable, optional
        Variable to use; default ``"DUEXTTAU"``.
    detrend : {"linear", "mean", None}
        What to remove from each map before the FFT.
    window : {"hann", None}
        Taper applied after detrending.
    log10 : bool
        Work on ``log10(max(x, eps))``, as the paper's diagnostics do (default).
    eps : float
        Floor before ``log10``.

    Returns
    -------
    xarray.Dataset
        Dim ``wavenumber`` (cycles per km, annulus centres) with coordinate ``wavelength``
        (km). ``power(..., wavenumber)``: each map's power per annulus (units of the field²,
        i.e. (log10 AOD)² by default); ``power_mean(wavenumber)`` its mean over ``time``;
        ``total_power(...)``: power over all 2-D modes. NaN for a map with a missing pixel.
        Attributes ``dy_km``, ``dx_km``, ``dk``. Lazy on dask input.

    Raises
    ------
    ConfigError
        Unknown ``detrend`` or ``window``, or a grid with fewer than 4 pixels a side.
    DimensionError
        ``lat``/``lon`` of a dask-backed input are split into several chunks.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> lat, lon = 20 + 0.0625 * np.arange(32), 30 + 0.0625 * np.arange(32)
    >>> wave = np.sin(2 * np.pi * np.arange(32) / 8)          # 8-pixel wavelength along lon
    >>> da = xr.DataArray(np.broadcast_to(wave, (32, 32)), {"lat": lat, "lon": lon},
    ...                   ("lat", "lon"), name="DUEXTTAU")
    >>> ps = power_spectrum(da, log10=False, detrend="mean", window=None)
    >>> int(np.argmax(ps["power"].values)), round(float(ps["power"].max()), 3)  # ring 4 of 32 px
    (3, 0.5)
    """
    if detrend not in DETRENDS:
        raise ConfigError(f"detrend must be one of {list(DETRENDS)}, got {detrend!r}")
    if window not in WINDOWS:
        raise ConfigError(f"window must be one of {list(WINDOWS)}, got {window!r}")
    da = field(obj, var)
    if da.sizes["lat"] < 4 or da.sizes["lon"] < 4:
        raise ConfigError(
            f"power_spectrum needs at least 4 x 4 pixels, got {da.sizes['lat']} x "
            f"{da.sizes['lon']}"
        )
    check_core_unchunked(da, ("lat", "lon"), "power_spectrum")
    dy, dx = grid_spacing_km(da["lat"].values, da["lon"].values)
    _, dk, n_bins = _radial_bins(da.sizes["lat"], da.sizes["lon"], dy, dx)
    k = dk * np.arange(1, n_bins + 1)
    power, total = xr.apply_ufunc(
        _spectra, da, input_core_dims=[["lat", "lon"]], output_core_dims=[["wavenumber"], []],
        kwargs={"dy": dy, "dx": dx, "detrend": detrend, "window": window,
                "log10": bool(log10), "eps": float(eps)},
        dask="parallelized", output_dtypes=[np.float64, np.float64],
        dask_gufunc_kwargs={"output_sizes": {"wavenumber": n_bins}},
    )
    with quiet():
        coords = {"wavenumber": ("wavenumber", k, {"units": "cycles/km"}),
                  "wavelength": ("wavenumber", 1.0 / k, {"units": "km"})}
    power = power.assign_coords(coords)
    out = xr.Dataset({
        "power": power.assign_attrs(long_name="power per wavenumber annulus"),
        "power_mean": (power.mean("time") if "time" in power.dims else power).assign_attrs(
            long_name="mean power over days"),
        "total_power": total.assign_attrs(long_name="power over all 2-D modes"),
    })
    out = out.drop_vars([c for c in out.coords if c not in ("wavenumber", "wavelength")
                         and c not in out.dims])
    return tag(out, "power_spectrum", variable=str(da.name), detrend=str(detrend),
               window=str(window), dy_km=dy, dx_km=dx, dk=dk,
               transform=f"log10(max(x, {eps:g}))" if log10 else "none")
