"""Tests of the pure-torch models (xdownscale.models)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from torch import nn  # noqa: E402

from xdownscale.errors import ConfigError, DimensionError  # noqa: E402
from xdownscale.models import (  # noqa: E402
    ConditionalUNet,
    DiffusionModel,
    FiLM,
    FiLMVAE,
    FrozenEncoder,
    LSTMAutoencoder,
    TemporalUNet,
    TransferModel,
)
from xdownscale.models.blocks import bilinear_resize  # noqa: E402

W = (8, 16, 32)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# -- small models ---------------------------------------------------------------------------
def test_temporal_unet_shapes_and_bottleneck():
    net = TemporalUNet(10, widths=W)
    x = torch.rand(3, 10, 16, 16)
    assert net(x).shape == (3, 1, 16, 16)
    feats = net.encoder(x)
    assert feats.shape == (3, 32, 4, 4)
    assert net.feature_channels == 32
    # the transferred feature is exactly the bottleneck the U-Net's own forward uses
    bottleneck, skips = net.encoder.forward_with_skips(x)
    torch.testing.assert_close(feats, bottleneck)
    assert [s.shape[1:] for s in skips] == [(8, 16, 16), (16, 8, 8)]


def test_temporal_unet_loss_is_l1():
    net = TemporalUNet(4, widths=W)
    x, y = torch.rand(2, 4, 8, 8), torch.rand(2, 1, 8, 8)
    expected = (net(x) - y).abs().mean()
    torch.testing.assert_close(net.loss(x, y), expected)


def test_patch_not_divisible_raises():
    with pytest.raises(DimensionError, match="divisible by 4"):
        TemporalUNet(4, widths=W)(torch.rand(1, 4, 10, 10))


def test_lstm_autoencoder_shapes():
    m = LSTMAutoencoder(6, patch=16, hidden=12)
    x = torch.rand(2, 6, 16, 16)
    assert m.encoder(x).shape == (2, 12, 4, 4)
    assert m(x).shape == (2, 1, 16, 16)
    m.loss(x, torch.rand(2, 1, 16, 16)).backward()
    assert m.encoder.lstm.weight_ih_l0.grad is not None
    with pytest.raises(DimensionError):
        m.encoder(torch.rand(2, 5, 16, 16))


def test_lstm_encoder_reads_the_lags_in_order():
    m = LSTMAutoencoder(5, patch=8, hidden=6).eval()
    x = torch.rand(1, 5, 8, 8)
    assert not torch.allclose(m.encoder(x), m.encoder(x.flip(1)))


# -- blocks and the large U-Net -------------------------------------------------------------
def test_film_identity_at_init_and_hand_computed():
    film = FiLM(2, 3)
    x = torch.randn(4, 3, 5, 5)
    c = torch.randn(4, 2)
    torch.testing.assert_close(film(x, c), x)
    with torch.no_grad():
        film.proj.weight.zero_()
        film.proj.bias.copy_(torch.tensor([0.5, -1.0, 0.0, 1.0, 2.0, 3.0]))
    gamma = torch.tensor([0.5, -1.0, 0.0])[None, :, None, None]
    beta = torch.tensor([1.0, 2.0, 3.0])[None, :, None, None]
    torch.testing.assert_close(film(x, c), x * (1 + gamma) + beta)


@pytest.mark.parametrize("shape,size", [((2, 3, 4, 4), (16, 16)), ((1, 2, 5, 7), (10, 3)),
                                        ((3, 1, 8, 8), (16, 16))])
def test_bilinear_resize_matches_interpolate(shape, size):
    x = torch.randn(shape)
    expected = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
    torch.testing.assert_close(bilinear_resize(x, size), expected)


def test_conditional_unet_range_and_conditioning():
    net = ConditionalUNet(3, widths=W, time_embed=True, film_dim=2)
    x = torch.randn(2, 3, 16, 16) * 5
    y0 = net(x, t=torch.tensor([0, 0]), film=torch.zeros(2, 2))
    assert y0.shape == (2, 1, 16, 16)
    assert ((y0 >= 0) & (y0 <= 1)).all()
    y1 = net(x, t=torch.tensor([500, 500]), film=torch.zeros(2, 2))
    assert not torch.allclose(y0, y1)  # the step embedding reaches the output
    with pytest.raises(DimensionError, match="time_embed"):
        net(x, film=torch.zeros(2, 2))
    with pytest.raises(DimensionError, match="film"):
        net(x, t=torch.tensor([0, 0]), film=torch.zeros(2, 3))
    with pytest.raises(DimensionError, match="channel|shape"):
        net(torch.zeros(2, 4, 16, 16), t=torch.tensor([0, 0]), film=torch.zeros(2, 2))


def test_conditional_unet_without_conditioning():
    net = ConditionalUNet(2, widths=W)
    assert net(torch.rand(1, 2, 8, 8)).shape == (1, 1, 8, 8)


# -- transfer -------------------------------------------------------------------------------
class _NormEncoder(nn.Module):
    """An encoder whose output depends on train/eval mode (BatchNorm + Dropout)."""

    def __init__(self, c_in=4, c_out=6):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(c_out)
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AvgPool2d(4)

    def forward(self, x):
        return self.pool(self.drop(self.bn(self.conv(x))))


def test_frozen_encoder_stays_in_eval_and_frozen():
    enc = _NormEncoder()
    frozen = FrozenEncoder(enc, out_size=16)
    parent = nn.ModuleDict({"frozen": frozen, "head": nn.Conv2d(6, 1, 1)})
    parent.train()
    assert not frozen.training and not enc.training and not enc.bn.training
    assert all(not p.requires_grad for p in enc.parameters())
    x = torch.randn(3, 4, 16, 16)
    running = enc.bn.running_mean.clone()
    out1, out2 = frozen(x), frozen(x)
    torch.testing.assert_close(out1, out2)  # no dropout
    torch.testing.assert_close(enc.bn.running_mean, running)  # no BatchNorm update
    assert out1.shape == (3, 6, 16, 16) and not out1.requires_grad
    # a parent that shares the encoder can flip it back to train mode; forward still uses eval
    enc.train()
    torch.testing.assert_close(frozen(x), out1)


def test_frozen_encoder_resize_is_half_pixel_bilinear():
    frozen = FrozenEncoder(nn.Identity(), out_size=4)
    x = torch.tensor([[[[0.0, 4.0], [8.0, 12.0]]]])
    out = frozen(x)[0, 0]
    # align_corners=False on a 2 -> 4 upsampling: rows/cols at source coords -0.25, .25, .75, 1.25
    row = torch.tensor([0.0, 1.0, 3.0, 4.0])
    torch.testing.assert_close(out, row[None, :] + 2 * row[:, None])
    assert FrozenEncoder(nn.Identity(), out_size=None)(x).shape == x.shape
    assert frozen.raw(x).shape == (1, 1, 2, 2)


def _transfer(kind, film=False, target="direct"):
    small = TemporalUNet(5, widths=W)
    names = ("coarse", "elevation", "lat", "day")
    n_maps = 2 if film else 4
    film_dim = 2 if film else 0
    head = "sigmoid" if target == "direct" else "linear"
    c_in = 32 + n_maps
    mean_net = None
    if target == "mean+residual":
        mean_net = ConditionalUNet(c_in, widths=W, film_dim=film_dim, head="linear")
    if kind == "ddpm":
        net = DiffusionModel(ConditionalUNet(c_in + 1 + (mean_net is not None), widths=W,
                                             time_embed=True, film_dim=film_dim, head=head),
                             num_train_timesteps=100,
                             data="unit" if target == "direct" else "standard")
    elif kind == "unet":
        net = ConditionalUNet(c_in, widths=W, film_dim=film_dim, head=head)
    else:
        net = FiLMVAE(c_in, film_dim=film_dim, latent=4, widths=W, head=head)
    return TransferModel(small, net, kind, names, film=film, target=target, out_size=8,
                         mean_net=mean_net)


def _batch(b=4):
    return {"hist": torch.rand(b, 5, 8, 8), "cond": torch.rand(b, 4, 8, 8),
            "y": torch.rand(b, 1, 8, 8)}


@pytest.mark.parametrize("kind,target", [(k, t) for k in ("ddpm", "unet", "vae")
                                         for t in ("direct", "residual")]
                         + [("ddpm", "mean+residual")])
def test_transfer_model_kinds(kind, target):
    model = _transfer(kind, film=True, target=target)
    batch = _batch()
    loss = model.loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    small_ids = {id(p) for p in model.small.parameters()}
    trainable = model.trainable_parameters()
    assert trainable and not small_ids & {id(p) for p in trainable}
    assert all(p.grad is None for p in model.small.parameters())
    kw = {"steps": 2} if kind == "ddpm" else {}
    pred = model.predict_batch(batch["hist"], batch["cond"], **kw)
    assert pred.shape == (4, 1, 8, 8)
    if target == "direct":
        assert ((pred >= 0) & (pred <= 1)).all()


@pytest.mark.parametrize("kind,target", [("ddpm", "residual"), ("unet", "residual"),
                                         ("vae", "residual"), ("ddpm", "mean+residual")])
def test_untrained_residual_model_returns_the_coarse_channel(kind, target):
    """Zero-initialised linear heads: before any training step the prediction is the
    upsampled coarse field, whatever the sampler's noise."""
    model = _transfer(kind, target=target).eval()
    model.residual_scale.fill_(0.37)
    batch = _batch()
    kw = {"steps": 3, "sampler": "ddim", "generator": torch.Generator().manual_seed(0)} \
        if kind == "ddpm" else {}
    pred = model.predict_batch(batch["hist"], batch["cond"], **kw)
    torch.testing.assert_close(pred, batch["cond"][:, :1], atol=1e-6, rtol=0)


