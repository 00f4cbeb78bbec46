"""Blend overlapping patch predictions into one image (paper §2.4, eq. 4–9).

Each patch keeps its core (a halo of ``h`` pixels dropped on sides not touching the image
border, eq. 4), tapered by a separable window (eq. 5–6); the image is ``S / max(Z, eps)``
(eq. 7–9). Fix to the paper (docs' method page, "A fix to the stitching equations"): eq. 5's Hann window is zero at
both ends, which leaves the image's outer rows and columns with ``Z = 0``; we use the
``N + 2``-point Hann window without its end zeros. Pixels no core covers come out NaN, not 0.

NumPy or torch in, the same out. The scatter is one ``np.bincount`` / ``index_add_`` over
precomputed flat indices; a :class:`StitchPlan` keeps them, so diffusion sampling can fuse
patches at every denoising step cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DimensionError
from .cutting import check_starts, cut_numpy, cut_torch, positive_int

__all__ = ["window_1d", "patch_weights", "stitch", "Stitcher", "StitchPlan"]

_WINDOWS = ("hann", "boxcar")


def window_1d(n: int, window: str = "hann") -> np.ndarray:
    """A taper of length ``n`` that is positive at both ends.

    Parameters
    ----------
    n : int
        Window length (the core length ``N`` of eq. 5).
    window : {"hann", "boxcar"}, default "hann"
        ``"hann"``: the ``n + 2``-point Hann window without its two end zeros, i.e.
        ``w(k) = ½(1 − cos(2π(k + 1)/(n + 1)))``, ``k = 0..n−1``; ``"boxcar"``: all ones
        (a plain mean of the cores).

    Returns
    -------
    ndarray of float64, shape (n,)

    Raises
    ------
    ConfigError
        If ``n`` is not a positive integer or the window is unknown.

    Examples
    --------
    >>> window_1d(3).round(3).tolist()
    [0.5, 1.0, 0.5]
    """
    n = positive_int(n, "n")
    if window == "hann":
        from scipy.signal import windows

        return windows.hann(n + 2, sym=True)[1:-1]
    if window == "boxcar":
        return np.ones(n)
    raise ConfigError(f"window must be one of {_WINDOWS}, got {window!r}")


def _check_halo(patch: int, halo: int) -> int:
    if isinstance(halo, bool) or not isinstance(halo, (int, np.integer)) or halo < 0:
        raise ConfigError(f"halo must be a non-negative integer, got {halo!r}")
    if 2 * halo >= patch:
        raise ConfigError(f"halo={halo} leaves no core in a {patch}-pixel patch; need 2*halo<patch")
    return int(halo)


def _profiles(patch: int, halo: int, window: str) -> np.ndarray:
    """The four 1-D weight profiles (2, 2, patch), indexed by [touches start, touches end]."""
    profiles = np.zeros((2, 2, patch))
    for at_start in (0, 1):
        for at_end in (0, 1):
            lo = 0 if at_start else halo  # eq. 4: no halo on a side touching the border
            hi = patch - (0 if at_end else halo)
            profiles[at_start, at_end, lo:hi] = window_1d(hi - lo, window)
    return profiles


def _border_flags(starts: np.ndarray, shape: Sequence[int], patch: int) -> np.ndarray:
    """(n, 4) int: patch touches the top, bottom, left, right image border."""
    y0, x0 = starts[:, 0], starts[:, 1]
    return np.stack([y0 == 0, y0 + patch == shape[0], x0 == 0, x0 + patch == shape[1]], 1) * 1


def patch_weights(
    starts, shape: Sequence[int], patch: int = 16, halo: int = 4, window: str = "hann"
) -> np.ndarray:
    """The weight ``W_i`` of every patch pixel (eq. 4–6, with the border-positive window).

    Parameters
    ----------
    starts : array-like of int, shape (n, 2)
        Top-left corners (:func:`xdownscale.tiling.patches.patch_starts`).
    shape : (int, int)
        Image size ``(ny, nx)``; decides which patch sides touch the border.
    patch : int, default 16
        Patch side.
    halo : int, default 4
        Pixels dropped on each side that does not touch the image border.
    window : {"hann", "boxcar"}, default "hann"
        Taper over the core (:func:`window_1d`).

    Returns
    -------
    ndarray of float64, shape (n, patch, patch)
        Zero in halos, ``w(n_y; N_row) * w(n_x; N_col)`` on each core.

    Raises
    ------
    ConfigError
        If ``halo`` leaves no core or ``window`` is unknown.
    DimensionError
        If a patch reaches outside the image.
    """
    patch = positive_int(patch, "patch")
    halo = _check_halo(patch, halo)
    starts = check_starts(starts, shape, patch)
    profiles, flags = _profiles(patch, halo, window), _border_flags(starts, shape, patch)
    wy, wx = profiles[flags[:, 0], flags[:, 1]], profiles[flags[:, 2], flags[:, 3]]
    return wy[:, :, None] * wx[:, None, :]


class StitchPlan:
    """Precomputed scatter for one patch layout: stitch and re-cut many times, fast.

    Parameters
    ----------
    starts : array-like of int, shape (n, 2)
        Top-left corners.
    shape : (int, int)
        Image size ``(ny, nx)``.
    patch : int, default 16
        Patch side.
    halo : int, default 4
        Halo per side (zero on sides touching the border).
    window : {"hann", "boxcar"}, default "hann"
        Core taper.
    eps : float, default 1e-12
        Floor of the total weight in eq. 9.

    Attributes
    ----------
    weight : ndarray (ny, nx)
        Total weight ``Z`` per pixel (eq. 8); 0 where no core reaches.
    covered : ndarray of bool (ny, nx)
        ``weight > 0``.

    Examples
    --------
    >>> from xdownscale.tiling.patches import patch_starts
    >>> starts = patch_starts((20, 24), patch=16, stride=4)
    >>> plan = StitchPlan(starts, (20, 24), patch=16, halo=4)
    >>> image, weight = plan.stitch(np.ones((len(starts), 16, 16)))
    >>> bool(np.allclose(image, 1.0))
    True
    """

    def __init__(self, starts, shape: Sequence[int], patch: int = 16, halo: int = 4,
                 window: str = "hann", eps: float = 1e-12) -> None:
        self.patch = positive_int(patch, "patch")
        self.halo = _check_halo(self.patch, halo)
        if len(shape) != 2:
            raise DimensionError(f"shape must be (ny, nx), got {tuple(shape)!r}")
        self.shape = (int(shape[0]), int(shape[1]))
        self.starts = check_starts(starts, self.shape, self.patch)
        self.window = window
        self.eps = float(eps)
        self._source, self._pixel, self._w = self._core_entries()
        npix = self.shape[0] * self.shape[1]
        self.weight = np.bincount(self._pixel, self._w, minlength=npix).reshape(self.shape)
        self.covered = self.weight > 0
        self._torch: dict[Any, dict[str, Any]] = {}

    def _core_entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every core pixel of every patch: its flat position in the (n, p, p) patches, its
        flat position in the image, and its weight.

        Only core pixels are listed: a halo pixel has weight 0, but 0 * NaN would still spoil
        S. Patches fall into at most 16 border layouts, each with one core template, so the
        indices are built by broadcasting per layout instead of searching n * p * p weights.
        """
        p, nx = self.patch, self.shape[1]
        profiles = _profiles(p, self.halo, self.window)
        flags = _border_flags(self.starts, self.shape, p)
        layout = flags @ np.array([8, 4, 2, 1])
        groups = []
        for code in np.unique(layout):
            members = np.flatnonzero(layout == code)
            fy, fx = profiles[tuple(flags[members[0], :2])], profiles[tuple(flags[members[0], 2:])]
            r, c = (g.ravel() for g in np.meshgrid(fy.nonzero()[0], fx.nonzero()[0], indexing="ij"))
            groups.append((members, r, c, fy[r] * fx[c]))
        size = sum(m.size * r.size for m, r, _, _ in groups)
        source, pixel = np.empty(size, np.int64), np.empty(size, np.int64)
        weight = np.empty(size)
        done = 0
        for members, r, c, w in groups:  # fill in place: no per-layout temporaries to join
            rows = slice(done, done + members.size * r.size)
            shape = (members.size, r.size)
            source[rows].reshape(shape)[...] = members[:, None] * (p * p) + (r * p + c)
            corner = self.starts[members, 0] * nx + self.starts[members, 1]
            pixel[rows].reshape(shape)[...] = corner[:, None] + (r * nx + c)
            weight[rows].reshape(shape)[...] = w
            done = rows.stop
        return source, pixel, weight

    def __len__(self) -> int:
        return len(self.starts)

    def _torch_index(self, device, dtype) -> dict[str, Any]:
        """The plan's arrays as tensors on ``device``, made once and cached."""
        import torch

        key = (str(device), dtype)
        if key not in self._torch:
            self._torch[key] = {
                "source": torch.as_tensor(self._source, device=device),
                "pixel": torch.as_tensor(self._pixel, device=device),
                "w": torch.as_tensor(self._w, device=device, dtype=dtype),
                "weight": torch.as_tensor(self.weight, device=device, dtype=dtype),
                "sy": torch.as_tensor(self.starts[:, 0], device=device),
                "sx": torch.as_tensor(self.starts[:, 1], device=device),
            }
        return self._torch[key]

    def _check_patches(self, patches) -> int:
        """Number of channels (0 for (n, p, p) input)."""
        n, p = len(self.starts), self.patch
        if patches.ndim not in (3, 4) or tuple(patches.shape[-2:]) != (p, p):
            raise DimensionError(
                f"patches must be (n, {p}, {p}) or (n, C, {p}, {p}), got {tuple(patches.shape)}"
            )
        if patches.shape[0] != n:
            raise DimensionError(f"got {patches.shape[0]} patches for {n} starts")
        return patches.shape[1] if patches.ndim == 4 else 0

    def _sums(self, patches) -> tuple[Any, Any]:
        """``S`` (C, ny*nx) and ``Z`` (ny*nx) of eq. 7–8, in the input's array type.

        NumPy sums in float64; torch in the patches' dtype, float32 for half precision.
        """
        channels = max(self._check_patches(patches), 1)
        n, pp, npix = len(self.starts), self.patch * self.patch, self.weight.size
        if isinstance(patches, np.ndarray):
            # (C, n * p * p): free for (n, p, p) patches, one copy when there are channels.
            flat = np.moveaxis(patches.reshape(n, channels, pp), 1, 0).reshape(channels, -1)
            sums = np.stack([
                np.bincount(self._pixel, flat[c, self._source] * self._w, minlength=npix)
                for c in range(channels)
            ])
            return sums, self.weight.ravel()
        import torch

        wide = patches.dtype in (torch.float32, torch.float64)  # else sum half floats in fp32
        ix = self._torch_index(patches.device, patches.dtype if wide else torch.float32)
        flat = patches.to(ix["w"].dtype).reshape(n, channels, pp).transpose(0, 1)
        flat = flat.reshape(channels, -1)
        sums = flat.new_zeros(channels, npix)
        sums.index_add_(1, ix["pixel"], flat[:, ix["source"]] * ix["w"])
        return sums, ix["weight"].reshape(-1)

    def stitch(self, patches):
        """Weighted mean of the patch cores (eq. 9).

        Parameters
        ----------
        patches : ndarray or torch.Tensor, shape (n, p, p) or (n, C, p, p)
            One patch per start, in the order of ``starts``.

        Returns
        -------
        image : ndarray or torch.Tensor, shape (ny, nx) or (C, ny, nx)
            ``S / max(Z, eps)``; NaN where ``Z = 0`` or where a covering core is NaN.
        weight : ndarray or torch.Tensor, shape (ny, nx)
            Total weight ``Z``.

        Raises
        ------
        DimensionError
            If the patches do not match the plan.
        """
        sums, weight = self._sums(patches)
        return _finish(sums, weight, self.shape, self.eps, patches.ndim == 4, patches.dtype)

    def cut(self, image):
        """Cut the plan's patches out of an image (the inverse step of a per-step fusion).

        Parameters
        ----------
        image : ndarray or torch.Tensor, shape (ny, nx) or (C, ny, nx)

        Returns
        -------
        ndarray or torch.Tensor, shape (n, p, p) or (n, C, p, p)

        Raises
        ------
        DimensionError
            If the image is not on the plan's grid.
        """
        if image.ndim not in (2, 3) or tuple(image.shape[-2:]) != self.shape:
            raise DimensionError(
                f"image must be {self.shape} or (C, *{self.shape}), got {tuple(image.shape)}"
            )
        if isinstance(image, np.ndarray):
            return cut_numpy(image, self.starts[:, 0], self.starts[:, 1], self.patch)
        ix = self._torch_index(image.device, image.dtype)
        return cut_torch(image, ix["sy"], ix["sx"], self.patch)


