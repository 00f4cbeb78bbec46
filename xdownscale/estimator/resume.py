"""The training state a fit writes after every round, so that an interrupted fit resumes.

A fit of the default configuration on a 25-year record trains for hours on a CPU; a job
killed by a wall-clock limit or a pre-empted node should not start over. With
``fit(..., state_dir=DIR)`` each stage of each season writes ``DIR/<season>/stage_<a|b>.pt``
after every round: the weights, the optimiser, learning-rate schedule and loss-scaler states,
the best weights so far, the early-stopping counters, the learning curve and the random-number
generators' states. A fit given the same folder again continues after the last completed round
and, on the same device, ends with the same weights as a fit that was never interrupted. A
finished stage keeps its final weights and curve only, and is read back instead of trained.

Each file carries the settings and data that decide what its stage learns (its *key*); a
resume whose key differs is refused with :class:`~xdownscale.errors.ConfigError` naming the
difference, so a folder is never continued with another configuration or record.

The files are torch's own format: optimiser and scheduler states are nested dictionaries that
safetensors (used for saved estimators) cannot hold. They are read with
``torch.load(weights_only=True)``, which loads tensors and plain containers only, never code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import _digest
from ..errors import CheckpointError, ConfigError

__all__ = ["STATE_FORMAT", "array_digest", "load_state", "module_digest", "rng_state",
           "save_state", "set_rng_state"]

STATE_FORMAT = "xdownscale-training-state-1"


def array_digest(*arrays) -> str:
    """A short SHA-256 of arrays' dtypes, shapes and bytes (days, scaler values, ...)."""
    h = _digest.sha256()
    for a in arrays:
        _digest.feed_array(h, a, header=True)
    return _digest.hexdigest(h)


def module_digest(module: torch.nn.Module) -> str:
    """A short SHA-256 of a module's state (names, shapes, dtypes and values), e.g. of the
    frozen encoder a stage B builds on."""
    h = _digest.sha256()
    _digest.feed_state(h, module.state_dict(), header=True, sort=False)
    return _digest.hexdigest(h)


def _canonical(key: Mapping) -> dict:
    """``key`` as JSON would give it back (tuples as lists, numpy scalars as numbers), with
    nested mappings flattened to dotted names, so that a refusal names the one setting."""
    flat = {}

    def walk(prefix, mapping):
        for k, v in mapping.items():
            name = f"{prefix}{k}"
            if isinstance(v, Mapping):
                walk(name + ".", v)
            else:
                flat[name] = v
    walk("", key)
    return json.loads(json.dumps(flat, sort_keys=True, default=_json_default))


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def rng_state(device: torch.device) -> dict:
    """The states of torch's generators that training draws from on ``device``."""
    out = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        out["mps"] = torch.mps.get_rng_state()
    return out


def set_rng_state(state: Mapping, device: torch.device) -> None:
    """Restore what :func:`rng_state` returned (a device's generator only on that device)."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"])


def save_state(path: str | os.PathLike, key: Mapping, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` with ``key`` to ``path`` atomically (a sibling temporary file renamed
    into place), so that an interruption while writing leaves the previous round's state."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"format": STATE_FORMAT, "key": json.dumps(_canonical(key), sort_keys=True),
                    **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_state(path: str | os.PathLike, key: Mapping, map_location=None) -> dict | None:
    """The state written to ``path`` by :func:`save_state` with the same ``key``, or None when
    there is no file.

    Raises
    ------
    CheckpointError
        The file is not a training state of this format, or cannot be read.
    ConfigError
        The file was written for another key: names every entry that differs.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, not a torch file, or holding more than tensors
        raise CheckpointError(f"{path} is not a readable training state ({err}); delete it to "
                              "train that stage from the start") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not an xdownscale training state "
                              f"({STATE_FORMAT}); delete it or use another state_dir")
    theirs, ours = json.loads(state["key"]), _canonical(key)
    if theirs != ours:
        diff = [f"{k}: {_short(theirs.get(k))} there, {_short(ours.get(k))} here"
                for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
        raise ConfigError(f"the training state in {path} belongs to another fit ("
                          + "; ".join(diff) + "); use another state_dir, or delete the folder "
                          "to start afresh")
    return state


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
