"""Saving and loading a fitted :class:`~xdownscale.Downscaler` without pickle.

A saved estimator is a directory:

* ``estimator.json`` — format version, package version, model kind, variable, seasons, the
  config, the scalers, the covariate spec, the grids, the split days, and a SHA-256 of every
  weights file;
* ``<season>.safetensors`` — the weights of each season's modules (safetensors: no code runs
  on load);
* ``static.safetensors`` — the elevation map on the fine grid;
* ``history.csv`` — the training history.

Loading refuses a directory whose JSON is unreadable, whose format is newer than this
package understands, whose weights are missing, truncated or altered (checksum), or whose
tensors do not fit the architecture the config describes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import CheckpointError

FORMAT = "xdownscale-estimator"
FORMAT_VERSION = 1
_META = "estimator.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dates(values) -> list[str]:
    return [str(pd.Timestamp(v).date()) for v in values]


def save(est, path) -> None:
    import torch
    from safetensors.torch import save_file, save_model

    from . import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files = {}
    for season, module in est.modules_.items():
        name = f"{season}.safetensors"
        # save_model drops the aliases (the frozen encoder shares its tensors with the small
        # model) that plain save_file refuses.
        save_model(module, str(path / name))
        files[name] = _sha256(path / name)
    save_file({"elevation": torch.from_numpy(np.ascontiguousarray(est.elevation_))},
              str(path / "static.safetensors"))
    files["static.safetensors"] = _sha256(path / "static.safetensors")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "xdownscale_version": __version__,
        "model": est.model,
        "var": str(est.var_),
        "seasons": list(est.seasons_),
        "config": est.config_.to_dict(),
        "scalers": {s: sc.to_dict() for s, sc in est.scalers_.items()},
        "covariate_spec": est.covariate_spec_.to_dict(),
        "lat": est.lat_.tolist(),
        "lon": est.lon_.tolist(),
        "coarse_grid": {k: np.asarray(v).tolist() for k, v in est.coarse_grid_.items()},
        "attrs": {k: (v if isinstance(v, (str, int, float, bool)) else str(v))
                  for k, v in est.attrs_.items()},
        "elevation_used": bool(est.elevation_used_),
        "plans": {s: {k: _dates(getattr(p, k)) for k in
                      ("train", "holdout", "val", "test", "small_train", "small_holdout")}
                  for s, p in est.plans_.items()},
        "files": files,
    }
    est.history_.reset_index().to_csv(path / "history.csv", index=False)
    if getattr(est, "validation_", None) is not None:
        est.validation_.reset_index().to_csv(path / "validation.csv", index=False)
    tmp = path / (_META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(path / _META)  # the JSON appears last: a half-written save is never loadable


def _read_meta(path: Path) -> dict:
    if not (path / _META).is_file():
        raise CheckpointError(f"{path} is not a saved Downscaler: {_META} is missing")
    try:
        meta = json.loads((path / _META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path / _META} is corrupt: {err}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} holds format {meta.get('format')!r}, not {FORMAT!r}")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by xdownscale {meta.get('xdownscale_version')} in format "
            f"version {meta['format_version']}; this xdownscale reads up to {FORMAT_VERSION}. "
            "Upgrade xdownscale to load it."
        )
    for name, digest in meta.get("files", {}).items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{f} is missing from the saved estimator")
        if _sha256(f) != digest:
            raise CheckpointError(f"{f} is corrupt or truncated (checksum mismatch)")
    return meta


def load(cls, path, device=None):
    from safetensors.torch import load_file, load_model

    from ._modules import SeasonModule
    from .config import DownscaleConfig
    from .covariates import CovariateSpec
    from .pipeline import SeasonPlan
    from .training import resolve_device
    from .transforms import Scaler

    path = Path(path)
    meta = _read_meta(path)
    try:
        cfg = DownscaleConfig.from_dict(meta["config"])
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
        est.config_ = cfg
        est.modules_ = modules
        est.scalers_ = {s: Scaler.from_dict(d) for s, d in meta["scalers"].items()}
        est.seasons_ = list(meta["seasons"])
        est.covariate_spec_ = CovariateSpec.from_dict(meta["covariate_spec"])
        est.lat_ = np.asarray(meta["lat"], np.float64)
        est.lon_ = np.asarray(meta["lon"], np.float64)
        est.coarse_grid_ = {k: np.asarray(v) for k, v in meta["coarse_grid"].items()}
        est.elevation_ = static["elevation"].numpy()
        est.elevation_used_ = meta["elevation_used"]
        est.var_ = meta["var"]
        est.attrs_ = meta["attrs"]
        est.device_ = dev
        est.plans_ = {s: SeasonPlan(s, *(pd.DatetimeIndex(p[k]).to_numpy() for k in (
            "train", "holdout", "val", "test", "small_train", "small_holdout")))
            for s, p in meta["plans"].items()}
        hist = pd.read_csv(path / "history.csv")
        est.history_ = hist.set_index(["season", "stage", "epoch"])
        est.validation_ = (pd.read_csv(path / "validation.csv").set_index(["season", "method"])
                           if (path / "validation.csv").is_file() else None)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise CheckpointError(f"{path} could not be loaded: {type(err).__name__}: {err}") from None
    return est