def _finish(sums, weight, shape, eps: float, channel_dim: bool, dtype):
    """Eq. 9, NaN where nothing covers a pixel, as images of the patches' float dtype."""
    if isinstance(sums, np.ndarray):
        image = sums / np.maximum(weight, eps)
        image[:, weight == 0] = np.nan
        dtype = np.result_type(dtype, np.float32)
        image, weight = image.astype(dtype, copy=False), weight.astype(dtype)  # weight: a copy
    else:
        image = (sums / weight.clamp_min(eps)).masked_fill(weight == 0, float("nan"))
        dtype = dtype if dtype.is_floating_point else image.dtype
        image, weight = image.to(dtype), weight.to(dtype, copy=True)
    image = image.reshape(-1, *shape)
    return (image if channel_dim else image[0]), weight.reshape(shape)


def stitch(patches, starts, shape: Sequence[int], halo: int = 4, window: str = "hann",
           eps: float = 1e-12):
    """Stitch overlapping patches into one image (paper eq. 4–9, border-positive window).

    Parameters
    ----------
    patches : ndarray or torch.Tensor, shape (n, p, p) or (n, C, p, p)
        Patch predictions, one per start.
    starts : array-like of int, shape (n, 2)
        Top-left corners, in the order of ``patches``.
    shape : (int, int)
        Image size ``(ny, nx)``.
    halo : int, default 4
        Pixels dropped per side, except on sides touching the image border.
    window : {"hann", "boxcar"}, default "hann"
        Core taper (:func:`window_1d`).
    eps : float, default 1e-12
        Floor of the total weight in eq. 9.

    Returns
    -------
    image : same type as ``patches``, shape (ny, nx) or (C, ny, nx)
        Weighted mean of the cores; NaN where no core reaches or a covering core is NaN.
    weight : same type, shape (ny, nx)
        Total weight ``Z`` per pixel.

    Raises
    ------
    DimensionError
        If shapes of patches, starts and image disagree.
    ConfigError
        If ``halo`` or ``window`` is invalid.

    Examples
    --------
    >>> from xdownscale.tiling.patches import patch_starts
    >>> starts = patch_starts((37, 23), patch=16, stride=2)
    >>> image, weight = stitch(np.full((len(starts), 16, 16), 3.0), starts, (37, 23))
    >>> bool(np.allclose(image, 3.0) and (weight > 0).all())
    True
    """
    if patches.ndim not in (3, 4):
        raise DimensionError(f"patches must be (n, p, p) or (n, C, p, p), got {patches.shape}")
    plan = StitchPlan(starts, shape, patch=patches.shape[-1], halo=halo, window=window, eps=eps)
    return plan.stitch(patches)


