"""Conditional denoising diffusion with x0 prediction (paper section 2.2.2, f_Theta^DDPM).

The noise schedules and the reverse-process updates are diffusers' schedulers; this module
only wires them to a conditional network, and owns the one reverse-diffusion loop of the
package (:meth:`DiffusionModel.sample_loop`; the prediction kernel calls it with its own
batched denoiser and per-step fusion hook).

Data and diffusion state
------------------------
Two data spaces are supported (``data=``):

* ``"unit"`` (the paper): the data are the min-max scaled log10 field in [0, 1] and the
  network's sigmoid head predicts them there. The diffusion *state* is the data mapped to
  [-1, 1] (``2 y - 1``): the range a unit-variance Gaussian noise schedule and diffusers'
  ``clip_sample_range=1`` assume, so the signal-to-noise ratio at each step is the one the
  cosine schedule was designed for.
* ``"standard"``: the data are already standardised (zero mean, unit variance: e.g. the
  correction to the upsampled coarse field divided by its training-day spread) and are the
  state as they are; a linear head predicts them and nothing is clipped.

``to_state`` / ``to_data`` convert; everything a caller sees (``loss`` targets, ``sample``
output, the ``fuse`` hook) is in data space.

Randomness
----------
``generator`` may be one ``torch.Generator`` or a list with one per sample. With a list,
each sample's initial noise and per-step noise come from its own generator only, so a
sample's result does not depend on what else is in the batch or on its position (up to
floating-point rounding of batched convolutions). With one generator the whole batch is
drawn from it, so results depend on the batch layout. CPU generators give the same numbers
on every device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DimensionError

__all__ = ["DiffusionModel", "SAMPLERS", "DATA_SPACES"]

SAMPLERS = ("ddpm", "ddim", "dpmsolver")
DATA_SPACES = ("unit", "standard")
# The configuration's default (DownscaleConfig.sample_steps) is the same 10 DDIM steps.
_DEFAULT_STEPS = {"ddim": 10, "dpmsolver": 10}  # "ddpm": all training steps

Generator = torch.Generator | Sequence[torch.Generator] | None


class DiffusionModel(nn.Module):
    """DDPM whose network predicts the clean image, trained with pixel-wise MAE.

    Parameters
    ----------
    net : nn.Module
        Called as ``net(torch.cat([x_t, cond], 1), t, film)``; returns x0 in [0, 1]
        (e.g. :class:`~xdownscale.models.ConditionalUNet` with ``time_embed=True``).
    num_train_timesteps : int, default 1000
        Diffusion steps T.
    schedule : str, default "squaredcos_cap_v2"
        diffusers ``beta_schedule`` ("squaredcos_cap_v2" is the cosine schedule of Nichol &
        Dhariwal used by the paper; "linear", "scaled_linear" also work).
    data : {"unit", "standard"}, default "unit"
        The data space (see the module notes): [0, 1] data mapped to [-1, 1], or
        standardised data used as the state as they are.
    mean_share : float, default 0.0
        Share of training samples drawn at the last step (t = T - 1, pure noise), where the
        network's x0 is its estimate of the conditional mean, rather than uniformly over the
        steps. 0: uniform steps (the paper).

    Examples
    --------
    >>> import torch
    >>> from xdownscale.models import ConditionalUNet
    >>> dm = DiffusionModel(ConditionalUNet(3, widths=(8, 16, 32), time_embed=True))
    >>> cond = torch.rand(2, 2, 16, 16)
    >>> dm.loss(torch.rand(2, 1, 16, 16), cond).item() > 0
    True
    >>> dm.sample(cond, sampler="ddim", steps=3, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, net: nn.Module, num_train_timesteps: int = 1000,
                 schedule: str = "squaredcos_cap_v2", data: str = "unit",
                 mean_share: float = 0.0) -> None:
        super().__init__()
        if data not in DATA_SPACES:
            raise ConfigError(f"data={data!r} is not one of {list(DATA_SPACES)}")
        if not 0 <= mean_share < 1:
            raise ConfigError(f"mean_share must be in [0, 1), got {mean_share!r}")
        self.mean_share = float(mean_share)
        self.net = net
        self.num_train_timesteps = int(num_train_timesteps)
        self.schedule = schedule
        self.data = data
        self._noise_scheduler = self.make_scheduler("ddpm")  # for add_noise in training

    # -- conversions -----------------------------------------------------------------------
    def to_state(self, x0: torch.Tensor) -> torch.Tensor:
        """Data -> diffusion state ([0, 1] -> [-1, 1], or the identity for standardised data)."""
        return 2 * x0 - 1 if self.data == "unit" else x0

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """Diffusion state -> data (clamped to [0, 1] for unit data)."""
        return ((x + 1) / 2).clamp(0, 1) if self.data == "unit" else x

    # -- schedulers ------------------------------------------------------------------------
    def make_scheduler(self, sampler: str = "ddim", steps: int | None = None):
        """A fresh diffusers scheduler for ``sampler`` with ``steps`` inference steps set.

        ``steps=None`` means all T steps for ``"ddpm"``, 20 for ``"ddim"`` and 20 for
        ``"dpmsolver"`` (second-order multistep DPM-Solver++), at most T. DDPM and DDIM use "trailing"
        step spacing so that the first step starts from pure noise at t = T - 1, the most
        noisy step seen in training.

        Raises
        ------
        ConfigError
            Unknown sampler or steps outside [1, T].
        """
        from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

        common = dict(num_train_timesteps=self.num_train_timesteps, beta_schedule=self.schedule,
                      prediction_type="sample")
        # unit data are clipped to their [-1, 1] state range; standardised data are unbounded
        clip = dict(clip_sample=self.data == "unit", clip_sample_range=1.0)
        if sampler == "ddpm":
            sched = DDPMScheduler(timestep_spacing="trailing", **clip, **common)
        elif sampler == "ddim":
            sched = DDIMScheduler(timestep_spacing="trailing", **clip, **common)
        elif sampler == "dpmsolver":
            # x0 comes from a sigmoid, so it is already in range: no thresholding needed
            sched = DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2,
                                                **common)
        else:
            raise ConfigError(f"sampler={sampler!r} is not one of {list(SAMPLERS)}")
        default = min(_DEFAULT_STEPS.get(sampler, self.num_train_timesteps),
                      self.num_train_timesteps)
        n = default if steps is None else int(steps)
        if not 1 <= n <= self.num_train_timesteps:
            raise ConfigError(f"steps must be in [1, {self.num_train_timesteps}], got {steps}")
        with warnings.catch_warnings():
            # diffusers' DPM-Solver builds sigmas with np.array(tensor), which numpy 2 flags
            # (DeprecationWarning about __array__ and copy); harmless and not ours to fix
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="diffusers")
            sched.set_timesteps(n)
        return sched

    # -- training --------------------------------------------------------------------------
    def loss(self, x0: torch.Tensor, cond: torch.Tensor,
             film: torch.Tensor | None = None) -> torch.Tensor:
        """MAE between ``x0`` (B, C, p, p, data space) and the network's x0 from a noised copy.

        One step t ~ U{0, ..., T-1} (or, for a ``mean_share`` of the samples, t = T - 1) and
        one Gaussian noise draw per sample, from torch's global generator (seeded by the
        training loop).
        """
        t = torch.randint(0, self.num_train_timesteps, (x0.shape[0],), device=x0.device)
        if self.mean_share > 0:
            last = torch.rand(x0.shape[0], device=x0.device) < self.mean_share
            t = torch.where(last, self.num_train_timesteps - 1, t)
        noise = torch.randn_like(x0)
        x_t = self._noise_scheduler.add_noise(self.to_state(x0), noise, t)
        return F.l1_loss(self.predict_x0(x_t, t, cond, film), x0)

    def forward(self, x0: torch.Tensor, cond: torch.Tensor,
                film: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`loss`."""
        return self.loss(x0, cond, film)

    # -- sampling pieces (also used by callers that loop over steps themselves) -------------
    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor | int, cond: torch.Tensor,
                   film: torch.Tensor | None = None) -> torch.Tensor:
        """The network's clean image in data space from state ``x_t`` at step ``t``."""
        t = torch.as_tensor(t, device=x_t.device).reshape(-1).expand(x_t.shape[0])
        return self.net(torch.cat([x_t.to(cond.dtype), cond], dim=1), t, film)

    def initial_noise(self, shape: tuple[int, ...], generator: Generator = None, *,
                      device: str | torch.device | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal starting state of the reverse process."""
        from diffusers.utils.torch_utils import randn_tensor

        return randn_tensor(tuple(shape), generator=_as_generator(generator), device=device,
                            dtype=dtype)

    def step(self, scheduler, x0: torch.Tensor, t: torch.Tensor | int, x_t: torch.Tensor,
             generator: Generator = None, *, eta: float = 0.0) -> torch.Tensor:
        """One reverse step from ``x_t`` given the clean-image estimate ``x0`` (data space)."""
        from diffusers import DDIMScheduler

        kw = {"generator": _as_generator(generator)}
        if isinstance(scheduler, DDIMScheduler):
            kw["eta"] = float(eta)
        out = scheduler.step(self.to_state(x0).to(x_t.dtype), t, x_t, **kw)
        return out.prev_sample

    @torch.no_grad()
    def sample_loop(self, shape: tuple[int, ...], denoise: Callable, generator: Generator = None,
                    *, sampler: str = "ddim", steps: int | None = None, eta: float = 0.0,
                    fuse: Callable[[torch.Tensor], torch.Tensor] | None = None,
                    device: str | torch.device | None = None,
                    initial: torch.Tensor | None = None) -> torch.Tensor:
        """The reverse-diffusion loop: ``denoise(x_t, t) -> x0`` (data space) at every step.

        ``denoise`` wraps the network with its conditioning (:meth:`sample` passes
        ``predict_x0`` with ``cond``; the prediction kernel a batched one over all patches of
        a day). ``fuse(x0) -> x0`` is applied to each step's clean-image estimate when given.
        ``initial``: the standard normal starting state (``shape``), instead of drawing it
        from ``generator``. Returns the final state in data space.
        """
        scheduler = self.make_scheduler(sampler, steps)
        if initial is None:
            initial = self.initial_noise(shape, generator, device=device)
        elif tuple(initial.shape) != tuple(shape):
            raise DimensionError(f"initial state has shape {tuple(initial.shape)}, need {shape}")
        x_t = initial * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x0 = denoise(x_t, t)
            if fuse is not None:
                x0 = fuse(x0)
            x_t = self.step(scheduler, x0, t, x_t, generator, eta=eta)
        return self.to_data(x_t)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, film: torch.Tensor | None = None, sampler: str = "ddim",
               steps: int | None = None, eta: float = 0.0, generator: Generator = None,
               fuse: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Draw one sample per conditioning patch by reverse diffusion.

        Parameters
        ----------
        cond : Tensor (B, C, p, p)
            Conditioning channels (transfer features, coarse day, covariates).
        film : Tensor (B, F), optional
            FiLM vector, if the network uses one.
        sampler : {"ddpm", "ddim", "dpmsolver"}, default "ddim"
            Reverse-process solver.
        steps : int, optional
            Inference steps (default: T for ddpm, 20 for ddim and dpmsolver).
        eta : float, default 0.0
            DDIM stochasticity (0: deterministic given the initial noise; 1: DDPM-like).
        generator : torch.Generator or list of them, optional
            Seeds the noise (see the module notes on per-sample generators).
        fuse : callable, optional
            ``fuse(x0_hat) -> x0_hat`` applied to the clean-image estimate (data space,
            shape (B, out, p, p)) at every step, e.g. MultiDiffusion-style averaging of
            overlapping patches. It must keep the shape.

        Returns
        -------
        Tensor (B, out_channels, p, p)
            Samples in data space on ``cond``'s device.
        """
        out_channels = getattr(self.net, "out_channels", 1)
        shape = (cond.shape[0], out_channels, *cond.shape[-2:])
        return self.sample_loop(shape, lambda x_t, t: self.predict_x0(x_t, t, cond, film),
                                generator, sampler=sampler, steps=steps, eta=eta, fuse=fuse,
                                device=cond.device)


def _as_generator(generator: Generator):
    """diffusers' ``randn_tensor`` takes a generator or a list; normalise other sequences."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    return list(generator)
