"""The large conditional U-Net f_Theta (paper section 2.2.2, eq. 2).

One network serves three roles: the deterministic regression U-Net (inputs: transfer
features + coarse day t+1 + elevation + covariate maps), the x0-predicting denoiser of the
diffusion model (the noisy image as one more input channel, plus a timestep embedding) and
the decoder of the FiLM-VAE (latent code through FiLM). Its sigmoid head matches the
min-max scaled data in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, DimensionError
from .blocks import ConvBlock, TimestepEmbedding, UNetDecoder, UNetEncoder

__all__ = ["ConditionalUNet"]


class ConditionalUNet(nn.Module):
    """U-Net with optional timestep embedding and FiLM conditioning, sigmoid output.

    Parameters
    ----------
    in_channels : int
        Input channels (all conditioning maps, plus the noisy image for diffusion).
    widths : tuple of int, default (128, 256, 512)
        Channels per level; ``len(widths) - 1`` 2x downsamplings.
    out_channels : int, default 1
        Output channels.
    time_embed : bool, default False
        Add a diffusion-timestep embedding in every block; ``forward`` then needs ``t``.
    film_dim : int, default 0
        Length of a conditioning vector (e.g. the covariates averaged over the patch) that
        scales and shifts every block through FiLM; ``forward`` then needs ``film``.
    down, up : str
        Down/upsampling kinds, see :class:`~xdownscale.models.blocks.UNetEncoder`.
    head : {"sigmoid", "linear"}, default "sigmoid"
        Output activation. ``"sigmoid"`` maps to [0, 1] (the paper's min-max scaled field);
        ``"linear"`` is unbounded and starts at exactly zero (zero-initialised last layer), for
        networks that predict a correction to a baseline: untrained, they return the baseline.

    Examples
    --------
    >>> import torch
    >>> net = ConditionalUNet(5, widths=(8, 16, 32), time_embed=True, film_dim=3)
    >>> y = net(torch.zeros(2, 5, 16, 16), t=torch.tensor([0, 999]), film=torch.zeros(2, 3))
    >>> y.shape, bool(((y >= 0) & (y <= 1)).all())
    (torch.Size([2, 1, 16, 16]), True)
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...] = (128, 256, 512),
                 out_channels: int = 1, time_embed: bool = False, film_dim: int = 0, *,
                 down: str = "pool", up: str = "bilinear", head: str = "sigmoid") -> None:
        super().__init__()
        if head not in ("sigmoid", "linear"):
            raise ConfigError(f"head={head!r} is not one of ['sigmoid', 'linear']")
        self.head_kind = head
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.widths = tuple(int(w) for w in widths)
        self.time_embed = bool(time_embed)
        self.film_dim = int(film_dim)
        emb_dim = 4 * self.widths[0] if self.time_embed else 0
        # a shared MLP lifts the (few, raw) covariates before each block's own FiLM projection
        cond_dim = 4 * self.widths[0] if self.film_dim else 0
        self.t_embed = TimestepEmbedding(self.widths[0], emb_dim) if self.time_embed else None
        self.film_mlp = (nn.Sequential(nn.Linear(self.film_dim, cond_dim), nn.SiLU(),
                                       nn.Linear(cond_dim, cond_dim)) if self.film_dim else None)
        kw = dict(emb_dim=emb_dim, film_dim=cond_dim)
        self.encoder = UNetEncoder(self.in_channels, self.widths, down=down, **kw)
        self.mid = ConvBlock(self.widths[-1], self.widths[-1], **kw)
        self.decoder = UNetDecoder(self.widths, self.out_channels, up=up, **kw)
        if head == "linear":
            nn.init.zeros_(self.decoder.head.weight)
            nn.init.zeros_(self.decoder.head.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None,
                film: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``x`` (B, in_channels, p, p) to ``(B, out_channels, p, p)`` (in [0, 1] with the
        sigmoid head).

        Parameters
        ----------
        x : Tensor (B, in_channels, p, p)
            Input maps.
        t : Tensor (B,) or scalar, optional
            Diffusion steps; required iff ``time_embed``.
        film : Tensor (B, film_dim), optional
            Conditioning vector; required iff ``film_dim > 0``.

        Raises
        ------
        DimensionError
            If the channels, ``t`` or ``film`` do not match the construction.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise DimensionError(
                f"expected input of shape (B, {self.in_channels}, p, p), got {tuple(x.shape)}"
            )
        emb = None
        if self.t_embed is not None:
            if t is None:
                raise DimensionError("this network was built with time_embed=True: pass t")
            t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
            emb = self.t_embed(t)
        cond = None
        if self.film_mlp is not None:
            if film is None or film.ndim != 2 or film.shape[1] != self.film_dim:
                got = None if film is None else tuple(film.shape)
                raise DimensionError(f"expected film of shape (B, {self.film_dim}), got {got}")
            cond = self.film_mlp(film.to(x.dtype))
        h, skips = self.encoder.forward_with_skips(x, emb, cond)
        h = self.mid(h, emb, cond)
        out = self.decoder(h, skips, emb, cond)
        return torch.sigmoid(out) if self.head_kind == "sigmoid" else out
