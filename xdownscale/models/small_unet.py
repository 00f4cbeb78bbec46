"""The small temporal U-Net f_Omega (paper section 2.2.1, eq. 1).

It predicts the (scaled) coarse field of day t+1 from the ``T_lag`` days before it, given as
input channels. After training, its encoder is frozen and transferred: the transfer feature
phi_psi is the *bottleneck* of the U-Net (``widths[-1]`` channels at a quarter of the patch
size for three widths: 256 x 4 x 4 for a 16 x 16 patch with the paper's widths), as in the
authors' scripts. The skip connections belong to the U-Net's own prediction path only; they
are not part of the transferred feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import UNetDecoder, UNetEncoder

__all__ = ["TemporalUNet"]


class TemporalUNet(nn.Module):
    """2-D U-Net with the lag days as input channels and a linear one-channel output.

    Parameters
    ----------
    in_channels : int
        Number of lag days ``T_lag`` (the channels of the input).
    widths : tuple of int, default (64, 128, 256)
        Channels per level; ``len(widths) - 1`` 2x downsamplings, so three widths map a
        16 x 16 patch to a 4 x 4 bottleneck.
    out_channels : int, default 1
        Output channels (the predicted day).
    down : {"pool", "conv"}, default "pool"
        Downsampling kind.
    up : {"bilinear", "transposed"}, default "bilinear"
        Upsampling kind.

    Attributes
    ----------
    encoder : UNetEncoder
        Maps ``(B, in_channels, p, p)`` to the bottleneck ``(B, widths[-1], p/4, p/4)``.
    decoder : UNetDecoder
        The expanding path, used only by :meth:`forward`.

    Examples
    --------
    >>> import torch
    >>> net = TemporalUNet(40, widths=(8, 16, 32))
    >>> net(torch.zeros(2, 40, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    >>> net.encoder(torch.zeros(2, 40, 16, 16)).shape
    torch.Size([2, 32, 4, 4])
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (64, 128, 256),
                 out_channels: int = 1, *, down: str = "pool", up: str = "bilinear") -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.widths = tuple(int(w) for w in widths)
        self.encoder = UNetEncoder(self.in_channels, self.widths, down=down)
        self.decoder = UNetDecoder(self.widths, self.out_channels, up=up)

    @property
    def feature_channels(self) -> int:
        """Channels of the transfer feature (the bottleneck)."""
        return self.widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the next day ``(B, out_channels, p, p)`` from lags ``(B, T_lag, p, p)``.

        The output is linear (no activation): the small model regresses the scaled coarse
        field with an L1 loss.
        """
        bottleneck, skips = self.encoder.forward_with_skips(x)
        return self.decoder(bottleneck, skips)

    def loss(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Pixel-wise mean absolute error of the next-day prediction (the paper's L1 loss)."""
        return F.l1_loss(self(history), target)
