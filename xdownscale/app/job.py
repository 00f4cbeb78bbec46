"""The main job: fit, downscale, diagnose and report, for areas x seasons x models.

``xdownscale demo`` runs it on the embedded synthetic data, ``xdownscale run CONFIG.yaml`` on
the user's files. Every stage writes its result to the output folder atomically and is
skipped when that result is already there, so an interrupted job rerun into the same folder
picks up where it stopped and finishes cleanly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..estimator.config import DownscaleConfig

__all__ = ["JobSpec", "run_job"]


@dataclass
class JobSpec:
    """What a job does. ``load(area) -> (coarse, fine, elevation)`` supplies the data."""

    output: Path
    areas: list[str]
    load: Callable[[str], tuple]
    models: list[str] = field(default_factory=lambda: ["ddpm", "unet"])
    seasons: list[str] | None = None
    config: DownscaleConfig = field(default_factory=DownscaleConfig.fast)
    predict: dict = field(default_factory=lambda: {"members": 4})
    rollout_days: int = 30
    rollout: dict | None = None  # {"start": ..., "end": ...} overrides rollout_days
    scheduler: str | None = None
    title: str = "xdownscale report"
    var: str = "DUEXTTAU"
    n_pairs: int = 30000  # semivariogram pairs per day (the paper's 30 000)


_logger = logging.getLogger("xdownscale.app.job")


def log(msg: str) -> None:
    _logger.info(msg)


def _atomic_netcdf(ds: xr.Dataset, path: Path) -> None:
    tmp = path.with_suffix(".tmp.nc")
    # compressed: a prediction file with members is otherwise several times the input's size
    encoding = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars
                if ds[v].dtype.kind == "f"}
    ds.to_netcdf(tmp, encoding=encoding)
    os.replace(tmp, path)


class Timings:
    """Wall time per stage of the job, logged and kept in ``timings.json`` of the output."""

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / "timings.json"
        self.rows: list[dict] = []

    @contextlib.contextmanager
    def stage(self, area: str, name: str):
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        self.rows.append({"area": area, "stage": name, "seconds": round(seconds, 1)})
        log(f"{area} {name}: {seconds:.0f} s")
        save_json(self.path, self.rows)


def _cached(path: Path, make: Callable[[], xr.Dataset]) -> xr.Dataset:
    if path.exists():
        return xr.load_dataset(path)
    ds = make()
    _atomic_netcdf(ds.load(), path)
    return ds


def _fit_or_load(spec: JobSpec, area: str, model: str, coarse, fine, elev, pretrained=None):
    from ..estimator.downscaler import Downscaler

    path = spec.output / "models" / f"{area}_{model}"
    if (path / "estimator.json").exists():
        log(f"{area} {model}: loading the saved model from {path}")
        return Downscaler.load(path)
    if pretrained is not None:
        log(f"{area} {model}: fitting stage B on the stage-A models of {pretrained.model}")
    else:
        log(f"{area} {model}: fitting (stage A pretraining, then stage B with the frozen encoder)")
    # the training state, written after every round: a job stopped half-way (a time limit, a
    # pre-empted node) and started again continues the fit where it was; gone once saved
    state = path.with_name(path.name + ".training")
    if state.exists():
        log(f"{area} {model}: resuming the interrupted fit from {state}")
    t0 = time.perf_counter()
    est = Downscaler(spec.config, model=model, seasons=spec.seasons, var=spec.var).fit(
        coarse, fine, elevation=elev, pretrained=pretrained, state_dir=state)
    log(f"{area} {model}: fitted in {time.perf_counter() - t0:.0f} s")
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    est.save(tmp)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    shutil.rmtree(state, ignore_errors=True)
    return est


def run_job(spec: JobSpec) -> Path:
    """Run every stage and write ``report.md``; returns its path."""
    from ..data.regrid import regrid_like
    from . import report

    out = Path(spec.output)
    for sub in ("models", "predictions", "tables", "figures", "rollout"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    client = None
    if spec.scheduler:
        from dask.distributed import Client

        client = Client(spec.scheduler)
        log(f"connected to the dask scheduler at {spec.scheduler}")
    sections = []
    timings = Timings(out)
    try:
        for area in spec.areas:
            log(f"{area}: loading data")
            with timings.stage(area, "load data"):
                coarse, fine, elev = spec.load(area)
                fine_da = fine[spec.var] if isinstance(fine, xr.Dataset) else fine
                bicubic = regrid_like(coarse, fine_da.isel(time=0, drop=True), method="cubic")
            ests, preds = {}, {}
            for model in spec.models:
                # ddpm and unet pretrain the same small model: fit stage A once and share it
                shared = next((e for m, e in ests.items() if (m == "vae") == (model == "vae")),
                              None)
                with timings.stage(area, f"fit {model}"):
                    est = _fit_or_load(spec, area, model, coarse, fine, elev, pretrained=shared)
                ests[model] = est
                test_days = np.sort(np.concatenate(list(est.test_days_.values())))
                path = out / "predictions" / f"{area}_{model}_test.nc"
                if path.exists():
                    preds[model] = xr.load_dataset(path)
                    continue
                log(f"{area} {model}: predicting {test_days.size} test days")
                kw = dict(spec.predict)
                if model != "ddpm":
                    kw["members"] = 1
                # the members give the CRPS of Table 3 and the member map of Figure 6
                kw.setdefault("keep_members", kw.get("members", 1) > 1)
                t0 = time.perf_counter()
                with timings.stage(area, f"predict {model} ({test_days.size} test days)"):
                    pred = est.predict(coarse.sel(time=test_days), history=fine, **kw)
                    pred = pred.load()
                pred.attrs["seconds_per_day"] = (time.perf_counter() - t0) / max(1, test_days.size)
                _atomic_netcdf(pred, path)
                preds[model] = pred
            roll = None
            if ests:
                rmodel = "ddpm" if "ddpm" in ests else next(iter(ests))
                with timings.stage(area, f"rollout {rmodel}"):
                    roll = _rollout(spec, area, ests[rmodel], coarse, fine, rmodel)
            log(f"{area}: diagnostics and figures")
            with timings.stage(area, "diagnostics and report"):
                sections.append(report.area_section(
                    out, area, coarse=coarse, bicubic=bicubic, fine=fine_da, elevation=elev,
                    estimators=ests, predictions=preds, rollout=roll, var=spec.var,
                    n_pairs=spec.n_pairs, products={"fine": fine, "coarse": coarse}))
    finally:
        if client is not None:
            client.close()
    path = report.write(out, spec, sections)
    log(f"report written to {path}")
    return path


def _rollout(spec: JobSpec, area: str, est, coarse, fine, model: str):
    fine_end = pd.Timestamp(fine["time"].values[-1])
    if spec.rollout:
        start = pd.Timestamp(spec.rollout.get("start", fine_end + pd.Timedelta(days=1)))
        end = pd.Timestamp(spec.rollout["end"])
    else:
        # the first stretch past the end of the fine record that the fitted seasons cover
        from ..data.seasons import season_of

        cdays = pd.DatetimeIndex(coarse["time"].values)
        after = cdays[(cdays > fine_end)]
        ok = after[np.isin(season_of(after), est.seasons_)]
        if ok.empty:
            log(f"{area}: no coarse days past the fine record in the fitted seasons; no rollout")
            return None
        start = ok[0]
        end = min(start + pd.Timedelta(days=spec.rollout_days - 1), cdays[-1])
        seasons = season_of(pd.date_range(start, end))
        keep = np.cumprod(np.isin(seasons, est.seasons_)).astype(bool)
        end = pd.date_range(start, end)[keep][-1]
    store = spec.output / "rollout" / f"{area}_{model}.zarr"
    log(f"{area} {model}: autoregressive rollout {start.date()} .. {end.date()} -> {store}")
    # The seed window must precede the start: prefer true fine days, and fill a gap between the
    # end of the fine record and the start by starting the rollout right after the record.
    if start > fine_end + pd.Timedelta(days=1):
        start = fine_end + pd.Timedelta(days=1)
    members = spec.predict.get("members", 1) if model == "ddpm" else 1
    return est.rollout(coarse, history=fine, start=start, end=end, store=store,
                       members=min(members, 2), seed=spec.config.seed)


def demo_spec(out: Path, quick: bool, area: str = "A1", seed: int = 0) -> JobSpec:
    """The demo: the embedded synthetic pair for one area."""
    from ..datasets import synthetic

    def load(a):
        return synthetic(area=a, seed=seed)

    cfg = DownscaleConfig.fast(seed=seed, verbose=True)
    if quick:
        return JobSpec(output=out, areas=[area], load=load, models=["ddpm", "unet"],
                       seasons=["JJA"], config=cfg, predict={"members": 2}, rollout_days=14,
                       title="xdownscale demo (quick)")
    return JobSpec(output=out, areas=[area], load=load, models=["ddpm", "unet", "vae"],
                   seasons=None, config=cfg, predict={"members": 3}, rollout_days=30,
                   title="xdownscale demo")


def save_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str))
