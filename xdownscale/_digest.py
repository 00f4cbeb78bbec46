"""Short checksums of arrays and module states (one mechanism, two stored formats).

Shared by the fit's training states and the rollout store's fingerprints. Written by hand
because what is hashed must be fixed byte for byte: the digests are stored in users' rollout
stores and training states and compared on the next run, so neither pickling nor torch's
serialisation (whose bytes may change between releases) can stand in. Each caller picks
whether a header (name, shape, dtype) goes before the bytes; a format once stored is never
changed.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

__all__ = ["feed_array", "feed_state", "hexdigest", "sha256", "tensor_bytes"]


def tensor_bytes(t: torch.Tensor) -> bytes:
    """A tensor's raw bytes in C order, on the CPU, for every dtype (bfloat16 included, which
    NumPy cannot hold) and every shape (0-d included)."""
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def feed_array(h, a, *, header: bool) -> None:
    """Add an array to the hasher ``h``; with ``header`` its dtype and shape go first, so
    arrays with the same bytes but another dtype or shape differ."""
    a = np.ascontiguousarray(np.asarray(a))
    if header:
        h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())


def feed_state(h, state: dict, *, header: bool, sort: bool) -> None:
    """Add a module's ``state_dict()`` to the hasher ``h``, entry by entry: the name (with
    ``header`` also the shape and dtype), then the bytes; ``sort`` orders entries by name."""
    items = sorted(state.items()) if sort else state.items()
    for name, t in items:
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode() if header else name.encode())
        h.update(tensor_bytes(t))


def hexdigest(h) -> str:
    """The 16 hex characters kept of a digest."""
    return h.hexdigest()[:16]


def sha256():
    """A new SHA-256 hasher (the one all digests here use)."""
    return hashlib.sha256()
