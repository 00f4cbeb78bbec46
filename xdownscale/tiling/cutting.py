"""Corner checks and the one gather that cuts ``(n, ..., p, p)`` pieces out of a map.

Shared by :mod:`~xdownscale.tiling.patches` (cutting inputs) and
:mod:`~xdownscale.tiling.stitch` (cutting weights and re-cutting stitched maps); NumPy or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DimensionError

__all__ = ["positive_int", "as_starts", "check_starts", "cut_numpy", "cut_torch"]


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def as_starts(starts: Any) -> np.ndarray:
    """``starts`` as a non-negative (n, 2) int64 array."""
    if hasattr(starts, "detach"):  # a torch tensor
        starts = starts.detach().cpu().numpy()
    starts = np.asarray(starts)
    if starts.ndim != 2 or starts.shape[1] != 2:
        raise DimensionError(f"starts must have shape (n, 2), got {starts.shape}")
    if starts.size and not np.issubdtype(starts.dtype, np.integer):
        raise DimensionError(f"starts must be integers, got dtype {starts.dtype}")
    if (starts < 0).any():
        raise DimensionError("starts must be non-negative (top-left corners inside the image)")
    return starts.astype(np.int64, copy=False)


def check_starts(starts: Any, shape: Sequence[int], patch: int) -> np.ndarray:
    """``starts`` as an (n, 2) int64 array, every patch inside an image of ``shape[-2:]``."""
    starts = as_starts(starts)
    ny, nx = int(shape[-2]), int(shape[-1])
    outside = (starts[:, 0] + patch > ny) | (starts[:, 1] + patch > nx)
    if outside.any():
        bad = starts[np.flatnonzero(outside)[0]].tolist()
        raise DimensionError(
            f"patch start {bad} with patch={patch} reaches outside the {ny} x {nx} image; build "
            "starts with patch_starts(shape, patch=...)"
        )
    return starts


def cut_numpy(arr: np.ndarray, sy: np.ndarray, sx: np.ndarray, patch: int) -> np.ndarray:
    # Spatial axes first so that indexing the window grid yields (n, *lead, p, p) directly.
    moved = np.moveaxis(arr, (-2, -1), (0, 1))
    windows = np.lib.stride_tricks.sliding_window_view(moved, (patch, patch), axis=(0, 1))
    return windows[sy, sx]


def cut_torch(arr, sy, sx, patch: int):
    if arr.device.type == "cpu" and not arr.requires_grad and arr.dtype.is_floating_point:
        # On CPU, torch's advanced indexing of the unfolded view is ~5x slower than NumPy's
        # gather on the same memory; the NumPy result is handed back without a copy.
        import torch

        try:
            view = arr.numpy()
        except TypeError:  # a dtype NumPy lacks (bfloat16): take the torch path
            pass
        else:
            return torch.from_numpy(cut_numpy(view, sy.numpy(), sx.numpy(), patch))
    windows = arr.movedim((-2, -1), (0, 1)).unfold(0, patch, 1).unfold(1, patch, 1)
    return windows[sy, sx]
