"""Reading and validating the YAML configuration of ``xdownscale run``.

Everything is checked before any heavy work starts: unknown keys, missing files, unknown
areas, seasons, models, presets and config fields all raise :class:`ConfigError` with the
key that is wrong.
"""

from __future__ import annotations

import datetime
import glob
import re
import typing
from pathlib import Path

import pandas as pd

from ..data.regions import REGIONS, Region, get_region
from ..data.seasons import SEASONS
from ..errors import ConfigError
from ..estimator.checks import check_members, check_seed, check_steps
from ..estimator.config import DownscaleConfig
from .job import JobSpec

# key -> what it takes; the source of the checks' messages and of ``xdownscale run --help``
KEYS = {
    "output": "output folder (created; relative paths are relative to the YAML file)",
    "areas": "list of area names (A0, A1) or mapping name: [lat_min, lat_max, lon_min, lon_max]",
    "merra2": "coarse files: a path, a glob or a list of them",
    "g5nr": "fine files: a path, a glob or a list of them",
    "elevation": "optional elevation file (metres)",
    "var": "variable name in the files (default DUEXTTAU)",
    "seasons": "optional list of DJF, MAM, JJA, SON (default: all in the fine record)",
    "models": "list of ddpm, unet, vae (default [ddpm, unet])",
    "config": "paper, fast, default, or a mapping of DownscaleConfig fields",
    "overrides": "mapping of DownscaleConfig fields set on top of config",
    "predict": "mapping: members (int), sampler, steps (int), fusion, seed (int)",
    "rollout": "mapping: end (YYYY-MM-DD) and optional start",
    "require_full_days": "true (default) or false: accept days with missing hourly samples",
    "scheduler": "optional dask scheduler address",
    "title": "title of the report",
}
_KEYS = set(KEYS)
_REQUIRED = ("output", "areas", "merra2", "g5nr")
_PREDICT_KEYS = {"members", "sampler", "steps", "fusion", "seed"}
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _expect(key: str, value, kind: str):
    raise ConfigError(f"{key}: expected {kind}, got {value!r} ({type(value).__name__})")


def _str(value, key: str) -> str:
    if not isinstance(value, str) or not value:
        _expect(key, value, "a string")
    return value


def _names(value, key: str, choices) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        _expect(key, value, f"a list of names from {list(choices)}")
    bad = [v for v in items if v not in choices]
    if bad:
        raise ConfigError(f"{key}: unknown {bad}; choose from {list(choices)}")
    return items


def _fields(value, key: str) -> dict:
    """DownscaleConfig fields from YAML: lists become tuples, and a float field written
    ``1e-3`` (a string to YAML 1.1) becomes the number it reads as."""
    if not isinstance(value, dict):
        _expect(key, value, "a mapping of DownscaleConfig fields")
    hints = typing.get_type_hints(DownscaleConfig)
    out = {}
    for name, v in value.items():
        tp = hints.get(name)
        allows_float = tp is not None and (tp is float or float in typing.get_args(tp))
        if isinstance(v, str) and allows_float and _FLOAT.match(v.strip()):
            v = float(v)
        elif isinstance(v, list):
            v = tuple(v)
        out[name] = v
    return out


def _date(value, key: str) -> pd.Timestamp:
    if isinstance(value, (str, datetime.date)):
        try:
            return pd.Timestamp(value).normalize()
        except (ValueError, TypeError):
            pass
    _expect(key, value, "a date (YYYY-MM-DD)")


