"""Helpers shared by the benchmark scripts: a fitted-model cache and resident-memory probes.

The scripts run as ``python benchmarks/<name>.py``, so this module is importable as ``_common``.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

# What a saved model predicts with, as opposed to what it was trained with.
PREDICTION_FIELDS = ("inference", "tile", "tile_halo", "tile_overlap", "infer_stride", "halo",
                     "sampler", "sample_steps", "eta", "fusion", "predict_batch_size",
                     "coarse_consistency", "point_estimate")


def use_prediction_settings(est, cfg) -> None:
    """Make ``est`` predict with ``cfg``'s prediction settings: a model cached by an earlier
    version keeps those of its fit, and a benchmark should time or score today's."""
    est.config_ = est.config_.replace(**{k: getattr(cfg, k) for k in PREDICTION_FIELDS})


def parse_overrides(items) -> tuple[dict, str]:
    """``--set name=value ...`` into configuration overrides (values read as Python literals)
    and a tag naming them, for the cache folder of fits made with them ("" when none)."""
    import ast

    overrides = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes name=value, got {item!r}")
        try:
            overrides[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[name] = value
    tag = "".join(f"_{k}{v}" for k, v in sorted(overrides.items()))
    return overrides, tag


def skill_fit_name(bed: str, season: str, model: str, *, target: str = "residual",
                   config: str = "fast", tag: str = "", seed: int = 0) -> str:
    """The folder name under ``bench_skill.py --cache`` of one fit (bed ``"demo"``: the shipped
    A1 pair), so the rollout and ensemble benchmarks score the very models it fitted."""
    return f"{bed}_{season}_{model}_{target}_{config}{tag}_seed{seed}"


def skill_config(preset, *, seed: int, overrides: dict | None = None, target: str = "residual",
                 as_shipped: bool = False, verbose: bool = False, **extra):
    """The configuration ``bench_skill.py`` fits with: ``preset`` (``DownscaleConfig.fast`` or
    ``DownscaleConfig``) with ``target``, and without the validation and spread calibration
    that ``fit`` runs after stage B unless ``as_shipped`` (neither changes the weights)."""
    return preset(target=target, seed=seed, verbose=verbose, validation=as_shipped,
                  calibrate_spread=as_shipped, **extra, **(overrides or {}))


def skill_fit(cache, bed: str, season: str, model: str, data, *, seed: int = 0,
              overrides: dict | None = None, tag: str = "", preset=None,
              config: str = "fast"):
    """``(estimator, fit seconds)``: ``bench_skill.py``'s fit of ``bed`` (``"demo"``: the
    shipped A1 pair) from its ``--cache``, fitted there as it fits it when missing, set to
    predict with its configuration's (today's) prediction settings. ``data``: the pair's
    ``(coarse, fine, elevation)``; ``overrides`` and ``tag`` from :func:`parse_overrides`."""
    from xdownscale import DownscaleConfig, Downscaler

    coarse, fine, elev = data
    cfg = skill_config(preset or DownscaleConfig.fast, seed=seed, overrides=overrides)

    def fit():
        return Downscaler(cfg, model=model, seasons=[season]).fit(coarse, fine, elev)

    path = Path(cache) / skill_fit_name(bed, season, model, config=config, tag=tag, seed=seed)
    est, seconds = cached_fit(path, fit, f"the {bed} {model}", data=(coarse, fine))
    use_prediction_settings(est, cfg)
    return est, seconds


def load_pair(bed: str | None = None, seed: int = 0, area: str = "A1"):
    """``(coarse, fine, elevation)`` in memory: the shipped synthetic pair of ``area`` (``bed``
    None or ``"demo"``) or a test-bed of ``tests/testbeds.py``."""
    if bed in (None, "demo"):
        import xdownscale

        coarse, fine, elev = xdownscale.datasets.synthetic(area=area, seed=seed)
        return coarse.load(), fine.load(), elev
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import testbeds

    return testbeds.make_pair(bed, seed=seed)


def add_cell_offsets(est, coarse, fine) -> None:
    """Give a model cached before fits kept them the training days' per-cell offsets of the
    coarse-consistency step, computed as ``fit`` computes them, from its own training days."""
    from xdownscale.data.transforms import log10_transform
    from xdownscale.estimator import inputs
    from xdownscale.estimator.stages import training_cell_offsets

    cfg = est.config_
    coarse_da, coarse_f, fine_da, _ = inputs.prepare_inputs(
        coarse, fine, None, var=est.var_, regrid_method=cfg.regrid_method)
    est.cell_offsets_ = training_cell_offsets(log10_transform(fine_da, eps=cfg.eps),
                                              log10_transform(coarse_f, eps=cfg.eps),
                                              est.plans_, coarse_da)


def cached_fit(path: Path, fit: Callable[[], object], what: str = "the model", data=None):
    """Load the estimator saved under ``path``, or run ``fit()`` and save it there.

    Returns ``(estimator, fit_seconds)``; the seconds are 0 when the cache was read, so a
    rerun of a benchmark skips its training. With ``data=(coarse, fine)``, a cached model saved
    without the per-cell offsets of the coarse-consistency step gets them (``add_cell_offsets``).
    """
    import warnings

    from xdownscale import Downscaler

    path = Path(path)
    if (path / "estimator.json").exists():
        print(f"{what}: fitted model found in {path}")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*without the coarse-consistency")
            est = Downscaler.load(path)
        if not est.cell_offsets_ and data is not None:
            add_cell_offsets(est, *data)
        return est, 0.0
    t0 = time.perf_counter()
    est = fit()
    seconds = time.perf_counter() - t0
    est.save(path)
    print(f"{what}: fitted in {seconds:.0f} s, saved to {path}")
    return est, seconds


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def current_mb() -> float:
    """Resident memory now (VmRSS), else the peak so far."""
    now = _status_mb("VmRSS")
    return now if now is not None else peak_mb()


def reset_peak() -> bool:
    """Reset the kernel's RSS high-water mark (Linux: ``5`` into clear_refs), so a peak read
    later is the measured step's own, not the loading's. False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """Peak resident memory since the last reset (VmHWM), else since the start (ru_maxrss)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