def test_residual_target_roundtrip_and_film_channels_by_name():
    model = _transfer("unet", film=True, target="residual")
    model.residual_scale.fill_(0.5)
    batch = _batch()
    x, film = model.inputs(batch["hist"], batch["cond"])
    base = model.baseline(x, film, batch["cond"])
    torch.testing.assert_close(base, batch["cond"][:, :1])
    enc = model.encode_target(batch["y"], base)
    torch.testing.assert_close(enc, (batch["y"] - batch["cond"][:, :1]) / 0.5)
    torch.testing.assert_close(model.decode_output(enc, base), batch["y"])
    # coarse and elevation stay maps; the rest become the per-patch mean vector
    assert x.shape[1] == 32 + 2 and film.shape == (4, 2)
    torch.testing.assert_close(x[:, 32:], batch["cond"][:, :2])
    torch.testing.assert_close(film, batch["cond"][:, 2:].mean(dim=(2, 3)))


def test_transfer_features_computed_once_per_sampling_call():
    model = _transfer("ddpm").eval()
    calls = []
    model.encoder.encoder.register_forward_hook(lambda *a: calls.append(1))
    model.predict_batch(torch.rand(2, 5, 8, 8), torch.rand(2, 4, 8, 8), steps=4)
    assert len(calls) == 1
    feats = model.encoder(torch.rand(2, 5, 8, 8))
    model.predict_batch(None, torch.rand(2, 4, 8, 8), feats=feats, steps=4)
    assert len(calls) == 2  # precomputed features: no further encoder call


