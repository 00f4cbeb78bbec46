"""Building the torch modules of one season model from a configuration (estimator side).

The behaviour lives in :class:`xdownscale.models.TransferModel`, the one transfer seam; this
module only turns a :class:`~xdownscale.DownscaleConfig` into its small and large networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..models import (
    ConditionalUNet,
    DiffusionModel,
    FiLMVAE,
    LSTMAutoencoder,
    TemporalUNet,
    TransferModel,
)
from .inputs import COND_NAMES


def build_small(kind: str, cfg) -> nn.Module:
    """The stage-A model: an LSTM autoencoder for the VAE path, else the temporal U-Net."""
    if kind == "vae":
        return LSTMAutoencoder(cfg.n_lags, patch=cfg.patch, hidden=cfg.small_widths[-1])
    return TemporalUNet(cfg.n_lags, widths=tuple(cfg.small_widths), out_channels=1)


@torch.no_grad()
def _feature_channels(small: nn.Module, cfg) -> int:
    if cfg.encoder == "none":
        return 0
    was_training = small.training
    device = next(small.parameters()).device  # the pretrained model may be on a GPU
    probe = small.eval().encoder(torch.zeros(1, cfg.n_lags, cfg.patch, cfg.patch,
                                             device=device))
    small.train(was_training)
    return int(probe.shape[1])


class SeasonModule(TransferModel):
    """The :class:`~xdownscale.models.TransferModel` of one area x season, built from a config."""

    def __init__(self, kind: str, cfg, small: nn.Module | None = None,
                 cond_names: Sequence[str] = COND_NAMES) -> None:
        small = small if small is not None else build_small(kind, cfg)
        film = cfg.conditioning == "film"
        residual = cfg.target != "direct"
        head = "linear" if residual else "sigmoid"
        n_maps = sum(1 for n in cond_names if not film or n in ("coarse", "elevation"))
        in_ch = _feature_channels(small, cfg) + n_maps + cfg.history_maps
        film_dim = len(cond_names) - n_maps
        widths = tuple(cfg.large_widths)
        mean_net = None
        if cfg.target == "mean+residual":
            if kind != "ddpm":
                raise ConfigError(f"target='mean+residual' is for model='ddpm' (a regression "
                                  f"mean plus diffusion); use target='residual' for {kind!r}")
            mean_net = ConditionalUNet(in_ch, widths=widths, film_dim=film_dim, head="linear")
            in_ch += 1  # the diffusion model also sees the mean
        if kind == "ddpm":
            net = ConditionalUNet(in_ch + 1, widths=widths, time_embed=True, film_dim=film_dim,
                                  head=head)
            large = DiffusionModel(net, num_train_timesteps=cfg.timesteps, schedule=cfg.schedule,
                                   data="standard" if residual else "unit",
                                   mean_share=cfg.mean_share)
        elif kind == "unet":
            large = ConditionalUNet(in_ch, widths=widths, film_dim=film_dim, head=head)
        elif kind == "vae":
            large = FiLMVAE(in_ch, film_dim=film_dim, latent=cfg.vae_latent, widths=widths,
                            recon_scale=cfg.vae_recon_scale, beta=cfg.vae_beta, head=head)
        else:  # pragma: no cover - validated by the estimator
            raise ValueError(kind)
        super().__init__(small, large, kind, cond_names, film=film, target=cfg.target,
                         use_features=cfg.encoder != "none", out_size=cfg.patch,
                         mean_net=mean_net, history_maps=cfg.history_maps)
