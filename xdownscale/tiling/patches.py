"""Patch geometry and an on-the-fly patch loader (paper §2.3–2.4).

The models see 16 × 16 patches. :func:`patch_starts` lays the top-left corners on a regular
stride grid and adds a last row/column flush with the border, so every pixel is covered and
no tail is dropped; :func:`cut_patches` cuts them from NumPy or torch arrays in one gather;
:class:`DayPatchDataset` streams shuffled batches while holding only a few days of arrays.

The scripts behind the paper materialised every patch with its 40 lags (hundreds of GB);
here patches are cut from each day's arrays when a batch is needed.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DimensionError
from .cutting import as_starts, check_starts, cut_numpy, cut_torch, positive_int

# DayPatchDataset is built on first access by the module __getattr__ at the bottom.
__all__ = ["patch_starts", "cut_patches", "valid_patch_mask", "DayPatchDataset"]  # noqa: F822


def _patch_starts_1d(*, size: int, patch: int, stride: int, offset: int = 0) -> np.ndarray:
    """Starts along one axis: ``0, offset, offset + stride, ...`` plus ``size - patch`` if
    missed (the 0 only when ``offset > 0``)."""
    if size < patch:
        raise DimensionError(
            f"the image is {size} pixels along an axis but a patch needs {patch}; use a larger "
            "region or a smaller patch"
        )
    starts = np.arange(offset, size - patch + 1, stride, dtype=np.int64)
    if offset > 0:
        starts = np.concatenate([np.zeros(1, np.int64), starts])
    if starts[-1] != size - patch:
        starts = np.append(starts, np.int64(size - patch))
    return starts


def patch_starts(shape: Sequence[int], patch: int = 16, stride: int = 8,
                 offset: Sequence[int] = (0, 0)) -> np.ndarray:
    """Top-left corners of the patches that tile an image.

    Parameters
    ----------
    shape : (int, int)
        Image size ``(ny, nx)``.
    patch : int, default 16
        Patch side in pixels.
    stride : int, default 8
        Step between neighbouring patches (8 for training, 2 for inference in the paper).
    offset : (int, int), default (0, 0)
        Where the regular grid starts along each axis, ``0 <= offset < stride``: a shifted
        layout of the same density (the image's first row/column of patches is kept, so the
        border is still covered).

    Returns
    -------
    ndarray of int64, shape (n, 2)
        ``(y0, x0)`` rows in row-major order. Along each axis the starts are
        ``0, stride, 2 * stride, ...``; when the last one does not end on the border, one more
        start flush with the border is added, so every pixel lies in some patch.

    Raises
    ------
    DimensionError
        If ``shape`` is not two sizes, or the image is smaller than a patch.
    ConfigError
        If ``patch`` or ``stride`` is not a positive integer.

    Examples
    --------
    >>> patch_starts((20, 16), patch=16, stride=8).tolist()
    [[0, 0], [4, 0]]
    """
    patch = positive_int(patch, "patch")
    stride = positive_int(stride, "stride")
    if len(shape) != 2:
        raise DimensionError(f"shape must be (ny, nx), got {tuple(shape)!r}")
    if len(offset) != 2 or not all(isinstance(o, numbers.Integral) and 0 <= o < stride
                                   for o in offset):
        raise ConfigError(f"offset must be two integers in [0, stride={stride}), got {offset!r}")
    ys = _patch_starts_1d(size=int(shape[0]), patch=patch, stride=stride, offset=int(offset[0]))
    xs = _patch_starts_1d(size=int(shape[1]), patch=patch, stride=stride, offset=int(offset[1]))
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1)


def cut_patches(arr, starts, patch: int):
    """Cut square patches out of an array, all at once.

    Parameters
    ----------
    arr : ndarray or torch.Tensor, shape (..., ny, nx)
        Image(s); leading dims (channels, lags...) are carried along.
    starts : array-like of int, shape (n, 2)
        Top-left corners ``(y0, x0)``, e.g. from :func:`patch_starts`.
    patch : int
        Patch side.

    Returns
    -------
    ndarray or torch.Tensor, shape (n, ..., patch, patch)
        A new contiguous array of the same type, dtype and device as ``arr``.

    Raises
    ------
    DimensionError
        If ``arr`` has fewer than two dims or a patch reaches outside the image.
    """
    patch = positive_int(patch, "patch")
    if arr.ndim < 2:
        raise DimensionError(f"arr must have at least 2 dims (..., ny, nx), got {arr.ndim}")
    starts = check_starts(starts, arr.shape, patch)
    if isinstance(arr, np.ndarray):
        return cut_numpy(arr, starts[:, 0], starts[:, 1], patch)
    import torch

    index = torch.as_tensor(starts, device=arr.device)
    return cut_torch(arr, index[:, 0], index[:, 1], patch)


def valid_patch_mask(mask2d, starts, patch: int) -> np.ndarray:
    """Which patches have every pixel valid.

    Parameters
    ----------
    mask2d : array-like of bool, shape (ny, nx)
        True where a pixel is valid.
    starts : array-like of int, shape (n, 2)
        Top-left corners.
    patch : int
        Patch side.

    Returns
    -------
    ndarray of bool, shape (n,)
        True for patches without an invalid pixel.

    Raises
    ------
    DimensionError
        If ``mask2d`` is not 2-D or a patch reaches outside it.
    """
    patch = positive_int(patch, "patch")
    mask = np.asarray(mask2d, dtype=bool)
    if mask.ndim != 2:
        raise DimensionError(f"mask2d must be 2-D (ny, nx), got shape {mask.shape}")
    starts = check_starts(starts, mask.shape, patch)
    # A summed-area table of invalid pixels gives each patch's count in four look-ups, so the
    # cost does not grow with patch area (a sliding-window .all() would be O(n p^2)).
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(~mask, axis=0), axis=1, out=table[1:, 1:])
    y0, x0 = starts[:, 0], starts[:, 1]
    y1, x1 = y0 + patch, x0 + patch
    bad = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    return bad == 0


class _DayPatches:
    """Shuffled batches of patches, cut day by day from a loader function.

    Parameters
    ----------
    days : sequence
        Day labels passed to ``load_day`` (dates, integers...). Batches report a day by its
        position in this sequence.
    load_day : callable
        ``load_day(day) -> dict[str, ndarray (C, ny, nx)]``, plus an optional ``"valid"``
        (ny, nx) bool entry. Every array of a day must share the same (ny, nx).
    starts : array-like of int, shape (n, 2)
        Patch corners (:func:`patch_starts`).
    patch : int, default 16
        Patch side.
    batch_size : int, default 32
        Patches per batch; only the last batch of an epoch may be smaller.
    shuffle : bool, default True
        Shuffle the day order and the patches within each buffer. With False, days come in
        order, patches in row-major order, and a ``patches_per_day`` subset is the same every
        epoch (what a validation stream wants).
    seed : int, default 0
        Seed of every random choice; ``set_epoch`` mixes the epoch into it.
    buffer_days : int, default 4
        Days held in memory at once; patches are shuffled across these days.
    patches_per_day : int, optional
        Draw this many of a day's valid patches (without replacement) instead of all.
    drop_invalid : bool, default True
        Skip patches that touch a pixel that is invalid or NaN in any array of the day.

    Notes
    -----
    Batches are dicts: one float32 tensor (B, C, patch, patch) per array name, ``"day"`` (B,)
    int64 positions in ``days`` and ``"start"`` (B, 2) int64 corners. All patches of a day go
    to the stream of this dataset; keep training and hold-out days in two datasets so that no
    day feeds both (the paper's group-aware split). With ``DataLoader(num_workers=k)`` each
    worker takes every k-th day. Use ``DataLoader(dataset, batch_size=None)``.
    """

    def __init__(
        self,
        days: Sequence[Hashable],
        load_day: Callable[[Any], dict[str, np.ndarray]],
        starts,
        *,
        patch: int = 16,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        buffer_days: int = 4,
        patches_per_day: int | None = None,
        drop_invalid: bool = True,
    ) -> None:
        self.days = list(days)
        self.load_day = load_day
        self.patch = positive_int(patch, "patch")
        self.starts = as_starts(starts)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.buffer_days = positive_int(buffer_days, "buffer_days")
        if patches_per_day is not None:
            patches_per_day = positive_int(patches_per_day, "patches_per_day")
        self.patches_per_day = patches_per_day
        self.drop_invalid = bool(drop_invalid)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose day order and patch order the next iteration uses."""
        self.epoch = int(epoch)

    def n_batches_estimate(self) -> int:
        """Batches per epoch if no patch were dropped as invalid (an upper bound)."""
        per_day = len(self.starts)
        if self.patches_per_day is not None:
            per_day = min(per_day, self.patches_per_day)
        return -(-len(self.days) * per_day // self.batch_size)

    def _day_order(self, rng: np.random.Generator) -> np.ndarray:
        order = rng.permutation(len(self.days)) if self.shuffle else np.arange(len(self.days))
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        return order if info is None else order[info.id :: info.num_workers]

    def _load(self, position: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """One day's float32 arrays and the indices of the patches to use from it."""
        loaded = dict(self.load_day(self.days[position]))
        valid = loaded.pop("valid", None)
        arrays = {k: np.asarray(v, dtype=np.float32) for k, v in loaded.items()}
        for name, a in arrays.items():
            if a.ndim != 3:
                raise DimensionError(
                    f"load_day must return (C, ny, nx) arrays; {name!r} has shape {a.shape}"
                )
        shapes = {a.shape[-2:] for a in arrays.values()}
        if len(shapes) != 1:
            raise DimensionError(f"load_day returned arrays on different grids: {shapes}")
        (shape,) = shapes
        if self.drop_invalid:
            ok = np.ones(shape, bool) if valid is None else np.asarray(valid, bool).copy()
            for a in arrays.values():
                ok &= np.isfinite(a).all(axis=0)
            keep = np.flatnonzero(valid_patch_mask(ok, self.starts, self.patch))
        else:
            check_starts(self.starts, shape, self.patch)
            keep = np.arange(len(self.starts))
        if self.patches_per_day is not None and keep.size > self.patches_per_day:
            # Its own generator per day, so the subset does not depend on buffering.
            epoch = self.epoch if self.shuffle else 0
            rng = np.random.default_rng([self.seed, epoch, position])
            keep = np.sort(rng.choice(keep, self.patches_per_day, replace=False))
        return arrays, keep

    def _cut(self, buffer, positions, entries) -> dict[str, np.ndarray]:
        """Cut the patches ``entries`` ((k, 2): buffer slot, patch index) into one batch."""
        slots, index = entries[:, 0], entries[:, 1]
        batch = {
            name: np.empty((len(entries), a.shape[0], self.patch, self.patch), np.float32)
            for name, a in buffer[slots[0]][0].items()
        }
        for slot in np.unique(slots):  # at most buffer_days iterations
            rows = slots == slot
            corners = self.starts[index[rows]]
            for name, a in buffer[slot][0].items():
                batch[name][rows] = cut_numpy(a, corners[:, 0], corners[:, 1], self.patch)
        batch["day"] = positions[slots]
        batch["start"] = self.starts[index]
        return batch

    def _emit(self, pieces: list[dict[str, np.ndarray]]):
        import torch

        return {k: torch.from_numpy(np.concatenate([p[k] for p in pieces])) for k in pieces[0]}

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = self._day_order(rng)
        pieces: list[dict[str, np.ndarray]] = []  # cut patches waiting for a full batch
        pending = 0
        for first in range(0, len(order), self.buffer_days):
            positions = order[first : first + self.buffer_days]
            buffer = [self._load(p) for p in positions]
            entries = np.concatenate(
                [np.stack([np.full(k.size, s), k], axis=1) for s, (_, k) in enumerate(buffer)]
            ).astype(np.int64)
            if self.shuffle:
                entries = entries[rng.permutation(len(entries))]
            done = 0
            while done < len(entries):
                take = min(self.batch_size - pending, len(entries) - done)
                pieces.append(self._cut(buffer, positions, entries[done : done + take]))
                pending += take
                done += take
                if pending == self.batch_size:
                    yield self._emit(pieces)
                    pieces, pending = [], 0
            # Drop this buffer before loading the next, so only buffer_days days are alive.
            del buffer
        if pending:
            yield self._emit(pieces)


def __getattr__(name: str):
    # DayPatchDataset must subclass torch's IterableDataset (DataLoader dispatches on it), but
    # importing torch for patch_starts/cut_patches on NumPy arrays would cost seconds; build
    # the class on first use instead.
    if name == "DayPatchDataset":
        from torch.utils.data import IterableDataset

        cls = type(
            "DayPatchDataset",
            (_DayPatches, IterableDataset),
            {"__module__": __name__, "__doc__": _DayPatches.__doc__},
        )
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