def _predict(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _expect("predict", value, "a mapping with " + ", ".join(sorted(_PREDICT_KEYS)))
    bad = set(value) - _PREDICT_KEYS
    if bad:
        raise ConfigError(f"predict: unknown key(s) {sorted(bad)}; valid: {sorted(_PREDICT_KEYS)}")
    out = dict(value)
    checks = {"members": check_members, "steps": check_steps, "seed": check_seed}
    for name, check in checks.items():
        if name in out:
            try:
                out[name] = check(out[name])
            except ConfigError as err:
                raise ConfigError(f"predict: {err}") from None
    for name, choices in (("sampler", ("ddpm", "ddim", "dpmsolver")),
                          ("fusion", ("posthoc", "per_step"))):
        if name in out and out[name] not in choices:
            raise ConfigError(f"predict: {name}={out[name]!r} is not one of {list(choices)}")
    return out


def _rollout(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or "end" not in value:
        raise ConfigError("rollout: expected a mapping with at least 'end' (and optional 'start')")
    bad = set(value) - {"start", "end"}
    if bad:
        raise ConfigError(f"rollout: unknown key(s) {sorted(bad)}; valid: ['end', 'start']")
    out = {k: _date(v, f"rollout: {k}") for k, v in value.items()}
    if "start" in out and out["start"] > out["end"]:
        raise ConfigError(f"rollout: start {out['start'].date()} is after end {out['end'].date()}")
    return {k: str(v.date()) for k, v in out.items()}


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
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [(v, None) for v in value]
    else:
        _expect("areas", value, "a list of area names or a mapping name: "
                "[lat_min, lat_max, lon_min, lon_max]")
    out = {}
    for name, box in items:
        if box is None:
            if name not in REGIONS:
                raise ConfigError(f"areas: unknown area {name!r}; known: {sorted(REGIONS)} or give "
                                  "{name: [lat_min, lat_max, lon_min, lon_max]}")
            out[str(name)] = REGIONS[name]
            continue
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in box)):
            _expect(f"areas: {name}", box, "[lat_min, lat_max, lon_min, lon_max] (four numbers)")
        try:
            r = get_region(tuple(box))
        except Exception as err:  # RegionError carries the reason
            raise ConfigError(f"areas: {name}: {err}") from None
        out[str(name)] = Region(str(name), *r.bounds)
    if not out:
        raise ConfigError("areas: at least one area is needed")
    return out


def _config(value, overrides) -> DownscaleConfig:
    try:
        if value in (None, "default"):
            cfg = DownscaleConfig()
        elif value == "paper":
            cfg = DownscaleConfig.paper()
        elif value == "fast":
            cfg = DownscaleConfig.fast()
        elif isinstance(value, dict):
            cfg = DownscaleConfig.from_dict(_fields(value, "config"))
        else:
            raise ConfigError(f"expected paper, fast, default or a mapping, got {value!r}")
    except ConfigError as err:
        raise ConfigError(f"config: {err}") from None
    if overrides:
        try:
            cfg = cfg.replace(**_fields(overrides, "overrides"))
        except ConfigError as err:
            raise ConfigError(f"overrides: {str(err).removeprefix('overrides: ')}") from None
    return cfg


def load_run_config(path) -> JobSpec:
    """Parse and validate a run configuration; returns the job it describes.

    Only the YAML and the file names are checked here; :func:`check_data` opens the files'
    metadata to check them against the configuration.
    """
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
    output = _str(raw["output"], "output")
    areas = _areas(raw["areas"])
    seasons = raw.get("seasons")
    if seasons is not None:
        seasons = _names(seasons, "seasons", SEASONS)
    models = _names(raw.get("models", ["ddpm", "unet"]), "models", ("ddpm", "unet", "vae"))
    merra2 = _paths(raw["merra2"], "merra2", base)
    g5nr = _paths(raw["g5nr"], "g5nr", base)
    elev = None
    if raw.get("elevation") is not None:
        elev = _paths(_str(raw["elevation"], "elevation"), "elevation", base)[0]
    var = _str(raw.get("var", "DUEXTTAU"), "var")
    cfg = _config(raw.get("config"), raw.get("overrides"))
    predict = _predict(raw.get("predict"))
    rollout = _rollout(raw.get("rollout"))
    full_days = raw.get("require_full_days", True)
    if not isinstance(full_days, bool):
        _expect("require_full_days", full_days, "true or false")
    scheduler = raw.get("scheduler")
    if scheduler is not None:
        _str(scheduler, "scheduler")
    title = _str(raw.get("title", "xdownscale report"), "title")

    def load(area: str):
        from ..data.io import open_elevation, open_g5nr, open_merra2

        region = areas[area]
        coarse = open_merra2(merra2, region=region, var=var, require_full_days=full_days)
        fine = open_g5nr(g5nr, region=region, var=var, require_full_days=full_days)
        elevation = open_elevation(elev, region=region) if elev else None
        return coarse, fine, elevation

    load.regions = areas  # for check_data
    out = base / output if not Path(output).is_absolute() else Path(output)
    return JobSpec(output=out, areas=list(areas), load=load, models=list(models), seasons=seasons,
                   config=cfg, predict=predict or {"members": 4}, rollout=rollout,
                   scheduler=scheduler, title=title, var=var)


