"""The VAE comparison path (paper section 2.2): LSTM autoencoder (small), FiLM VAE (large).

The paper reports that its VAE collapses to the conditional mean (the KL term wins and the
decoder ignores z). Nothing here counteracts that (no KL annealing or free bits): the model
is the paper's baseline, not an improved one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DimensionError
from .blocks import ConvBlock, Downsample, Upsample, check_patch_size, num_groups
from .large_unet import ConditionalUNet

__all__ = ["FiLMVAE", "LSTMAutoencoder"]


class _LSTMEncoder(nn.Module):
    """Lag window ``(B, T, p, p)`` -> feature map ``(B, F, p/4, p/4)``.

    Each day is reduced by a small shared CNN to a ``frame_channels x p/4 x p/4`` map and
    flattened into a vector; an LSTM reads the vectors oldest first and its last hidden state
    is projected to the feature map.
    """

    def __init__(self, n_lags: int, patch: int, hidden: int, features: int,
                 frame_channels: int) -> None:
        super().__init__()
        self.n_lags, self.patch, self.features = n_lags, patch, features
        self.q = patch // 4
        c = frame_channels
        self.frame = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.GroupNorm(num_groups(c), c), nn.SiLU(),
            Downsample(c, "pool"),
            nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(num_groups(c), c), nn.SiLU(),
            Downsample(c, "pool"),
        )
        self.lstm = nn.LSTM(c * self.q * self.q, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, features * self.q * self.q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.n_lags or x.shape[-1] != self.patch \
                or x.shape[-2] != self.patch:
            raise DimensionError(
                f"expected (B, {self.n_lags}, {self.patch}, {self.patch}), got {tuple(x.shape)}"
            )
        b, t = x.shape[:2]
        frames = self.frame(x.reshape(b * t, 1, self.patch, self.patch)).reshape(b, t, -1)
        _, (h, _) = self.lstm(frames)
        return self.proj(h[-1]).reshape(b, self.features, self.q, self.q)


class LSTMAutoencoder(nn.Module):
    """Small model of the VAE path: LSTM over the lag sequence, conv decoder to the next day.

    Parameters
    ----------
    n_lags : int
        Number of lag days T_lag.
    patch : int, default 16
        Patch size p (a multiple of 4).
    hidden : int, default 64
        LSTM hidden size.
    features : int, optional
        Channels F of the encoder's feature map (default: ``hidden``).
    frame_channels : int, default 8
        Channels of the per-day CNN.

    Attributes
    ----------
    encoder : nn.Module
        ``(B, n_lags, p, p) -> (B, F, p/4, p/4)``, the transferred feature.

    Examples
    --------
    >>> import torch
    >>> m = LSTMAutoencoder(10, patch=16, hidden=12)
    >>> m.encoder(torch.zeros(2, 10, 16, 16)).shape, m(torch.zeros(2, 10, 16, 16)).shape
    (torch.Size([2, 12, 4, 4]), torch.Size([2, 1, 16, 16]))
    """

    def __init__(self, n_lags: int, patch: int = 16, hidden: int = 64, *,
                 features: int | None = None, frame_channels: int = 8) -> None:
        super().__init__()
        if patch % 4:
            raise DimensionError(f"patch must be a multiple of 4, got {patch}")
        self.n_lags, self.patch, self.hidden = int(n_lags), int(patch), int(hidden)
        feats = self.hidden if features is None else int(features)
        self.encoder = _LSTMEncoder(self.n_lags, self.patch, self.hidden, feats,
                                    int(frame_channels))
        half = max(feats // 2, 4)
        self.up1 = nn.Sequential(Upsample(feats, "bilinear"), ConvBlock(feats, half))
        self.up2 = nn.Sequential(Upsample(half, "bilinear"), ConvBlock(half, half))
        self.head = nn.Conv2d(half, 1, 1)

    @property
    def feature_channels(self) -> int:
        """Channels of the transfer feature."""
        return self.encoder.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the next day ``(B, 1, p, p)`` (linear output) from lags ``(B, T, p, p)``."""
        return self.head(self.up2(self.up1(self.encoder(x))))

    def loss(self, history: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Pixel-wise MAE of the next-day prediction."""
        return F.l1_loss(self(history), target)


class FiLMVAE(nn.Module):
    """Conditional VAE: q(z | y, cond) and a FiLM-conditioned U-Net decoder p(y | z, cond, film).

    Parameters
    ----------
    cond_channels : int
        Channels of the conditioning maps (transfer features, coarse day, covariates).
    film_dim : int
        Length of an extra conditioning vector (0: none); z and it drive the decoder's FiLM.
    latent : int, default 64
        Size of z.
    widths : tuple of int, default (32, 64, 128)
        Channels per level of the posterior encoder and of the decoder U-Net.
    recon_scale : float, default 100.0
        Weight of the pixel-wise L1 reconstruction term.
    beta : float, default 1.0
        Weight of the KL term.
    head : {"sigmoid", "linear"}, default "sigmoid"
        The decoder's output head (see :class:`~xdownscale.models.ConditionalUNet`).

    Examples
    --------
    >>> import torch
    >>> vae = FiLMVAE(3, film_dim=2, latent=4, widths=(8, 16, 32))
    >>> parts = vae.loss(torch.rand(2, 1, 16, 16), torch.rand(2, 3, 16, 16), torch.rand(2, 2))
    >>> sorted(parts)
    ['kl', 'loss', 'recon']
    """

    def __init__(self, cond_channels: int, film_dim: int = 0, latent: int = 64,
                 widths: tuple[int, ...] = (32, 64, 128), recon_scale: float = 100.0,
                 beta: float = 1.0, head: str = "sigmoid") -> None:
        super().__init__()
        self.cond_channels, self.film_dim, self.latent = int(cond_channels), int(film_dim), int(latent)
        self.recon_scale, self.beta = float(recon_scale), float(beta)
        self.out_channels = 1
        widths = tuple(int(w) for w in widths)
        chans = (1 + self.cond_channels, *widths)
        layers: list[nn.Module] = []
        for i in range(len(widths)):
            if i:
                layers.append(Downsample(chans[i], "pool"))
            layers.append(ConvBlock(chans[i], chans[i + 1]))
        self.posterior = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                       nn.Linear(widths[-1], 2 * self.latent))
        self._n_down = len(widths) - 1
        self.decoder = ConditionalUNet(self.cond_channels, widths, out_channels=1,
                                       film_dim=self.latent + self.film_dim, head=head)

    def _film(self, z: torch.Tensor, film: torch.Tensor | None) -> torch.Tensor:
        if self.film_dim:
            if film is None:
                raise DimensionError(f"this VAE was built with film_dim={self.film_dim}: pass film")
            return torch.cat([z, film.to(z.dtype)], dim=1)
        return z

    def encode(self, target: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance ``(B, latent)`` each."""
        x = torch.cat([target, cond], dim=1)
        check_patch_size(x, self._n_down)
        mu, logvar = self.posterior(x).chunk(2, dim=1)
        # bounds only guard exp() against overflow; they do not shape the posterior
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, cond: torch.Tensor,
               film: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean ``(B, 1, p, p)`` (in [0, 1] with the sigmoid head)."""
        return self.decoder(cond, film=self._film(z, film))

    def loss(self, target: torch.Tensor, cond: torch.Tensor,
             film: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``beta * KL + recon_scale * L1`` with its parts.

        Returns
        -------
        dict
            ``"loss"`` (the total), ``"kl"`` (KL(q || N(0, I)) summed over z, mean over the
            batch) and ``"recon"`` (pixel-wise MAE of a reparameterised decode).
        """
        mu, logvar = self.encode(target, cond)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = F.l1_loss(self.decode(z, cond, film), target)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
        return {"loss": self.beta * kl + self.recon_scale * recon, "kl": kl, "recon": recon}

    @torch.no_grad()
    def predict(self, cond: torch.Tensor, film: torch.Tensor | None = None,
                generator: torch.Generator | None = None, sample: bool = False) -> torch.Tensor:
        """Decode at z = 0 (the prior mean) or, with ``sample=True``, at z ~ N(0, I)."""
        shape = (cond.shape[0], self.latent)
        if sample:
            device = cond.device if generator is None else generator.device
            z = torch.randn(shape, generator=generator, device=device, dtype=cond.dtype)
            z = z.to(cond.device)
        else:
            z = torch.zeros(shape, device=cond.device, dtype=cond.dtype)
        return self.decode(z, cond, film)
