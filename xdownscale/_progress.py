"""Progress bars shared by training, prediction and rollout (not public).

Bars are drawn by ``tqdm.auto`` (a widget in Jupyter, text elsewhere) whenever ``verbose`` is
true, whether or not stderr is a terminal: a notebook, a batch job's log file and ``nohup``
are exactly where a user needs to see that a long phase is moving and how long it has left.
Off a terminal the bar is redrawn at most every :data:`LOG_INTERVAL` seconds, so a log file
gets a line now and then rather than a flood of carriage returns.

Switch every bar off with ``verbose=False`` (the config field) or, without touching code, with
the environment variable ``XDOWNSCALE_PROGRESS=0``.
"""

from __future__ import annotations

import os
import sys

ENV = "XDOWNSCALE_PROGRESS"

#: Seconds between redraws when stderr is not a terminal.
LOG_INTERVAL = 10.0

_OFF = ("0", "false", "no", "off")


def enabled(verbose: bool = True) -> bool:
    """Whether progress is shown: ``verbose``, unless ``$XDOWNSCALE_PROGRESS`` switches it off."""
    return bool(verbose) and os.environ.get(ENV, "").strip().lower() not in _OFF


def bar(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it",
        verbose: bool = True, leave: bool = False, initial: int = 0):
    """A ``tqdm.auto`` bar (disabled unless :func:`enabled`) with an ETA."""
    from tqdm.auto import tqdm

    # A terminal or a notebook widget redraws in place; a log file keeps every redraw, so it
    # gets few of them and keeps each finished bar as a record of how long the phase took.
    live = _isatty(sys.stderr) or "ipykernel" in sys.modules
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave or not live,
                initial=initial, disable=not enabled(verbose), file=sys.stderr,
                mininterval=0.1 if live else LOG_INTERVAL, dynamic_ncols=live)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
