"""The configuration of a downscaling run: :class:`DownscaleConfig`.

``DownscaleConfig.paper()`` reproduces the settings of the paper and of the authors' scripts
(see the docs' "method" page); ``DownscaleConfig.fast()`` is a small configuration that
trains in minutes on a laptop CPU and is what the tests and ``xdownscale demo --quick`` use.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields

from ..errors import ConfigError

__all__ = ["DownscaleConfig"]

# Scaling the deviations scales a member's pixel-scale texture with its spread; where the
# spread asks for more than the texture allows, the factor stops where a member is this much
# rougher than the truth (pixel-neighbour semivariance, the calibration days' median):
# on the short-record test-bed as sampled members were 34 % smoother than the truth, and the
# factor of 2 their spread needed made them 37 % rougher (docs, prediction guide);
# Downscaler.calibrate(max_texture=)
MAX_TEXTURE = 1.2

_CHOICES = {
    "scaler": ("minmax", "zscore"),
    "regrid_method": ("cubic", "spline", "linear", "nearest"),
    "small_grid": ("fine", "native"),
    "conditioning": ("channels", "film"),
    "schedule": ("squaredcos_cap_v2", "linear", "scaled_linear"),
    "sampler": ("ddpm", "ddim", "dpmsolver"),
    "fusion": ("posthoc", "per_step"),
    "window": ("hann", "boxcar"),
    "encoder": ("pretrained", "random", "none"),
    "target": ("direct", "residual", "mean+residual"),
    "inference": ("auto", "patches", "tiles"),
    "point_estimate": ("ensemble_mean", "conditional_mean"),
}


@dataclass
class DownscaleConfig:
    """All settings of the two-stage transfer-learning downscaler.

    Every field can be overridden by keyword in :meth:`xdownscale.Downscaler.fit` and
    ``obj.downscale.fit(..., **overrides)``.

    Notes
    -----
    Training budgets are set in optimizer steps as well as epochs, so that a short record or
    a small window still trains to convergence: a stage runs at least ``min_steps`` steps
    (``small_min_steps`` for stage A), in ``epochs`` rounds of at least
    ``ceil(min_steps / epochs)`` steps each (several passes over a small data set make one
    round), and stops early only once ``min_steps`` are done; ``max_steps`` caps it. The
    learning-rate plateau and early-stopping patiences count rounds. On a large record one
    pass exceeds the round length and a round is an epoch, as in the paper.
    """

    # data preparation
    n_lags: int = 40
    buffer_days: int = 45
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    holdout: float = 0.2
    eps: float = 1e-6
    scaler: str = "minmax"
    regrid_method: str = "cubic"
    # clip the regridded driver to the range of the 2 x 2 coarse cells around each pixel:
    # bicubic overshoot beside a plume goes negative and log10 turns it into a hole at eps,
    # which a residual model must fill with a spike (docs' data-preparation guide)
    regrid_clamp: bool = True
    small_grid: str = "fine"  # stage A on coarse regridded to the fine grid, or "native"
    # patches and stitching
    patch: int = 16
    train_stride: int = 8
    infer_stride: int = 2
    halo: int = 4
    window: str = "hann"
    patches_per_day: int | None = None  # random subset of a day's patches per epoch (None: all)
    # prediction pieces: "patches" (patch at infer_stride, halo) or "tiles" of `tile` pixels
    # with `tile_halo`, neighbouring cores overlapping by `tile_overlap` and Hann-blended.
    # The default tile is the training patch stepping by 16 - 2*4 - 3 = 5 pixels, so each
    # pixel is computed (16 / 5)^2 = 10 times instead of 64: within 0.001 R2 and 0.9 % CRPS
    # of stride-2 patches with member_shift (below), where 24-pixel tiles (4 times a pixel) lost up
    # to 0.015 R2 and 6.7 % CRPS: networks trained on 16-pixel patches, with GroupNorm over
    # the whole input, predict best on 16-pixel inputs (benchmarks/bench_tiles.py; docs'
    # prediction guide). "auto": patches while a day needs at most `auto_patch_limit` of
    # them (a 64 x 64 window at stride 4: 169), where they are cheap and score better
    # (bench_skill.py: 15 -> 22 of 28 fast() fits beat the bar), tiles beyond
    inference: str = "auto"
    auto_patch_limit: int = 256
    tile: int = 16
    tile_halo: int = 4
    tile_overlap: int = 3
    # cut ensemble member m on the piece grid shifted by member_offset(m, stride) (member 0:
    # the plain grid), so an ensemble averages over more cuts than one member at no extra
    # cost: on the test-beds 4 members at stride 5 then score as stride-2 patches do
    # (bench_tiles.py; docs' prediction guide). False: every member on the same pieces
    member_shift: bool = True
    # stage A: small temporal U-Net on the coarse record
    small_widths: tuple[int, ...] = (64, 128, 256)
    small_lr: float = 5e-4
    small_batch_size: int = 32
    small_epochs: int = 20
    small_plateau_patience: int = 3
    small_early_stop: int = 6
    small_max_days: int | None = None  # cap on coarse training days (None: the whole record)
    # budget in optimizer steps: at least small_min_steps (more epochs on a short record), at
    # most small_max_steps (None: no cap); see DownscaleConfig's notes
    small_min_steps: int = 0
    small_max_steps: int | None = None
    # stage B: the large model on the coarse/fine overlap
    encoder: str = "pretrained"  # ablations: "random" (frozen, untrained) or "none" (no features)
    # "residual": the large model learns a correction to the upsampled coarse day (starts at
    # bicubic); "direct": the scaled field itself, through a sigmoid (the paper);
    # "mean+residual" (ddpm only): a regressed mean plus diffusion on what it leaves (CorrDiff)
    target: str = "residual"
    large_widths: tuple[int, ...] = (128, 256, 512)
    conditioning: str = "channels"
    lr: float = 1e-4
    batch_size: int = 64
    epochs: int = 30
    plateau_patience: int = 12
    plateau_factor: float = 0.5
    early_stop: int = 24
    # 2000 steps: 30 rounds of 67; binds only on short records (a 20-year one has more per epoch)
    min_steps: int = 2000
    max_steps: int | None = None
    grad_clip: float = 0.5
    weight_decay: float = 1e-5
    # probability that a stage-B training sample sees the coarse record (on the fine grid) as
    # its history instead of the fine one, so that the model also predicts well from a history
    # less sharp than the truth, as a rollout's own predictions are
    history_mix: float = 0.0
    # probability that a stage-B training sample's most recent history day is the model's own
    # prediction of it (its point, made without gradient from the true days before), as from a
    # rollout's second day on: one step of "pushforward" training
    pushforward: float = 0.0
    # the last `history_maps` days of the fine history passed to the large model as maps
    # beside the frozen encoder's features (0, the paper: history only through the encoder,
    # which stage A trained on the coarse record)
    history_maps: int = 0
    # diffusion
    timesteps: int = 1000
    schedule: str = "squaredcos_cap_v2"
    sampler: str = "ddim"
    # 20: on the demo pair DDIM-50 adds 0.002 R2 for 3x the time and a worse CRPS
    # (benchmarks/bench_samplers.py; figures in the docs' prediction guide)
    sample_steps: int | None = 10
    eta: float = 0.0
    # share of the DDPM's training samples drawn at the last (pure-noise) step, where its x0 is
    # the conditional mean that the ensemble mean approximates; the rest uniform over steps.
    # fast() takes 0.25 with point_estimate="conditional_mean" (docs' training guide); 0 here
    # and in paper(): the large networks were not measured with it
    mean_share: float = 0.0
    # what the DDPM's point field <var> is: the mean of the sampled members, or the network's
    # one-step estimate of the conditional mean (one DDIM step from noise, one pass; the
    # members still give <var>_std and <var>_members), the CorrDiff split of a mean and
    # samples around it
    point_estimate: str = "ensemble_mean"
    fusion: str = "posthoc"
    # tie each predicted day to its coarse driver: shift its log10 field so that its mean over
    # every coarse cell minus the driver's equals that difference on the training days
    # (predict, rollout). None: on for the generative models, off for the U-Net. On the seven
    # test-beds x 2 seeds (benchmarks/bench_skill.py --untied) it raised the fast() DDPM's
    # R2 (log10) on 10 of 14 fits and its worst margin over bias-corrected bicubic from
    # -0.014 to +0.028; the U-Net, which follows its driver already, lost 0.014 on average
    # (13 -> 12 fits past the bar). It keeps DDPM rollouts from drifting
    # (bench_rollout_skill.py; tables in the training and rollout guides)
    coarse_consistency: bool | None = None
    # VAE baseline
    vae_latent: int = 64
    vae_beta: float = 1.0
    vae_recon_scale: float = 100.0
    # after stage B: score the validation days against bicubic interpolation (est.validation_)
    validation: bool = True
    # after stage B (ddpm, vae): scale the ensemble spread to the error of its mean on the
    # validation days (est.calibrate; est.spread_)
    calibrate_spread: bool = True
    # execution
    predict_batch_size: int = 1024
    device: str = "auto"
    mixed_precision: bool = False
    seed: int = 0
    verbose: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> DownscaleConfig:
        """Check the type and range of every field; raise :class:`ConfigError` naming the first
        bad one, before any training starts."""
        _check_types(self)
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(f"{name}={value!r} is not one of {list(choices)}")
        positive = ("n_lags", "patch", "train_stride", "infer_stride", "small_batch_size",
                    "small_epochs", "batch_size", "epochs", "timesteps", "predict_batch_size",
                    "small_early_stop", "early_stop", "vae_latent", "auto_patch_limit")
        for name in positive:
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("buffer_days", "halo", "small_plateau_patience", "plateau_patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("patches_per_day", "small_max_days"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be None or a positive integer, got {value!r}")
        for name in ("lr", "small_lr", "grad_clip", "eps", "vae_recon_scale"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "vae_beta"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(f"plateau_factor must be in (0, 1), got {self.plateau_factor!r}")
        if not 0 <= self.mean_share < 1:
            raise ConfigError(f"mean_share must be in [0, 1), got {self.mean_share!r}")
        if not 0 <= self.history_mix <= 1:
            raise ConfigError(f"history_mix must be a probability in [0, 1], got "
                              f"{self.history_mix!r}")
        if not 0 <= self.pushforward <= 1:
            raise ConfigError(f"pushforward must be a probability in [0, 1], got "
                              f"{self.pushforward!r}")
        if (not isinstance(self.history_maps, int) or isinstance(self.history_maps, bool)
                or not 0 <= self.history_maps <= self.n_lags):
            raise ConfigError(f"history_maps must be an integer in [0, n_lags={self.n_lags}], "
                              f"got {self.history_maps!r}")
        if not 0 <= self.eta <= 1:
            raise ConfigError(f"eta must be in [0, 1] (0: deterministic DDIM), got {self.eta!r}")
        # The sampling noise is seeded from 32 bits of the seed: a larger or negative seed
        # would silently repeat another one, so it is refused.
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be in [0, 2**32 - 1], got {self.seed}")
        if any(w < 1 for w in (*self.small_widths, *self.large_widths)):
            raise ConfigError("small_widths and large_widths must be positive integers")
        if self.buffer_days < self.n_lags:
            raise ConfigError(
                f"buffer_days={self.buffer_days} is shorter than n_lags={self.n_lags}: the first "
                "days of each season would have no complete lag window"
            )
        if len(self.split) != 3 or any(f < 0 for f in self.split) or abs(sum(self.split) - 1) > 1e-6:
            raise ConfigError(f"split must be three non-negative fractions summing to 1, got {self.split}")
        if not 0 <= self.holdout < 1:
            raise ConfigError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.patch % 4:
            raise ConfigError(f"patch must be a multiple of 4 (two 2x poolings), got {self.patch}")
        if not 0 <= 2 * self.halo < self.patch:
            raise ConfigError(f"halo={self.halo} leaves no core in a {self.patch}-pixel patch")
        if self.infer_stride > self.patch - 2 * self.halo:
            raise ConfigError(
                f"infer_stride={self.infer_stride} exceeds the core size patch - 2*halo = "
                f"{self.patch - 2 * self.halo}: some pixels would be covered by no core"
            )
        for name in ("min_steps", "small_min_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        for low, high in (("min_steps", "max_steps"), ("small_min_steps", "small_max_steps")):
            value = getattr(self, high)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < max(1, getattr(self, low))):
                raise ConfigError(f"{high} must be None or an integer >= max(1, {low}), "
                                  f"got {value!r}")
        if self.sample_steps is not None and not 1 <= self.sample_steps <= self.timesteps:
            raise ConfigError(f"sample_steps must be in [1, timesteps], got {self.sample_steps}")
        if len(self.small_widths) < 3 or len(self.large_widths) < 3:
            raise ConfigError("small_widths and large_widths need three levels")
        if not isinstance(self.tile, int) or self.tile < self.patch or self.tile % 4:
            raise ConfigError(f"tile must be a multiple of 4 and >= patch, got {self.tile!r}")
        if not isinstance(self.tile_halo, int) or not 0 <= 2 * self.tile_halo < self.tile:
            raise ConfigError(f"tile_halo={self.tile_halo!r} leaves no core in a {self.tile} px tile")
        if (not isinstance(self.tile_overlap, int) or self.tile_overlap < 0
                or 2 * self.tile_halo + self.tile_overlap >= self.tile):
            raise ConfigError(
                f"tile_overlap={self.tile_overlap!r} must be a non-negative integer with "
                f"2 * tile_halo + tile_overlap < tile ({self.tile}): tiles need a stride >= 1")
        return self

    def ties_to_driver(self, model: str) -> bool:
        """Whether ``model``'s predictions get the coarse-consistency step by default."""
        if self.coarse_consistency is None:
            return model in ("ddpm", "vae")
        return bool(self.coarse_consistency)

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def paper(cls, **overrides) -> DownscaleConfig:
        """The paper's settings (1000 diffusion steps sampled in full, widths 64/128/256 and
        128/256/512, stride 8 for training and 2 for inference on patches, halo 4, T_lag 40,
        the scaled field as the target through a sigmoid, budgets in epochs only, diffusion steps
        drawn uniformly in training, predictions not tied to the coarse driver after the
        fact, the bicubic driver not clamped, every member cut on the same patches)."""
        return cls(**{"sampler": "ddpm", "sample_steps": 1000, "target": "direct", "min_steps": 0,
                      "inference": "patches", "coarse_consistency": False, "mean_share": 0.0,
                      "regrid_clamp": False, "point_estimate": "ensemble_mean",
                      "member_shift": False, **overrides})

    @classmethod
    def fast(cls, **overrides) -> DownscaleConfig:
        """A small configuration that trains in minutes on a CPU (tests, ``demo --quick``)."""
        base = dict(
            small_widths=(16, 32, 64),
            small_epochs=4,
            small_batch_size=64,
            small_plateau_patience=1,
            small_early_stop=2,
            small_max_days=300,
            # stage A takes at least 400 steps (rounds of 100): on a 32 x 32 window 300 days
            # are 32 steps a pass, and four epochs (128 steps) left both models within 0.03 R2
            # of bias-corrected bicubic on the long-small test-bed; with 400 they beat it by
            # 0.08-0.09 (benchmarks/bench_skill.py). A 48 x 64 window takes 484 steps in four
            # epochs anyway and is unchanged
            small_min_steps=400,
            large_widths=(32, 64, 128),
            lr=1e-3,
            batch_size=64,
            epochs=8,
            # 800 steps in rounds of 100: on a 200-day 48 x 64 test-bed the residual DDPM and
            # U-Net beat bias-corrected bicubic by 0.07-0.10 R2 (benchmarks/bench_skill.py).
            # At most 840: rounds are whole passes, so eight rounds of a 200-day 48 x 64
            # record are 1056 steps; capped, its fit takes under 3 minutes on two cores. The
            # small windows' eight rounds (816-832 steps) stay under the cap: their 30-day
            # rollouts changed by up to 0.06 R2 with any change of their training (600 or
            # 800 steps), below bicubic (training guide, "Fit time")
            min_steps=800,
            max_steps=840,
            plateau_patience=2,
            early_stop=4,
            sample_steps=10,
            # the DDPM's point prediction is its one-step conditional mean, trained on a
            # quarter of its samples (docs' training guide: with the clamped driver it beats
            # bias-corrected bicubic on more test-bed fits than the 8-member mean of the
            # uniformly trained model; the members still give the spread)
            mean_share=0.25,
            point_estimate="conditional_mean",
            # mixed_precision stays False: bfloat16 stage B fits a 200-day 48 x 64 record in
            # 176 s instead of 228 s on two AVX512-BF16 cores with the same one-day skill, but
            # its rollouts on the two small-window test-beds lost 0.02-0.05 R2 at leads 21-30
            # (both seeds), below bias-corrected bicubic on short-record (training guide)
            infer_stride=4,
            patches_per_day=None,
        )
        base.update(overrides)
        return cls(**base)

    # -- (de)serialisation ------------------------------------------------------------------
    def replace(self, **overrides) -> DownscaleConfig:
        """A copy with some fields changed; unknown names raise :class:`ConfigError`."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(
                f"unknown configuration field(s) {sorted(unknown)}; valid fields are "
                f"{sorted(f.name for f in fields(self))}"
            )
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, saved: bool = False) -> DownscaleConfig:
        """The configuration of ``data`` (:meth:`to_dict`'s output). ``saved``: ``data`` was
        written by a fit, possibly an older one; fields added since take the value that
        reproduces how that fit was made (:data:`_BEFORE_FIELD`), not today's default."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s) {sorted(unknown)}")
        if saved:
            data = {**{k: v for k, v in _BEFORE_FIELD.items() if k not in data}, **data}
        values = {}
        for name, value in data.items():
            if name.endswith("widths") or name == "split":
                value = tuple(value)
            values[name] = value
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


#: Fields added after models were first saved, with the behaviour of fits saved without them.
_BEFORE_FIELD = {"regrid_clamp": False, "point_estimate": "ensemble_mean", "member_shift": False}


def _type_ok(value, tp) -> bool:
    """Whether ``value`` fits the annotation ``tp`` (int, float, str, bool, dict, tuples,
    unions, Literal); annotations it does not know pass."""
    import math
    import numbers
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:  # bools and floats are no integers: steps=1.5 must not be truncated
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if tp is float:
        return (isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value))
    if tp in (str, dict, list):
        return isinstance(value, tp)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(value) == len(args) and all(_type_ok(v, a) for v, a in zip(value, args, strict=False))
    return True


def _check_types(cfg) -> None:
    import typing

    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        tp = hints.get(f.name)
        if tp is not None and not _type_ok(value, tp):
            shown = tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")
            raise ConfigError(f"{f.name} must be of type {shown}, got {value!r} "
                              f"({type(value).__name__})")
