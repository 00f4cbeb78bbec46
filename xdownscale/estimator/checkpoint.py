"""Saving and loading a fitted :class:`~xdownscale.Downscaler` without pickle.

A saved estimator is a directory:

* ``manifest.json`` — the format and its version, and a SHA-256 of every other file;
* ``estimator.json`` — package version, model kind, variable, seasons, the config, the
  scalers, the covariate spec, the grids and the split days;
* ``<season>.safetensors`` — the weights of each season's modules (safetensors: no code runs
  on load);
* ``static.safetensors`` — the elevation map on the fine grid;
* ``training_log.csv`` — the learning curves (``est.training_log_``; saves of 0.1 call it ``history.csv``);
* ``validation.csv`` — the validation days scored beside the interpolation baselines.

Loading refuses a directory without a manifest or a format version, of a version this package
does not know, any of whose files is missing, truncated or altered (checksum: the scalers and
config in the JSON move predictions as much as the weights do), or whose tensors do not fit
the architecture the config describes.

``save`` writes everything into a sibling temporary folder and renames it into place, so a
failure half-way leaves an earlier save at the same path untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import CheckpointError, XDownscaleWarning
from .fitted import FittedState

FORMAT = "xdownscale-estimator"
FORMAT_VERSION = 2  # 2: manifest.json covers every file, estimator.json included
_META = "estimator.json"
_MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(est, path) -> None:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save to {path}: it is a file")
    if path.is_dir() and any(path.iterdir()) and not (
            (path / _MANIFEST).is_file() or (path / _META).is_file()):
        raise CheckpointError(f"cannot save to {path}: the folder holds other files and is not a "
                              "saved Downscaler; give a new or empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.saving-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write(est, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Swap the folders: the earlier save stays whole until the new one is complete.
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _write(est, path: Path) -> None:
    import torch
    from safetensors.torch import save_file, save_model

    from .. import __version__

    for season, module in est.modules_.items():
        # save_model drops the aliases (the frozen encoder shares its tensors with the small
        # model) that plain save_file refuses.
        save_model(module, str(path / f"{season}.safetensors"))
    save_file({"elevation": torch.from_numpy(np.ascontiguousarray(est.elevation_))},
              str(path / "static.safetensors"))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xdownscale_version": __version__,
        "model": est.model,
        **FittedState.of(est).to_dict(),
    }
    est.training_log_.reset_index().to_csv(path / "training_log.csv", index=False)
    if getattr(est, "validation_", None) is not None:
        est.validation_.reset_index().to_csv(path / "validation.csv", index=False)
    (path / _META).write_text(json.dumps(meta, indent=1))
    files = {p.name: _sha256(p) for p in sorted(path.iterdir()) if p.is_file()}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "xdownscale_version": __version__, "files": files}
    (path / _MANIFEST).write_text(json.dumps(manifest, indent=1))


def _read_manifest(path: Path) -> dict:
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a saved Downscaler: no such folder")
    if not (path / _MANIFEST).is_file():
        if (path / _META).is_file():
            raise CheckpointError(
                f"{path} has no {_MANIFEST}: it was saved by an older xdownscale (format 1), "
                f"whose {_META} carries no checksum, or the manifest was removed. Load it with "
                "the xdownscale that wrote it and save it again, or refit.")
        raise CheckpointError(f"{path} is not a saved Downscaler: {_MANIFEST} is missing")
    try:
        manifest = json.loads((path / _MANIFEST).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path / _MANIFEST} is corrupt: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise CheckpointError(f"{path} holds format {got!r}, not {FORMAT!r}")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(f"{path / _MANIFEST} has no valid format_version ({version!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by xdownscale {manifest.get('xdownscale_version')} in format "
            f"version {version}; this xdownscale reads version {FORMAT_VERSION}. "
            "Upgrade xdownscale to load it."
        )
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} is in format version {version}, which this xdownscale "
                              f"does not read (it reads {FORMAT_VERSION}); refit or re-save it")
    files = manifest.get("files")
    if not isinstance(files, dict) or _META not in files:
        raise CheckpointError(f"{path / _MANIFEST} lists no checksums for the saved files")
    return files


def _read_meta(path: Path) -> dict:
    files = _read_manifest(path)
    for name, digest in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f} is missing from the saved estimator")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f} is corrupt or truncated, or was edited (checksum mismatch)")
    try:
        meta = json.loads((path / _META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # pragma: no cover - checksummed
        raise CheckpointError(f"{path / _META} is corrupt: {err}") from None
    return meta


def _read_log(path: Path) -> pd.DataFrame:
    # saves of 0.1 called the learning curves history.csv (history is now only the fine record)
    name = "training_log.csv" if (path / "training_log.csv").is_file() else "history.csv"
    return pd.read_csv(path / name).set_index(["season", "stage", "epoch"])


def load(cls, path, device=None):
    from safetensors.torch import load_file, load_model

    from .config import DownscaleConfig
    from .modules import SeasonModule
    from .training import resolve_device

    path = Path(path)
    meta = _read_meta(path)
    try:
        cfg = DownscaleConfig.from_dict(meta["config"], saved=True)
        est = cls(cfg, model=meta["model"], seasons=meta["seasons"], var=meta["var"])
        dev = resolve_device(device or cfg.device)
        modules = {}
        for season in meta["seasons"]:
            module = SeasonModule(meta["model"], cfg)
            try:
                load_model(module, str(path / f"{season}.safetensors"), strict=True)
            except (RuntimeError, KeyError, ValueError) as err:
                raise CheckpointError(
                    f"the {season} weights in {path} do not fit the saved configuration: {err}"
                ) from None
            module.freeze_small()
            modules[season] = module.to(dev).eval()
        static = load_file(str(path / "static.safetensors"))
        validation = (pd.read_csv(path / "validation.csv").set_index(["season", "method"])
                      if (path / "validation.csv").is_file() else None)
        FittedState.from_dict(
            meta, modules=modules, elevation=static["elevation"].numpy(), device=dev,
            training_log=_read_log(path), validation=validation).apply(est)
        if "cell_offsets" not in meta and est.config_.coarse_consistency is not False:
            # saved before predict tied its days to the coarse driver: it has not the
            # training days' per-cell offsets that step needs
            est.config_ = est.config_.replace(coarse_consistency=False)
            warnings.warn(
                f"{path} was saved by an xdownscale without the coarse-consistency step of "
                "predict (no per-cell offsets): its predictions and rollouts are not tied to "
                "the coarse driver (config_.coarse_consistency=False). Refit to get the step.",
                XDownscaleWarning, stacklevel=3)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise CheckpointError(f"{path} could not be loaded: {type(err).__name__}: {err}") from None
    return est
