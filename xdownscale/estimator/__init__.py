"""The fitted estimator: configuration, fitting stages, fitted state and checkpoints.

:class:`Downscaler` (``downscaler``) is the face; ``config`` holds :class:`DownscaleConfig`;
``inputs`` turns user Datasets into per-day arrays, ``modules`` builds the networks of a
season, ``stages`` and ``training`` run the two stages, ``fitted`` owns what a fit learns and
``checkpoint`` saves and loads it. Torch is imported only by the modules that need it.
"""

from __future__ import annotations

from importlib import import_module

_LAZY = {"Downscaler": ".downscaler", "DownscaleConfig": ".config"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