def test_transfer_model_rejects_bad_kind_target_and_shapes():
    model = _transfer("unet")
    with pytest.raises(ConfigError):
        TransferModel(model.small, model.large, "gan", model.cond_names)
    with pytest.raises(ConfigError, match="target"):
        TransferModel(model.small, model.large, "unet", model.cond_names, target="ratio")
    with pytest.raises(ConfigError, match="coarse"):
        TransferModel(model.small, model.large, "unet", ("a", "b"))
    with pytest.raises(ConfigError, match="mean_net"):
        TransferModel(model.small, model.large, "unet", model.cond_names, target="mean+residual",
                      mean_net=model.large)
    with pytest.raises(DimensionError):
        model.inputs(None, torch.rand(2, 4, 8, 8), feats=torch.rand(3, 32, 8, 8))


def test_standard_data_diffusion_is_not_clipped():
    dm = DiffusionModel(ConditionalUNet(3, widths=W, time_embed=True, head="linear"),
                        num_train_timesteps=20, data="standard")
    x = torch.full((1, 1, 8, 8), 3.5)
    assert torch.equal(dm.to_state(x), x) and torch.equal(dm.to_data(x), x)
    assert not dm.make_scheduler("ddim", 4).config.clip_sample
    with pytest.raises(ConfigError, match="data"):
        DiffusionModel(ConditionalUNet(3, widths=W, time_embed=True), data="log")


