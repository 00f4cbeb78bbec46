"""Reading and validating the YAML configuration of ``xdownscale run``.

Everything is checked before any heavy work starts: unknown keys, missing files, unknown
areas, seasons, models, presets and config fields all raise :class:`ConfigError` with the
key that is wrong.
"""

from __future__ import annotations

import glob
from pathlib import Path

from .config import DownscaleConfig
from .errors import ConfigError
from .job import JobSpec
from .regions import REGIONS, Region, get_region
from .seasons import SEASONS

_KEYS = {"output", "areas", "seasons", "models", "merra2", "g5nr", "elevation", "var", "config",
         "overrides", "predict", "rollout", "scheduler", "title"}
_REQUIRED = ("output", "areas", "merra2", "g5nr")
_PREDICT_KEYS = {"members", "sampler", "steps", "fusion", "seed"}


def _paths(value, key: str, base: Path) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{key}: expected a path, a glob or a list of them, got {value!r}")
    found: list[str] = []
    for item in items:
        pattern = str(item if Path(item).is_absolute() else base / item)
        hits = sorted(glob.glob(pattern))
        if not hits:
            raise ConfigError(f"{key}: no file matches {item!r} (looked for {pattern})")
        found += hits
    return found


def _areas(value) -> dict[str, Region]:
    out = {}
    items = value.items() if isinstance(value, dict) else ((v, None) for v in (value or []))
    for name, box in items:
        if box is None:
            if name not in REGIONS:
                raise ConfigError(f"areas: unknown area {name!r}; known: {sorted(REGIONS)} or give "
                                  "{name: [lat_min, lat_max, lon_min, lon_max]}")
            out[name] = REGIONS[name]
        else:
            try:
                r = get_region(box)
            except Exception as err:  # RegionError carries the reason
                raise ConfigError(f"areas: {name}: {err}") from None
            out[name] = Region(name, *r.bounds)
    if not out:
        raise ConfigError("areas: at least one area is needed")
    return out


def _config(value, overrides) -> DownscaleConfig:
    if value in (None, "default"):
        cfg = DownscaleConfig()
    elif value == "paper":
        cfg = DownscaleConfig.paper()
    elif value == "fast":
        cfg = DownscaleConfig.fast()
    elif isinstance(value, dict):
        cfg = DownscaleConfig.from_dict(value)
    else:
        raise ConfigError(f"config: expected paper, fast, default or a mapping, got {value!r}")
    if overrides:
        if not isinstance(overrides, dict):
            raise ConfigError("overrides: expected a mapping of DownscaleConfig fields")
        cfg = cfg.replace(**overrides)
    return cfg


def load_run_config(path) -> JobSpec:
    """Parse and validate a run configuration; returns the job it describes."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file {path} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(_KEYS)}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ConfigError(f"{path}: missing required key(s) {missing}")
    base = path.parent
    areas = _areas(raw["areas"])
    seasons = raw.get("seasons")
    if seasons is not None:
        bad = [s for s in seasons if s not in SEASONS]
        if bad:
            raise ConfigError(f"seasons: unknown {bad}; choose from {list(SEASONS)}")
    models = raw.get("models", ["ddpm", "unet"])
    bad = [m for m in models if m not in ("ddpm", "unet", "vae")]
    if bad:
        raise ConfigError(f"models: unknown {bad}; choose from ['ddpm', 'unet', 'vae']")
    merra2 = _paths(raw["merra2"], "merra2", base)
    g5nr = _paths(raw["g5nr"], "g5nr", base)
    elev = _paths(raw["elevation"], "elevation", base)[0] if raw.get("elevation") else None
    var = raw.get("var", "DUEXTTAU")
    cfg = _config(raw.get("config"), raw.get("overrides"))
    predict = dict(raw.get("predict") or {})
    bad = set(predict) - _PREDICT_KEYS
    if bad:
        raise ConfigError(f"predict: unknown key(s) {sorted(bad)}; valid: {sorted(_PREDICT_KEYS)}")
    rollout = raw.get("rollout")
    if rollout is not None and (not isinstance(rollout, dict) or "end" not in rollout):
        raise ConfigError("rollout: expected a mapping with at least 'end' (and optional 'start')")

    def load(area: str):
        from .io import open_elevation, open_g5nr, open_merra2

        region = areas[area]
        coarse = open_merra2(merra2, region=region, var=var)
        fine = open_g5nr(g5nr, region=region, var=var)
        elevation = open_elevation(elev, region=region) if elev else None
        return coarse, fine, elevation

    out = base / raw["output"] if not Path(raw["output"]).is_absolute() else Path(raw["output"])
    return JobSpec(output=out, areas=list(areas), load=load, models=list(models), seasons=seasons,
                   config=cfg, predict=predict or {"members": 4}, rollout=rollout,
                   scheduler=raw.get("scheduler"), title=raw.get("title", "xdownscale report"),
                   var=var)
