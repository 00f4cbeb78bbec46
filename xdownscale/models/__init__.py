"""Pure-torch models of the two-stage downscaler (tensors in, tensors out; no xarray here).

Stage A (small, pretrained on the long coarse record; its encoder is transferred):

* :class:`TemporalUNet` -- lags as channels, next-day prediction, bottleneck as the feature;
* :class:`LSTMAutoencoder` -- the small model of the VAE path.

Stage B (large, trained on the coarse/fine overlap with the encoder frozen):

* :class:`FrozenEncoder` and :class:`TransferModel` -- the transfer seam;
* :class:`ConditionalUNet` -- regression U-Net, diffusion denoiser and VAE decoder;
* :class:`DiffusionModel` -- x0-predicting DDPM with diffusers' samplers;
* :class:`FiLMVAE` -- the VAE baseline.
"""

from __future__ import annotations

from .blocks import FiLM
from .diffusion import DATA_SPACES, SAMPLERS, DiffusionModel
from .large_unet import ConditionalUNet
from .small_unet import TemporalUNet
from .transfer import TARGETS, FrozenEncoder, TransferModel
from .vae import FiLMVAE, LSTMAutoencoder

__all__ = [
    "DATA_SPACES",
    "SAMPLERS",
    "TARGETS",
    "ConditionalUNet",
    "DiffusionModel",
    "FiLM",
    "FiLMVAE",
    "FrozenEncoder",
    "LSTMAutoencoder",
    "TemporalUNet",
    "TransferModel",
]