# -- diffusion ------------------------------------------------------------------------------
def test_squaredcos_schedule_matches_nichol_dhariwal():
    dm = DiffusionModel(ConditionalUNet(2, widths=W, time_embed=True), num_train_timesteps=50)
    T = 50

    def abar(t):
        return np.cos((t / T + 0.008) / 1.008 * np.pi / 2) ** 2

    betas = np.minimum(1 - abar(np.arange(1, T + 1)) / abar(np.arange(T)), 0.999)
    np.testing.assert_allclose(dm._noise_scheduler.alphas_cumprod.numpy(), np.cumprod(1 - betas),
                               rtol=1e-4)  # diffusers accumulates in float32


def test_state_conversion_roundtrip():
    dm = DiffusionModel(ConditionalUNet(3, widths=W, time_embed=True), num_train_timesteps=20)
    x = torch.rand(10)
    torch.testing.assert_close(dm.to_data(dm.to_state(x)), x)
    assert dm.to_state(torch.tensor([0.0, 1.0])).tolist() == [-1.0, 1.0]


def test_mean_share_draws_that_share_of_training_steps_at_the_last_step():
    class Spy(nn.Module):
        out_channels = 1

        def __init__(self):
            super().__init__()
            self.steps = []

        def forward(self, x, t, film=None):
            self.steps.append(t.clone())
            return x[:, :1]

    T, n = 50, 4000
    for share in (0.0, 0.3):
        spy = Spy()
        dm = DiffusionModel(spy, num_train_timesteps=T, data="standard", mean_share=share)
        dm.loss(torch.zeros(n, 1, 2, 2), torch.zeros(n, 1, 2, 2))
        t = spy.steps[0]
        # uniform steps put 1/T of the samples at T - 1 on their own
        expected = share + (1 - share) / T
        assert (t == T - 1).float().mean().item() == pytest.approx(expected, abs=0.025)
        assert t.min() >= 0 and t.max() <= T - 1
    with pytest.raises(ConfigError, match="mean_share"):
        DiffusionModel(Spy(), mean_share=1.0)


def test_diffusion_loss_decreases_on_toy_problem():
    # x0 is a simple function of the conditioning: the denoiser only has to copy it
    net = ConditionalUNet(2, widths=W, time_embed=True)
    dm = DiffusionModel(net, num_train_timesteps=100)
    opt = torch.optim.Adam(dm.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        cond = torch.rand(16, 1, 8, 8)
        loss = dm.loss(1 - cond, cond)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])


@pytest.fixture(scope="module")
def dm():
    torch.manual_seed(1)
    return DiffusionModel(ConditionalUNet(3, widths=W, time_embed=True, film_dim=2),
                          num_train_timesteps=40).eval()


@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", 6, 0.0), ("ddpm", None, 0.0),
                                               ("ddim", 5, 0.0), ("ddim", 5, 0.7),
                                               ("dpmsolver", 4, 0.0)])
def test_sampling_shapes_and_determinism(dm, sampler, steps, eta):
    cond, film = torch.rand(3, 2, 8, 8), torch.rand(3, 2)
    kw = dict(sampler=sampler, steps=steps, eta=eta)
    a = dm.sample(cond, film, generator=_gen(0), **kw)
    b = dm.sample(cond, film, generator=_gen(0), **kw)
    c = dm.sample(cond, film, generator=_gen(1), **kw)
    assert a.shape == (3, 1, 8, 8) and ((a >= 0) & (a <= 1)).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpmsolver"])
