"""Transfer of the small model's encoder into the large model (paper section 2.2.2).

:class:`FrozenEncoder` holds phi_psi frozen (no gradients, eval mode whatever its parent
does) and resizes its bottleneck bilinearly to the patch size. :class:`TransferModel`
composes it with a large network; its features are computed once per patch and reused for
every denoising step and every ensemble member.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DimensionError
from .blocks import bilinear_resize

__all__ = ["FrozenEncoder", "TransferModel"]

_KINDS = ("ddpm", "unet", "vae")


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
    """Frozen transferred encoder + large model, on batches of patch tensors.

    Parameters
    ----------
    frozen_encoder : FrozenEncoder
        The transferred encoder.
    net : nn.Module
        The large model: a :class:`~xdownscale.models.DiffusionModel` (``kind="ddpm"``), a
        :class:`~xdownscale.models.ConditionalUNet` (``"unet"``) or a
        :class:`~xdownscale.models.FiLMVAE` (``"vae"``), built for
        ``F + C`` conditioning channels (features first, then ``cond``).
    kind : {"ddpm", "unet", "vae"}
        Which large model ``net`` is.

    Notes
    -----
    Batches are dicts with ``"history"`` (B, T_lag, p, p), ``"cond"`` (B, C, p, p: the coarse
    day t+1, elevation and covariate maps), ``"target"`` (B, 1, p, p) and optionally
    ``"film"`` (B, F_film).
    """

    def __init__(self, frozen_encoder: FrozenEncoder, net: nn.Module, kind: str) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ConfigError(f"kind={kind!r} is not one of {list(_KINDS)}")
        if not isinstance(frozen_encoder, FrozenEncoder):
            frozen_encoder = FrozenEncoder(frozen_encoder)
        self.encoder = frozen_encoder
        self.net = net
        self.kind = kind

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that take gradients (the large model's; never the encoder's)."""
        return [p for p in self.parameters() if p.requires_grad]

    def features(self, history: torch.Tensor) -> torch.Tensor:
        """Transfer features ``(B, F, p, p)`` of the lag window; compute once per patch."""
        return self.encoder(history)

    def inputs(self, cond: torch.Tensor, *, history: torch.Tensor | None = None,
               features: torch.Tensor | None = None) -> torch.Tensor:
        """The large model's conditioning: features and ``cond`` concatenated as channels."""
        if features is None:
            if history is None:
                raise DimensionError("pass either history or precomputed features")
            features = self.features(history)
        if features.shape[0] != cond.shape[0] or features.shape[-2:] != cond.shape[-2:]:
            raise DimensionError(
                f"features {tuple(features.shape)} and cond {tuple(cond.shape)} differ in batch "
                "or patch size"
            )
        return torch.cat([features.to(cond.dtype), cond], dim=1)

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of one batch: MAE for ``unet`` and ``ddpm``, KL + scaled L1 for ``vae``."""
        x = self.inputs(batch["cond"], history=batch["history"])
        film = batch.get("film")
        target = batch["target"]
        if self.kind == "ddpm":
            return self.net.loss(target, x, film=film)
        if self.kind == "vae":
            return self.net.loss(target, x, film)["loss"]
        return F.l1_loss(self.net(x, film=film), target)

    @torch.no_grad()
    def predict(self, cond: torch.Tensor, *, history: torch.Tensor | None = None,
                features: torch.Tensor | None = None, film: torch.Tensor | None = None,
                **kwargs) -> torch.Tensor:
        """Prediction ``(B, 1, p, p)`` in [0, 1].

        ``kwargs`` go to :meth:`DiffusionModel.sample` (``sampler``, ``steps``, ``eta``,
        ``generator``, ``fuse``) or :meth:`FiLMVAE.predict` (``generator``, ``sample``).
        """
        x = self.inputs(cond, history=history, features=features)
        if self.kind == "ddpm":
            return self.net.sample(x, film=film, **kwargs)
        if self.kind == "vae":
            return self.net.predict(x, film, **kwargs)
        return self.net(x, film=film)

    def forward(self, history: torch.Tensor, cond: torch.Tensor,
                film: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """Same as :meth:`predict` from the lag window."""
        return self.predict(cond, history=history, film=film, **kwargs)
