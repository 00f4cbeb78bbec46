"""Day-level prediction kernel: patches → frozen encoder → large model → stitched image.

Everything here works on arrays of one day (scaled log10 space) and torch modules; the
xarray/dask wrappers are in :mod:`xdownscale.prediction`.

Design choices, measured in ``benchmarks/bench_samplers.py``:

* the encoder features of a patch do not depend on the diffusion step, so they are computed
  once per day and kept at the bottleneck resolution (``p/4``), then resized per batch;
* the sampling loop runs steps outside and patch batches inside, so the state of every patch
  of the day is available at each step: that is what per-step fusion (MultiDiffusion-style)
  needs, and it lets each step's noise be drawn for the whole day at once, so results do not
  depend on the batch size;
* noise comes from a generator seeded by (seed, day, member), so a day's numbers do not depend
  on which other days are predicted with it, or on dask chunking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .patches import cut_patches, patch_starts
from .stitch import StitchPlan

__all__ = ["predict_day", "day_seed"]


def day_seed(seed: int, day, member: int) -> int:
    """A 63-bit seed from (seed, calendar day, member): independent of what else is predicted."""
    ordinal = int(pd.Timestamp(day).toordinal())
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, ordinal, int(member)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _batched(n: int, size: int):
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


@torch.no_grad()
def _encode(module, hist_p: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Bottleneck features of every patch, computed once per day."""
    return torch.cat([module.encoder.raw(hist_p[b]) for b in _batched(hist_p.shape[0], batch_size)])


@torch.no_grad()
def predict_day(module, cfg, hist: np.ndarray, cond: np.ndarray, *, day, members: int = 1,
                sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                seed: int = 0, fusion: str = "posthoc", device="cpu",
                batch_size: int = 1024) -> np.ndarray:
    """Predict one day on the fine grid.

    Parameters
    ----------
    module : SeasonModule
        The season's fitted modules (eval mode).
    hist : ndarray (n_lags, ny, nx)
        Scaled log10 fine history (the days before ``day``).
    cond : ndarray (C, ny, nx)
        Scaled coarse driver on ``day`` and the covariate maps.

    Returns
    -------
    ndarray (members, ny, nx)
        Stitched predictions in scaled space; NaN where an input pixel is missing.
    """
    ny, nx = hist.shape[-2:]
    starts = patch_starts((ny, nx), patch=cfg.patch, stride=cfg.infer_stride)
    plan = StitchPlan(starts, (ny, nx), patch=cfg.patch, halo=cfg.halo, window=cfg.window)
    missing = ~(np.isfinite(hist).all(0) & np.isfinite(cond).all(0))
    hist_t = torch.from_numpy(np.nan_to_num(hist, nan=0.0)).to(device)
    cond_t = torch.from_numpy(np.nan_to_num(cond, nan=0.0)).to(device)
    hist_p = cut_patches(hist_t, starts, cfg.patch)
    cond_p = cut_patches(cond_t, starts, cfg.patch)
    raw = _encode(module, hist_p, batch_size)
    n = starts.shape[0]

    def inputs(b):
        feats = module.encoder.resize(raw[b])
        return module.inputs(None, cond_p[b], feats=feats)

    out = np.empty((members, ny, nx), np.float32)
    for m in range(members):
        gen = torch.Generator(device="cpu").manual_seed(day_seed(seed, day, m))
        if module.kind == "ddpm":
            x0 = _sample_ddpm(module.large, inputs, n, cfg, plan, gen, sampler=sampler,
                              steps=steps, eta=eta, fusion=fusion, device=device,
                              batch_size=batch_size)
        else:
            parts = []
            for b in _batched(n, batch_size):
                x, film = inputs(b)
                if module.kind == "unet":
                    parts.append(module.large(x, film=film))
                else:
                    parts.append(module.large.predict(x, film))
            x0 = torch.cat(parts)
        image, _ = plan.stitch(x0[:, 0].float().cpu().numpy())
        out[m] = image
    out[:, missing] = np.nan
    return out


def _sample_ddpm(diffusion, inputs, n, cfg, plan, gen, *, sampler, steps, eta, fusion, device,
                 batch_size):
    """Reverse diffusion over all patches of a day (steps outside, batches inside)."""
    scheduler = diffusion.make_scheduler(sampler, steps)
    shape = (n, 1, cfg.patch, cfg.patch)
    x_t = diffusion.initial_noise(shape, gen).to(device)
    for t in scheduler.timesteps:
        x0 = torch.empty(shape, device=device)
        for b in _batched(n, batch_size):
            x, film = inputs(b)
            x0[b] = diffusion.predict_x0(x_t[b], t, x, film=film)
        if fusion == "per_step":
            fused, _ = plan.stitch(x0[:, 0])
            x0 = plan.cut(fused)[:, None]
        x_t = diffusion.step(scheduler, x0, t, x_t, gen, eta=eta)
    return diffusion.to_data(x_t)
