"""Building the torch modules of one season model from a config (estimator side).

``SeasonModule`` bundles the small pretrained model (kept for its encoder and for reporting
the stage-A skill), the frozen transferred encoder and the large model, and knows how the
day arrays map onto the large model's inputs (channels or FiLM).
"""

from __future__ import annotations

import torch
from torch import nn

from .models import (
    ConditionalUNet,
    DiffusionModel,
    FiLMVAE,
    FrozenEncoder,
    LSTMAutoencoder,
    TemporalUNet,
)

# cond channel 0 is the coarse driver on day t+1, then the covariate maps in COVARIATE_NAMES
# order: elevation, lat, lon, season, days, year.
_FILM_CHANNELS = slice(2, None)  # with conditioning="film", these become a per-patch vector


def build_small(kind: str, cfg) -> nn.Module:
    if kind == "vae":
        return LSTMAutoencoder(cfg.n_lags, patch=cfg.patch, hidden=cfg.small_widths[-1])
    return TemporalUNet(cfg.n_lags, widths=tuple(cfg.small_widths), out_channels=1)


class SeasonModule(nn.Module):
    """Small model + frozen encoder + large model for one area x season."""

    def __init__(self, kind: str, cfg, n_cond: int, small: nn.Module | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.film = cfg.conditioning == "film"
        self.small = small if small is not None else build_small(kind, cfg)
        self.encoder = FrozenEncoder(self.small.encoder, out_size=cfg.patch)
        # encoder="none" is the no-transfer ablation: the large model sees no history features.
        self.use_features = cfg.encoder != "none"
        with torch.no_grad():
            probe = self.encoder(torch.zeros(1, cfg.n_lags, cfg.patch, cfg.patch))
        feat = probe.shape[1] if self.use_features else 0
        cond_ch = 2 if self.film else n_cond
        film_dim = (n_cond - 2) if self.film else 0
        in_ch = feat + cond_ch
        widths = tuple(cfg.large_widths)
        if kind == "ddpm":
            net = ConditionalUNet(in_ch + 1, widths=widths, time_embed=True, film_dim=film_dim)
            self.large = DiffusionModel(net, num_train_timesteps=cfg.timesteps,
                                        schedule=cfg.schedule)
        elif kind == "unet":
            self.large = ConditionalUNet(in_ch, widths=widths, film_dim=film_dim)
        elif kind == "vae":
            self.large = FiLMVAE(in_ch, film_dim=film_dim, latent=cfg.vae_latent, widths=widths,
                                 recon_scale=cfg.vae_recon_scale, beta=cfg.vae_beta)
        else:  # pragma: no cover - validated by the estimator
            raise ValueError(kind)

    # -- inputs --------------------------------------------------------------------------------
    def inputs(self, hist: torch.Tensor, cond: torch.Tensor, feats: torch.Tensor | None = None):
        """The large model's conditioning tensor and FiLM vector for a batch of patches."""
        if not self.use_features:
            feats = cond[:, :0]
        elif feats is None:
            feats = self.encoder(hist)
        if self.film:
            film = cond[:, _FILM_CHANNELS].mean(dim=(2, 3))
            return torch.cat([feats, cond[:, :2]], dim=1), film
        return torch.cat([feats, cond], dim=1), None

    # -- losses ----------------------------------------------------------------------------------
    def small_loss(self, batch) -> torch.Tensor:
        return torch.nn.functional.l1_loss(self.small(batch["x"]), batch["y"])

    def large_loss(self, batch) -> torch.Tensor:
        x, film = self.inputs(batch["hist"], batch["cond"])
        y = batch["y"]
        if self.kind == "ddpm":
            return self.large.loss(y, x, film=film)
        if self.kind == "unet":
            return torch.nn.functional.l1_loss(self.large(x, film=film), y)
        return self.large.loss(y, x, film)["loss"]

    def trainable_large_parameters(self):
        return [p for p in self.large.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> SeasonModule:
        # Only the large model ever trains here: the small model was fitted in stage A and its
        # encoder is frozen, so both stay in eval mode (dropout/normalisation fixed).
        super().train(mode)
        self.small.eval()
        self.encoder.eval()
        return self

    def freeze_small(self) -> None:
        """Freeze the whole small model (its decoder is no longer used after stage A)."""
        for p in self.small.parameters():
            p.requires_grad_(False)
        self.small.eval()
