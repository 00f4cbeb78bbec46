"""Day-level prediction kernel: patches → frozen encoder → large model → stitched image.

Everything here works on arrays of one day (scaled log10 space) and torch modules; the
xarray/dask wrappers are in :mod:`xdownscale.predict.labelled`.

Design choices, measured in ``benchmarks/bench_samplers.py``:

* the encoder features of a patch do not depend on the diffusion step, so they are computed
  once per day and kept at the bottleneck resolution (``p/4``), then resized per batch;
* the sampling loop runs steps outside and patch batches inside, so the state of every patch
  of the day is available at each step: that is what per-step fusion (MultiDiffusion-style)
  needs, and it lets each step's noise be drawn for the whole day at once, so results do not
  depend on the batch size;
* every patch draws its noise from its own generator, seeded by (seed, day, member, the patch's
  top-left corner in the whole image): a day's numbers do not depend on which other days are
  predicted with it, on the batch size, or on the spatial crop (dask chunk plus overlap) the
  patch was predicted in.
* a generative model's ensemble member ``m`` is cut on the piece grid shifted by
  :func:`member_offset` (``member_shift``; member 0 on the plain grid): the members' cuts
  differ, so their mean averages over more of them than one member does, for no extra
  network passes (four members at stride 5 score as stride-2 patches do on the test-beds of
  ``benchmarks/bench_tiles.py``). The shift follows from the member and the whole image's
  shape only, so dask crops still agree.

Tile inference (``inference="tiles"``; the default ``"auto"`` takes it when a day needs more
than ``auto_patch_limit`` patches) runs the same networks, which are fully
convolutional, on large square *pieces* (``tile`` pixels, halo ``tile_halo``) instead of
16 x 16 patches at stride 2: the pieces are laid out with :func:`piece_layout` on the whole
image, cut, encoded, sampled and blended by exactly the code that handles patches (a patch is
a piece of side ``patch``), so every pixel is computed about once instead of 64 times. What
changes for the networks on a tile:

* the frozen encoder sees the tile: its bottleneck is ``tile/4`` and is resized to the tile
  (a patch's ``4 x 4`` to ``16 x 16``: the same 4x bilinear upsampling);
* GroupNorm statistics and, with ``conditioning="film"``, the FiLM vector (covariates
  averaged over the input) are the tile's rather than a patch's;
* a tile's noise comes from its own generator, seeded by its global corner like a patch's,
  and the tile layout depends on the whole image's shape only, so dask's spatial chunks
  still do not change the numbers (each crop reaches one tile past its chunk).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError
from ..tiling.patches import cut_patches, patch_starts
from ..tiling.stitch import StitchPlan

__all__ = ["predict_day", "day_seed", "patch_seeds", "pixel_noise", "scale_spread",
           "member_offset", "crop_starts", "piece_layout", "resolve_inference", "INFERENCE"]

INFERENCE = ("auto", "patches", "tiles")


def resolve_inference(cfg, image_shape, inference: str = "auto") -> str:
    """``"patches"`` or ``"tiles"``: ``"auto"`` predicts on the paper's patches while a day of
    ``image_shape`` (the whole image, so every crop of it agrees) needs at most
    ``cfg.auto_patch_limit`` of them, and on tiles beyond, where patches cost too much.

    On small windows patches are cheap and score better than tiles, whose GroupNorm statistics
    are a tile's rather than the patch's the networks were trained on (on the 32 x 32 to
    48 x 64 test-beds of ``benchmarks/bench_skill.py``, fast() fits passing the skill bar went
    from 15 to 22 of 28; the prediction guide has the table)."""
    if inference not in INFERENCE:
        raise ConfigError(f"inference={inference!r} is not one of {list(INFERENCE)}")
    if inference != "auto":
        return inference
    n = len(patch_starts(tuple(int(v) for v in image_shape), patch=cfg.patch,
                         stride=cfg.infer_stride))
    return "patches" if n <= cfg.auto_patch_limit else "tiles"


def day_seed(seed: int, day, member: int) -> int:
    """A 63-bit seed from (seed, calendar day, member): independent of what else is predicted."""
    ordinal = int(pd.Timestamp(day).toordinal())
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, ordinal, int(member)])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def patch_seeds(seed: int, day, member: int, starts: np.ndarray) -> np.ndarray:
    """One 63-bit seed per patch from (seed, day, member) and its global top-left corner.

    A SplitMix64 finaliser over the day seed and the corner: vectorised, because a full day
    holds ~36 000 patches and one ``SeedSequence`` per patch would cost more than the noise.
    """
    starts = np.asarray(starts, np.uint64).reshape(-1, 2)
    z = np.uint64(day_seed(seed, day, member))
    z = _splitmix64(z ^ (starts[:, 0] << np.uint64(32)) ^ starts[:, 1])
    return (z >> np.uint64(1)).astype(np.int64)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise on uint64: a counter-based hash (numpy's and torch's
    generators are stateful streams; here a value must follow from its coordinates alone)."""
    with np.errstate(over="ignore"):  # modular uint64 arithmetic is the point
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def pixel_noise(seed: int, day, member: int, origin, shape) -> np.ndarray:
    """Standard normal noise on a crop of the whole map, one value per *global* pixel.

    The value at a pixel follows from (seed, day, member, row, column) alone, so every piece
    that covers a pixel (overlapping tiles, the 64 patches at stride 2, any dask crop) starts
    the reverse process from the same number there. Independent draws per piece would make
    neighbouring pieces start from unrelated states: their samples disagree where they meet
    and blending them shrinks the ensemble spread. Box-Muller on the two 32-bit halves of a
    SplitMix64 hash of the coordinates (salted, so it differs from the piece seeds).
    """
    rows = np.arange(origin[0], origin[0] + shape[0], dtype=np.uint64)
    cols = np.arange(origin[1], origin[1] + shape[1], dtype=np.uint64)
    z0 = np.uint64(day_seed(seed, day, member)) ^ np.uint64(0xD1B54A32D192ED03)
    z = _splitmix64(_splitmix64(z0 ^ (rows[:, None] << np.uint64(32))) ^ cols[None, :])
    u1 = ((z >> np.uint64(32)).astype(np.float64) + 0.5) / 2.0**32
    u2 = ((z & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) / 2.0**32
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


def crop_starts(image_shape, origin, crop_shape, patch: int, stride: int,
                offset=(0, 0)) -> np.ndarray:
    """Global patch corners of the whole image's tiling that lie wholly inside a crop.

    The tiling is the whole image's (:func:`~xdownscale.tiling.patches.patch_starts`), so a pixel of
    the crop's interior is covered by exactly the patches that cover it in the whole image,
    as long as the crop reaches ``patch`` pixels past it (or to the image border).
    """
    starts = patch_starts(tuple(image_shape), patch=patch, stride=stride, offset=offset)
    lo = np.asarray(origin)
    hi = lo + np.asarray(crop_shape)
    inside = np.all((starts >= lo) & (starts + patch <= hi), axis=1)
    return starts[inside]


def piece_layout(cfg, image_shape, inference: str = "patches") -> tuple[int, int, int]:
    """``(side, stride, halo)`` of the pieces a day is predicted on.

    ``"patches"``: ``(patch, infer_stride, halo)``, the paper's layout. ``"tiles"``: squares
    of ``tile`` pixels (at most the image's smaller side, rounded down to what the U-Nets'
    poolings divide) whose cores overlap by ``tile_overlap`` pixels: stride
    ``side - 2 * halo - overlap``. Only the whole image's shape enters, so every crop of the
    image is cut with the same layout.
    """
    inference = resolve_inference(cfg, image_shape, inference)
    if inference == "patches":
        return cfg.patch, cfg.infer_stride, cfg.halo
    factor = 2 ** (max(len(cfg.small_widths), len(cfg.large_widths)) - 1)
    side = min(int(cfg.tile), *(int(n) for n in image_shape)) // factor * factor
    if side < cfg.patch:  # an image smaller than a tile: fall back to patches
        return cfg.patch, cfg.infer_stride, cfg.halo
    halo = min(int(cfg.tile_halo), (side - factor) // 2)
    overlap = min(int(cfg.tile_overlap), (side - 2 * halo) // 2)
    return side, side - 2 * halo - overlap, halo


# Roberts' R2 sequence (the plastic number's powers): well-spread offsets for any count
_R2 = (0.7548776662466927, 0.5698402909980532)


def member_offset(member: int, stride: int) -> tuple[int, int]:
    """Where member ``member``'s piece grid starts, ``(dy, dx)`` in ``[0, stride)``.

    Member 0 keeps the plain layout; later members step through the ``stride x stride``
    shifts along a low-discrepancy sequence, so an ensemble's members are cut at different
    places and the ensemble mean averages over more cuts than any one member (at no extra
    cost per member).
    """
    return tuple(int((member * a) % 1.0 * stride) for a in _R2)


def scale_spread(members: np.ndarray, factor: float) -> np.ndarray:
    """Members (m, ...) with their deviations from the ensemble mean multiplied by ``factor``.

    The ensemble mean is unchanged and the spread is ``factor`` times as large; with one
    member, or a factor of 1, the members are returned as they are. The factor is fitted on
    held-out days (:meth:`~xdownscale.Downscaler.calibrate`), in the scaled log10 space the
    models predict in (a linear map of log10, so the log10 spread scales alike).
    """
    factor = float(factor)
    if not np.isfinite(factor) or factor <= 0:
        raise ConfigError(f"spread factor must be a positive number, got {factor!r}")
    if members.shape[0] < 2 or factor == 1.0:
        return members
    mean = members.mean(axis=0, keepdims=True)
    return (mean + factor * (members - mean)).astype(members.dtype, copy=False)


def piece_batch(cfg, side: int) -> int:
    """Pieces per network call: ``predict_batch_size`` patches' worth of pixels (memory)."""
    return max(1, cfg.predict_batch_size * cfg.patch**2 // side**2)


def _batched(n: int, size: int):
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


@torch.no_grad()
def _encode(module, hist: torch.Tensor, starts: np.ndarray, patch: int,
            batch_size: int) -> torch.Tensor:
    """Bottleneck features of every patch, computed once per day.

    The history patches are cut batch by batch: all of a day's at once would hold
    n_lags x patch² floats per patch (1.5 GB for an A1 day at stride 2), for nothing.
    """
    return torch.cat([module.encoder.raw(cut_patches(hist, starts[b], patch))
                      for b in _batched(len(starts), batch_size)])


@torch.no_grad()
def predict_day(module, cfg, hist: np.ndarray, cond: np.ndarray, *, day, members: int = 1,
                sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                seed: int = 0, fusion: str = "posthoc", device="cpu",
                batch_size: int | None = None, origin=(0, 0), image_shape=None,
                inference: str = "patches", spread: float = 1.0) -> np.ndarray:
    """Predict one day on the fine grid, or on a crop of it.

    Parameters
    ----------
    module : TransferModel
        The season's fitted model (eval mode).
    hist : ndarray (n_lags, ny, nx)
        Scaled log10 fine history (the days before ``day``).
    cond : ndarray (C, ny, nx)
        Scaled coarse driver on ``day`` and the covariate maps.
    batch_size : int, optional
        Pieces per network call; default :func:`piece_batch` (``predict_batch_size`` patches'
        worth of pixels). It does not change the numbers beyond float rounding.
    origin, image_shape : optional
        When ``hist`` and ``cond`` are a crop of a larger image: the crop's top-left pixel
        and the whole image's ``(ny, nx)``. The crop is cut with the whole image's piece
        layout and noise, so pixels at least one piece side (:func:`piece_layout`) inside the
        crop edges (or on the image border) equal the whole-image prediction; the caller
        trims the rest.
    inference : {"patches", "tiles"}, default "patches"
        Predict on patches at ``infer_stride`` or on tiles (module notes).
    spread : float, default 1.0
        Factor on the members' deviations from their mean (:func:`scale_spread`); it only
        acts on two or more members.

    Returns
    -------
    ndarray (members, ny, nx)
        Stitched predictions in scaled space; NaN where an input pixel is missing.
    """
    ny, nx = hist.shape[-2:]
    image_shape = (ny, nx) if image_shape is None else tuple(image_shape)
    side, stride, halo = piece_layout(cfg, image_shape, inference)
    batch_size = piece_batch(cfg, side) if batch_size is None else int(batch_size)
    missing = ~(np.isfinite(hist).all(0) & np.isfinite(cond).all(0))
    hist_t = torch.from_numpy(np.nan_to_num(hist, nan=0.0)).to(device)
    cond_t = torch.from_numpy(np.nan_to_num(cond, nan=0.0)).to(device)
    held = {}  # one layout at a time: an A1 day's pieces and features are ~0.1 GB
    # the U-Net's members are one deterministic field: shifting them would give it a spread
    # that measures where it was cut, not how uncertain the day is
    shift = cfg.member_shift and module.kind != "unet"

    def layout(member):
        """The pieces of ``member``'s layout, prepared again only when the offset changes."""
        offset = member_offset(member, stride) if shift else (0, 0)
        if offset not in held:
            held.clear()
            global_starts = crop_starts(image_shape, origin, (ny, nx), side, stride, offset)
            starts = global_starts - np.asarray(origin)
            plan = StitchPlan(starts, (ny, nx), patch=side, halo=halo, window=cfg.window)
            held[offset] = _Pieces(module, hist_t, cond_t, starts, global_starts, plan,
                                   side, batch_size)
        return held[offset]

    # bf16 autocast on a GPU with mixed_precision=True; never on the CPU, so CPU results are
    # the float32 ones on every machine
    cuda = torch.device(device).type == "cuda" and cfg.mixed_precision
    out = np.empty((members, ny, nx), np.float32)
    with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext():
        for m in range(members):
            out[m] = _predict_member(module, cfg, layout(m), member=m, sampler=sampler,
                                     steps=steps, eta=eta, seed=seed, day=day, fusion=fusion,
                                     device=device, origin=origin)
    out = scale_spread(out, spread)
    out[:, missing] = np.nan
    return out


class _Pieces:
    """One layout's pieces of a day (or a crop): cut, encoded once, with the field the large
    model corrects (coarse channel or regressed mean; None for the direct target), which is
    the same for every member and step."""

    def __init__(self, module, hist_t, cond_t, starts, global_starts, plan, side, batch_size):
        self.module, self.starts, self.global_starts, self.plan = module, starts, global_starts, plan
        self.side, self.batch_size, self.n = side, batch_size, starts.shape[0]
        self.cond_p = cut_patches(cond_t, starts, side)
        self.raw = _encode(module, hist_t, starts, side, batch_size)
        k = module.history_maps
        self.last = cut_patches(hist_t[-k:], starts, side) if k else None  # history as maps
        parts = [module.baseline(*self.model_inputs(b), self.cond_p[b])
                 for b in _batched(self.n, batch_size)]
        self.base = None if parts[0] is None else torch.cat(parts)

    def model_inputs(self, b):
        feats = self.module.encoder.resize(self.raw[b], self.side)
        return self.module.inputs(None if self.last is None else self.last[b], self.cond_p[b],
                                  feats=feats)

    def inputs(self, b):
        x, film = self.model_inputs(b)
        base = None if self.base is None else self.base[b]
        return self.module.large_inputs(x, base, self.cond_p[b]), film


def _predict_member(module, cfg, pieces: _Pieces, *, member, sampler, steps, eta, seed, day,
                    fusion, device, origin=(0, 0)) -> np.ndarray:
    """Sample or regress, and stitch, one member on its layout's pieces."""
    n, plan = pieces.n, pieces.plan
    ny, nx = plan.shape
    if module.kind == "ddpm":
        # the starting state is one field over the map; later steps' noise (eta > 0,
        # the ddpm sampler) comes from each piece's own generator
        gen = [torch.Generator(device="cpu").manual_seed(int(s))
               for s in patch_seeds(seed, day, member, pieces.global_starts)]
        x_T = cut_patches(torch.from_numpy(pixel_noise(seed, day, member, origin, (ny, nx)))[None],
                          pieces.starts, pieces.side).to(device)
        raw_out = _sample_ddpm(module.large, pieces.inputs, n, cfg, plan, gen, x_T,
                               sampler=sampler, steps=steps, eta=eta, fusion=fusion,
                               device=device, batch_size=pieces.batch_size)
    else:
        parts = []
        for b in _batched(n, pieces.batch_size):
            x, film = pieces.inputs(b)
            if module.kind == "unet":
                parts.append(module.large(x, film=film))
            else:
                parts.append(module.large.predict(x, film))
        raw_out = torch.cat(parts)
    x0 = module.decode_output(raw_out, pieces.base)
    image, _ = plan.stitch(x0[:, 0].float().cpu().numpy())
    return image


def _sample_ddpm(diffusion, inputs, n, cfg, plan, gen, x_T, *, sampler, steps, eta, fusion,
                 device, batch_size):
    """Reverse diffusion over all patches of a day (steps outside, batches inside), through
    the model's own loop (:meth:`~xdownscale.models.DiffusionModel.sample_loop`).

    ``gen`` is a list of per-patch generators: diffusers draws each row's noise from its own;
    ``x_T`` (n, 1, p, p) is the starting state, cut from :func:`pixel_noise`.
    Per-step fusion stitches each step's clean-image estimate and cuts it back into patches.
    """
    shape = (n, 1, plan.patch, plan.patch)

    def denoise(x_t, t):
        x0 = torch.empty(shape, device=device)
        for b in _batched(n, batch_size):
            x, film = inputs(b)
            x0[b] = diffusion.predict_x0(x_t[b], t, x, film=film)
        return x0

    def fuse(x0):
        fused, _ = plan.stitch(x0[:, 0])
        return plan.cut(fused)[:, None]

    return diffusion.sample_loop(shape, denoise, gen, sampler=sampler, steps=steps, eta=eta,
                                 fuse=fuse if fusion == "per_step" else None, device=device,
                                 initial=x_T)