class Stitcher:
    """Accumulate ``S`` and ``Z`` batch by batch (the paper's mini-batch form of eq. 7–8).

    Parameters
    ----------
    shape : (int, int)
        Image size ``(ny, nx)``.
    patch, halo, window :
        As in :func:`stitch`.
    channels : int, optional
        Expect patches (b, C, p, p) with this C. By default the first batch decides between
        (b, p, p) and (b, C, p, p).
    like : ndarray or torch.Tensor, optional
        Work and return in this array's type, dtype and device; default: the first batch's.
    eps : float, default 1e-12
        Floor of the total weight in eq. 9.

    Notes
    -----
    The result does not depend on how the patches are split into batches or ordered (up to
    floating-point rounding of the sums).
    """

    def __init__(self, shape: Sequence[int], patch: int = 16, halo: int = 4,
                 window: str = "hann", channels: int | None = None, like=None,
                 eps: float = 1e-12) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.patch = positive_int(patch, "patch")
        self.halo = _check_halo(self.patch, halo)
        window_1d(1, window)  # fail now on an unknown window, not at the first batch
        self.window = window
        self.channels = None if channels is None else positive_int(channels, "channels")
        self.like = like
        self.eps = float(eps)
        self._sums = self._weight = self._dtype = None
        self._layout: tuple | None = None  # patches.shape[1:] of the first batch

    def add(self, patches, starts) -> None:
        """Add a batch of patches with their corners.

        Parameters
        ----------
        patches : ndarray or torch.Tensor, shape (b, p, p) or (b, C, p, p)
        starts : array-like of int, shape (b, 2)

        Raises
        ------
        DimensionError
            If the batch does not match the image, the patch size or earlier batches.
        """
        if self.channels is not None and (patches.ndim != 4 or patches.shape[1] != self.channels):
            raise DimensionError(f"expected {self.channels} channels, got patches {patches.shape}")
        if self._layout is not None and tuple(patches.shape[1:]) != self._layout:
            raise DimensionError(f"batches must all be (b, *{self._layout}); got {patches.shape}")
        if self.like is not None:
            patches = _like(patches, self.like)
        plan = StitchPlan(starts, self.shape, self.patch, self.halo, self.window, self.eps)
        sums, weight = plan._sums(patches)
        if self._sums is None:
            self._sums, self._weight = sums, weight
            self._layout, self._dtype = tuple(patches.shape[1:]), patches.dtype
        else:
            self._sums, self._weight = self._sums + sums, self._weight + weight

    def result(self):
        """The stitched image and total weight so far.

        Returns
        -------
        image : shape (ny, nx) or (C, ny, nx)
            NaN where no core has been added.
        weight : shape (ny, nx)
        """
        if self._sums is None:  # nothing added yet: every pixel uncovered
            npix = self.shape[0] * self.shape[1]
            sums, weight = np.zeros((self.channels or 1, npix)), np.zeros(npix)
            if self.like is not None:
                sums, weight = _like(sums, self.like), _like(weight, self.like)
            return _finish(sums, weight, self.shape, self.eps, self.channels is not None,
                           sums.dtype)
        return _finish(self._sums, self._weight, self.shape, self.eps, len(self._layout) == 3,
                       self._dtype)


def _like(arr, like):
    """``arr`` as the array type, dtype and device of ``like``."""
    if isinstance(like, np.ndarray):
        if not isinstance(arr, np.ndarray):
            arr = arr.detach().cpu().numpy()
        return arr.astype(like.dtype, copy=False)
    import torch

    return torch.as_tensor(arr).to(device=like.device, dtype=like.dtype)
