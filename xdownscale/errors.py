"""The xdownscale exception family.

Every error the library raises on purpose derives from :class:`XDownscaleError`, so a
caller can catch the whole family at once, and each subclass also derives from the
built-in exception a Python user would expect (``ValueError``, ``KeyError``...), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "XDownscaleError",
    "MissingVariableError",
    "DimensionError",
    "TimeAxisError",
    "GridMismatchError",
    "RegionError",
    "NegativeValueError",
    "UnitsError",
    "ExtrapolationError",
    "LagWindowError",
    "NotFittedError",
    "CheckpointError",
    "ConfigError",
    "MissingDependencyError",
    "NonFiniteLossError",
    "ScalingError",
    "XDownscaleWarning",
]


class XDownscaleError(Exception):
    """Base class of every error raised by xdownscale."""


class MissingVariableError(XDownscaleError, KeyError):
    """A required data variable is not in the Dataset."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class DimensionError(XDownscaleError, ValueError):
    """Dimensions or coordinates are missing, misnamed or of the wrong shape."""


class TimeAxisError(XDownscaleError, ValueError):
    """The time axis is not strictly increasing, has duplicates, or has gaps where none may be."""


class GridMismatchError(XDownscaleError, ValueError):
    """Two objects that must share a grid do not."""


class RegionError(XDownscaleError, ValueError):
    """A region is unknown, malformed, or the data does not cover it."""


class NegativeValueError(XDownscaleError, ValueError):
    """A quantity that must be non-negative (AOD) has negative values."""


class UnitsError(XDownscaleError, ValueError):
    """Units are missing where required, unknown, or not convertible."""


class ExtrapolationError(XDownscaleError, ValueError):
    """A target point lies outside the support of the source grid."""


class LagWindowError(XDownscaleError, ValueError):
    """A lag window would need a day that is not in the record."""


class NotFittedError(XDownscaleError, AttributeError):
    """An estimator method needs ``fit`` to have been called first."""


class CheckpointError(XDownscaleError, OSError):
    """A saved estimator is missing, corrupt, truncated or incompatible."""


class ConfigError(XDownscaleError, ValueError):
    """A configuration value or file is invalid."""


class MissingDependencyError(XDownscaleError, ImportError):
    """An optional dependency is needed for this call but cannot be imported."""


class NonFiniteLossError(XDownscaleError, FloatingPointError):
    """The training or validation loss became NaN or infinite."""


class ScalingError(XDownscaleError, ValueError):
    """Data cannot be scaled: no valid value, constant, or infinite."""


class XDownscaleWarning(UserWarning):
    """Something worked but the result may not be what you want (e.g. a rollout drifting away
    from its coarse driver); the message says what was measured and what to try."""
