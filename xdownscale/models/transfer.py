"""Transfer of the small model's encoder into the large model (paper section 2.2.2).

:class:`FrozenEncoder` holds phi_psi frozen (no gradients, eval mode whatever its parent
does) and resizes its bottleneck bilinearly to the patch size. :class:`TransferModel` is the
one seam between the pretrained small model and the large one: it builds the large model's
inputs from a batch of patches (features + conditioning maps, or maps + a FiLM vector), holds
the target parameterisation (the field itself, or a correction to the upsampled coarse
field) and computes the training loss. Features are computed once per patch and reused for
every denoising step and every ensemble member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DimensionError
from .blocks import bilinear_resize

__all__ = ["FrozenEncoder", "TransferModel", "TARGETS"]

_KINDS = ("ddpm", "unet", "vae")
TARGETS = ("direct", "residual", "mean+residual")
# Conditioning channels kept as maps when the rest become a FiLM vector.
MAP_CHANNELS = ("coarse", "elevation")


class FrozenEncoder(nn.Module):
    """A transferred encoder with frozen weights, always in eval mode.

    The encoder's parameters are frozen *in place*: they are the same tensors as in the
    model they came from, so that model is frozen too (pass ``copy.deepcopy(encoder)`` to
    keep the source trainable).

    Parameters
    ----------
    encoder : nn.Module
        Maps ``(B, T_lag, p, p)`` to a feature map ``(B, F, h, w)``.
    out_size : int or (int, int) or None, default 16
        Spatial size the features are bilinearly resized to (``align_corners=False``);
        ``None`` resizes to the input's spatial size.

    Examples
    --------
    >>> import torch
    >>> from xdownscale.models import TemporalUNet
    >>> frozen = FrozenEncoder(TemporalUNet(40, widths=(8, 16, 32)).encoder, out_size=16)
    >>> frozen(torch.zeros(2, 40, 16, 16)).shape
    torch.Size([2, 32, 16, 16])
    >>> frozen.train().training
    False
    """

    def __init__(self, encoder: nn.Module, out_size: int | tuple[int, int] | None = 16) -> None:
        super().__init__()
        self.encoder = encoder
        self.out_size = out_size
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Ignore ``mode``: the encoder stays in eval mode (normalisation, dropout fixed)."""
        return super().train(False)

    @torch.no_grad()
    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's native feature map (no resizing), without gradients."""
        # The encoder may be shared with the model it came from, which can have been put back
        # into train mode through that other parent: enforce eval at call time as well.
        if self.encoder.training:
            self.encoder.eval()
        return self.encoder(x)

    def resize(self, features: torch.Tensor,
               size: int | tuple[int, int] | None = None) -> torch.Tensor:
        """Bilinearly resize ``features`` to ``size`` (default: ``out_size``)."""
        size = self.out_size if size is None else size
        if size is None:
            return features
        size = (size, size) if isinstance(size, int) else tuple(size)
        if tuple(features.shape[-2:]) == size:
            return features
        return bilinear_resize(features, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of ``x`` (B, T_lag, p, p), resized to ``out_size`` (or p x p if None)."""
        size = self.out_size if self.out_size is not None else tuple(x.shape[-2:])
        return self.resize(self.raw(x), size)


class TransferModel(nn.Module):
    """Small pretrained model + frozen encoder + large model, on batches of patch tensors.

    Parameters
    ----------
    small : nn.Module
        The stage-A model; its ``.encoder`` is transferred and frozen (the whole small model
        is frozen: its decoder is not used after stage A).
    large : nn.Module
        A :class:`~xdownscale.models.DiffusionModel` (``kind="ddpm"``), a
        :class:`~xdownscale.models.ConditionalUNet` (``"unet"``) or a
        :class:`~xdownscale.models.FiLMVAE` (``"vae"``), built for the channels that
        :meth:`inputs` makes (features first, then the conditioning maps).
    kind : {"ddpm", "unet", "vae"}
        Which large model ``large`` is.
    cond_names : sequence of str
        Names of the ``cond`` channels in order; one must be ``"coarse"`` (the coarse day
        upsampled to the fine grid, scaled like the target).
    film : bool, default False
        Average the channels not in ``("coarse", "elevation")`` over each patch into a FiLM
        vector instead of passing them as maps.
    target : {"direct", "residual", "mean+residual"}, default "direct"
        What the large model learns. ``"direct"`` (the paper): the scaled field, through a
        sigmoid head. ``"residual"``: the field minus the coarse channel, divided by
        ``residual_scale`` (its spread on the training days); the large model's head is
        linear and starts at zero, so an untrained model returns the upsampled coarse field.
        ``"mean+residual"`` (diffusion only, as CorrDiff): ``mean_net`` regresses the mean
        as a residual over the coarse channel, and the diffusion model learns what the mean
        leaves, seeing the mean as one more input channel.
    mean_net : nn.Module, optional
        The regression network of ``"mean+residual"`` (a linear-head
        :class:`~xdownscale.models.ConditionalUNet` on the :meth:`inputs` channels).
    use_features : bool, default True
        False is the no-transfer ablation: the large model sees no history features.
    out_size : int, default 16
        Patch size the encoder's features are resized to.
    history_maps : int, default 0
        Also pass the last ``history_maps`` days of ``hist`` to the large model as maps,
        after the conditioning maps (0, the paper: the history reaches the large model only
        through the frozen encoder).

    Notes
    -----
    Batches are dicts with ``"hist"`` (B, T_lag, p, p), ``"cond"`` (B, C, p, p) and ``"y"``
    (B, 1, p, p), the scaled target field.

    Examples
    --------
    >>> import torch
    >>> from xdownscale.models import ConditionalUNet, TemporalUNet
    >>> m = TransferModel(TemporalUNet(5, widths=(8, 16, 32)),
    ...                   ConditionalUNet(32 + 2, widths=(8, 16, 32), head="linear"), "unet",
    ...                   ("coarse", "elevation"), target="residual", out_size=8)
    >>> cond = torch.rand(2, 2, 8, 8)
    >>> out = m.predict_batch(torch.rand(2, 5, 8, 8), cond)   # untrained: the coarse field
    >>> bool(torch.equal(out, cond[:, :1]))
    True
    """

    def __init__(self, small: nn.Module, large: nn.Module, kind: str,
                 cond_names: Sequence[str], *, film: bool = False, target: str = "direct",
                 use_features: bool = True, out_size: int = 16,
                 mean_net: nn.Module | None = None, history_maps: int = 0) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ConfigError(f"kind={kind!r} is not one of {list(_KINDS)}")
        if target not in TARGETS:
            raise ConfigError(f"target={target!r} is not one of {list(TARGETS)}")
        if (target == "mean+residual") != (mean_net is not None) or (
                target == "mean+residual" and kind != "ddpm"):
            raise ConfigError("target='mean+residual' is for the diffusion model and needs a "
                              "mean_net (the regression of the mean); other targets take none")
        self.mean_net = mean_net
        self.cond_names = tuple(cond_names)
        if "coarse" not in self.cond_names:
            raise ConfigError(f"cond_names {self.cond_names} has no 'coarse' channel")
        self.kind, self.target, self.film = kind, target, bool(film)
        self.use_features = bool(use_features)
        self.history_maps = int(history_maps)
        if self.history_maps < 0:
            raise ConfigError(f"history_maps must be >= 0, got {history_maps!r}")
        self.small = small
        self.encoder = FrozenEncoder(small.encoder, out_size=out_size)
        self.large = large
        self._coarse = self.cond_names.index("coarse")
        maps = [i for i, n in enumerate(self.cond_names) if n in MAP_CHANNELS or not film]
        self._map_idx = maps
        self._film_idx = [i for i in range(len(self.cond_names)) if i not in maps]
        # spread of (field - coarse) on the training days; set by the fit, saved with the weights
        self.register_buffer("residual_scale", torch.ones(()))
        self.freeze_small()

    # -- channels ----------------------------------------------------------------------------
    @property
    def n_map_channels(self) -> int:
        """Maps the large model sees besides the features (conditioning and history)."""
        return len(self._map_idx) + self.history_maps

    @property
    def film_dim(self) -> int:
        """Length of the FiLM vector (0 without FiLM)."""
        return len(self._film_idx)

    def inputs(self, hist: torch.Tensor | None, cond: torch.Tensor,
               feats: torch.Tensor | None = None):
        """The large model's conditioning tensor and FiLM vector (or None) for a batch.

        ``feats``, when given, are the encoder's features of ``hist`` (computed once per
        day in prediction); ``hist`` is still needed with ``history_maps``.
        """
        if self.history_maps and hist is None:
            raise DimensionError(f"this model reads the last {self.history_maps} history "
                                 "day(s) as maps: pass hist")
        if not self.use_features:
            feats = cond[:, :0]
        elif feats is None:
            if hist is None:
                raise DimensionError("pass either hist or precomputed feats")
            feats = self.encoder(hist)
        if feats.shape[0] != cond.shape[0] or feats.shape[-2:] != cond.shape[-2:]:
            raise DimensionError(
                f"features {tuple(feats.shape)} and cond {tuple(cond.shape)} differ in batch "
                "or patch size")
        parts = [feats.to(cond.dtype), cond[:, self._map_idx]]
        if self.history_maps:
            if hist.shape[-2:] != cond.shape[-2:] or hist.shape[1] < self.history_maps:
                raise DimensionError(
                    f"hist {tuple(hist.shape)} does not hold {self.history_maps} day(s) of "
                    f"cond's patch size {tuple(cond.shape[-2:])}")
            parts.append(hist[:, -self.history_maps:].to(cond.dtype))
        film = cond[:, self._film_idx].mean(dim=(2, 3)) if self._film_idx else None
        return torch.cat(parts, dim=1), film

    # -- target parameterisation --------------------------------------------------------------
    def baseline(self, x: torch.Tensor, film: torch.Tensor | None,
                 cond: torch.Tensor) -> torch.Tensor | None:
        """The field the large model's output corrects (None for the direct target): the
        coarse channel, or the regressed mean for ``"mean+residual"``."""
        if self.target == "direct":
            return None
        coarse = cond[:, self._coarse:self._coarse + 1]
        if self.target == "residual":
            return coarse
        return coarse + self.residual_scale * self.mean_net(x, film=film)

    def large_inputs(self, x: torch.Tensor, base: torch.Tensor | None,
                     cond: torch.Tensor) -> torch.Tensor:
        """The large model's input channels: :meth:`inputs`, plus the mean (in target units)
        for ``"mean+residual"``."""
        if self.target != "mean+residual":
            return x
        coarse = cond[:, self._coarse:self._coarse + 1]
        return torch.cat([x, (base - coarse) / self.residual_scale], dim=1)

    def encode_target(self, y: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """The scaled field ``y`` in the space the large model learns."""
        return y if base is None else (y - base) / self.residual_scale

    def decode_output(self, out: torch.Tensor, base: torch.Tensor | None) -> torch.Tensor:
        """The large model's output back to the scaled field (inverse of :meth:`encode_target`)."""
        return out if base is None else base + self.residual_scale * out

    # -- training ------------------------------------------------------------------------------
    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of one batch: MAE for ``unet`` and ``ddpm``, KL + scaled L1 for ``vae``.

        The U-Net's MAE is taken on the field whatever the target, so losses of the targets
        compare; the diffusion model and the VAE learn in the target space. With
        ``"mean+residual"`` the mean's MAE (field units) is added, and the diffusion model
        learns the residual of the mean as it is (no gradient flows through it).
        """
        y, cond = batch["y"], batch["cond"]
        x, film = self.inputs(batch["hist"], cond)
        base = self.baseline(x, film, cond)
        extra = 0.0
        if self.target == "mean+residual":
            extra = F.l1_loss(base, y)
            base = base.detach()
        xl = self.large_inputs(x, base, cond)
        if self.kind == "ddpm":
            return self.large.loss(self.encode_target(y, base), xl, film=film) + extra
        if self.kind == "vae":
            return self.large.loss(self.encode_target(y, base), xl, film)["loss"]
        return F.l1_loss(self.decode_output(self.large(xl, film=film), base), y)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that take gradients (the large model's; never the small model's)."""
        return [p for p in self.parameters() if p.requires_grad]

    def freeze_small(self) -> None:
        """Freeze the whole small model (its decoder is no longer used after stage A)."""
        for p in self.small.parameters():
            p.requires_grad_(False)
        self.small.eval()

    def train(self, mode: bool = True) -> TransferModel:
        # Only the large model ever trains here: the small model was fitted in stage A and its
        # encoder is frozen, so both stay in eval mode (dropout/normalisation fixed).
        super().train(mode)
        self.small.eval()
        self.encoder.eval()
        return self

    # -- prediction ----------------------------------------------------------------------------
    @torch.no_grad()
    def predict_batch(self, hist: torch.Tensor | None, cond: torch.Tensor, *,
                      feats: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """The scaled field ``(B, 1, p, p)`` of a batch of patches.

        ``kwargs`` go to :meth:`DiffusionModel.sample` (``sampler``, ``steps``, ``eta``,
        ``generator``, ``fuse``) or :meth:`FiLMVAE.predict` (``generator``, ``sample``). The
        prediction kernel of :mod:`xdownscale.predict.day` samples whole days itself, with the
        same pieces (:meth:`inputs`, :meth:`baseline`, :meth:`large_inputs`, the large
        model, :meth:`decode_output`).
        """
        x, film = self.inputs(hist, cond, feats)
        base = self.baseline(x, film, cond)
        x = self.large_inputs(x, base, cond)
        if self.kind == "ddpm":
            out = self.large.sample(x, film=film, **kwargs)
        elif self.kind == "vae":
            out = self.large.predict(x, film, **kwargs)
        else:
            out = self.large(x, film=film)
        return self.decode_output(out, base)