def _region_covered(da, region: Region, what: str, area: str) -> None:
    """The data must reach every side of the box (to within one grid step)."""
    lat, lon = da["lat"].values, da["lon"].values
    step_y = float(abs(lat[1] - lat[0])) if lat.size > 1 else 1.0
    step_x = float(abs(lon[1] - lon[0])) if lon.size > 1 else 1.0
    short = []
    if lat.min() > region.lat_min + step_y or lat.max() < region.lat_max - step_y:
        short.append(f"lat {lat.min():.4g}..{lat.max():.4g}")
    if lon.min() > region.lon_min + step_x or lon.max() < region.lon_max - step_x:
        short.append(f"lon {lon.min():.4g}..{lon.max():.4g}")
    if short:
        raise ConfigError(
            f"areas: {area}: the box lat {region.lat_min}..{region.lat_max}, lon "
            f"{region.lon_min}..{region.lon_max} lies partly outside the {what} files, which "
            f"cover only {', '.join(short)} of it; shrink the box or add files"
        )


def _record_long_enough(fine_times, cfg: DownscaleConfig, seasons, area: str) -> None:
    from ..data.lags import lag_windows
    from ..data.seasons import season_of

    times = pd.DatetimeIndex(fine_times)
    wanted = seasons or sorted(set(season_of(times)))
    for season in wanted:
        days = times[season_of(times) == season]
        usable = lag_windows(days.to_numpy(), times.to_numpy(), cfg.n_lags, on_missing="drop")
        if len(usable.targets) < 3:
            raise ConfigError(
                f"areas: {area}: the fine record ({len(times)} days, {times[0].date()}.."
                f"{times[-1].date()}) has {len(usable.targets)} {season} day(s) with a full "
                f"history; fitting needs each target day's n_lags={cfg.n_lags} previous days "
                f"(and takes buffer_days={cfg.buffer_days} days before each season block), and "
                "at least 3 such days to split into train/val/test. Give a longer fine record "
                "or lower n_lags and buffer_days in overrides."
            )


def check_data(spec: JobSpec) -> list[str]:
    """Open every area's files (metadata only) and check them against the configuration:
    the variable exists, the data cover each box, the fine record is long enough for the
    lag windows. Returns one line per area; raises :class:`ConfigError` naming the key."""
    from .._coords import ensure_dataarray
    from ..errors import XDownscaleError

    lines = []
    for area in spec.areas:
        try:
            coarse, fine, _ = spec.load(area)
        except XDownscaleError as err:
            raise ConfigError(f"areas: {area}: {err}") from None
        except (OSError, ValueError, KeyError, TypeError) as err:  # unreadable files
            raise ConfigError(f"areas: {area}: the files could not be opened "
                              f"({type(err).__name__}: {err})") from None
        region = getattr(spec.load, "regions", {}).get(area)
        fine_da = ensure_dataarray(fine, spec.var)
        if region is not None:
            _region_covered(fine_da, region, "g5nr", area)
            _region_covered(ensure_dataarray(coarse, spec.var), region, "merra2", area)
        coarse_days = pd.DatetimeIndex(ensure_dataarray(coarse, spec.var)["time"].values)
        uncovered = pd.DatetimeIndex(fine_da["time"].values).difference(coarse_days)
        if len(uncovered):
            raise ConfigError(
                f"areas: {area}: the merra2 files do not cover {len(uncovered)} day(s) of the "
                f"g5nr record (first {uncovered[0].date()}); the coarse record must include "
                "every fine day")
        _record_long_enough(fine_da["time"].values, spec.config, spec.seasons, area)
        lines.append(f"{area}: {fine_da.sizes['time']} fine days, "
                     f"{fine_da.sizes['lat']} x {fine_da.sizes['lon']} fine pixels")
    return lines