def test_fuse_hook_called_every_step_and_used(dm, sampler):
    calls = []

    def fuse(x0):
        calls.append(x0.shape)
        return torch.full_like(x0, 0.3)

    out = dm.sample(torch.rand(2, 2, 8, 8), torch.rand(2, 2), sampler=sampler, steps=5,
                    generator=_gen(0), fuse=fuse)
    assert len(calls) == 5 and all(s == (2, 1, 8, 8) for s in calls)
    # every sampler ends on its clean-image estimate, which the hook fixed to 0.3
    torch.testing.assert_close(out, torch.full_like(out, 0.3), atol=1e-4, rtol=0)


@pytest.mark.parametrize("sampler,eta", [("ddpm", 0.0), ("ddim", 1.0)])
def test_per_sample_generators_make_batch_order_irrelevant(dm, sampler, eta):
    cond, film = torch.rand(3, 2, 8, 8), torch.rand(3, 2)
    order = [2, 0, 1]
    def gens():
        return [torch.Generator().manual_seed(s) for s in (11, 12, 13)]

    a = dm.sample(cond, film, sampler=sampler, steps=4, eta=eta, generator=gens())
    g = gens()
    b = dm.sample(cond[order], film[order], sampler=sampler, steps=4, eta=eta,
                  generator=[g[i] for i in order])
    torch.testing.assert_close(b, a[order], atol=1e-5, rtol=0)


def test_sampler_errors(dm):
    with pytest.raises(ConfigError, match="sampler"):
        dm.sample(torch.rand(1, 2, 8, 8), torch.rand(1, 2), sampler="euler")
    with pytest.raises(ConfigError, match="steps"):
        dm.make_scheduler("ddim", 1000)
    assert len(dm.make_scheduler("ddpm").timesteps) == 40
    assert len(dm.make_scheduler("ddim").timesteps) == 10  # the configuration's default
    assert len(dm.make_scheduler("dpmsolver").timesteps) == 10


# -- VAE ------------------------------------------------------------------------------------
def test_vae_loss_parts_and_hand_computed_kl():
    vae = FiLMVAE(3, film_dim=2, latent=2, widths=W, recon_scale=10.0, beta=0.5)
    target, cond, film = torch.rand(4, 1, 8, 8), torch.rand(4, 3, 8, 8), torch.rand(4, 2)
    parts = vae.loss(target, cond, film)
    torch.testing.assert_close(parts["loss"], 0.5 * parts["kl"] + 10.0 * parts["recon"])
    assert parts["kl"] >= 0 and 0 <= parts["recon"] <= 1
    head = vae.posterior[-1]
    with torch.no_grad():  # posterior mu = (1, -2), logvar = (0, log 4) for every input
        head.weight.zero_()
        head.bias.copy_(torch.tensor([1.0, -2.0, 0.0, np.log(4.0)]))
    kl = -0.5 * ((1 + 0 - 1 - 1) + (1 + np.log(4.0) - 4 - 4))
    torch.testing.assert_close(vae.loss(target, cond, film)["kl"], torch.tensor(kl).float())


def test_vae_predict():
    vae = FiLMVAE(3, film_dim=0, latent=4, widths=W).eval()
    cond = torch.rand(2, 3, 8, 8)
    mean = vae.predict(cond)
    assert mean.shape == (2, 1, 8, 8) and ((mean >= 0) & (mean <= 1)).all()
    torch.testing.assert_close(mean, vae.predict(cond))
    for m in vae.decoder.modules():  # let z reach the output (FiLM starts as the identity)
        if isinstance(m, FiLM):
            nn.init.normal_(m.proj.weight)
    s1 = vae.predict(cond, generator=_gen(0), sample=True)
    s2 = vae.predict(cond, generator=_gen(0), sample=True)
    torch.testing.assert_close(s1, s2)
    assert not torch.allclose(s1, vae.predict(cond))
    with pytest.raises(DimensionError, match="film"):
        FiLMVAE(3, film_dim=2, latent=4, widths=W).predict(cond)
