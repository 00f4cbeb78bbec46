"""Tests of the training loop (xdownscale.estimator.training)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from xdownscale.errors import ConfigError  # noqa: E402
from xdownscale.estimator.training import (  # noqa: E402
    NonFiniteLossError,
    make_optimizer,
    resolve_device,
    train,
)

BASE = dict(epochs=5, lr=0.1, weight_decay=0.0, grad_clip=None, plateau_patience=10,
            early_stop_patience=10, verbose=False)


class Scalar(nn.Module):
    def __init__(self, value=0.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(value)))


def sq_loss(module, batch):
    return ((module.w - batch["target"]) ** 2).mean()


class Batches(list):
    """A re-iterable list of batches that records set_epoch calls."""

    def __init__(self, *args):
        super().__init__(*args)
        self.epochs = []

    def set_epoch(self, k):
        self.epochs.append(k)


def const(value, n=1, size=2):
    return Batches([{"target": torch.full((size,), float(value))} for _ in range(n)])


def test_history_layout_and_set_epoch():
    tr, va = const(5.0, n=3), const(1.0)
    hist = train(Scalar(), sq_loss, tr, va, **{**BASE, "epochs": 3})
    assert hist.index.name == "epoch" and hist.index.tolist() == [1, 2, 3]
    assert list(hist.columns) == ["train_loss", "val_loss", "lr", "steps", "passes", "seconds",
                                  "best"]
    assert hist["steps"].tolist() == [3, 6, 9] and hist["passes"].tolist() == [1, 2, 3]
    assert hist["best"].dtype == bool and hist["best"].sum() == 1
    assert (hist["seconds"] >= 0).all()
    assert tr.epochs == [0, 1, 2] and va.epochs == [0, 1, 2]
    assert "epoch" in hist.reset_index().columns


def test_min_steps_make_rounds_of_several_passes():
    # 3 batches a pass; 10 steps in 2 rounds: rounds of >= 5 steps are 2 passes (6 steps)
    tr, va = const(5.0, n=3), const(1.0)
    hist = train(Scalar(), sq_loss, tr, va,
                 **{**BASE, "epochs": 2, "min_steps": 10, "round_steps": 5})
    assert hist["steps"].tolist() == [6, 12] and hist["passes"].tolist() == [2, 4]
    assert tr.epochs == [0, 1, 2, 3]  # every pass reshuffles


def test_min_steps_go_past_epochs_and_hold_off_early_stopping():
    # constant loss: no improvement after round 1, patience 1 would stop at round 2
    tr, va = const(5.0, n=2), const(1.0)
    hist = train(Scalar(), sq_loss, tr, va,
                 **{**BASE, "epochs": 1, "lr": 0.0, "early_stop_patience": 1, "min_steps": 8})
    assert hist["steps"].iloc[-1] == 8 and len(hist) == 4


def test_max_steps_cut_the_last_pass():
    tr, va = const(5.0, n=4), const(1.0)
    hist = train(Scalar(), sq_loss, tr, va, **{**BASE, "epochs": 5, "max_steps": 6})
    assert hist["steps"].tolist() == [4, 6]


def test_losses_are_per_sample_means():
    # two batches of different size: the epoch loss weights them by their sample counts
    module = Scalar(0.0)
    val = Batches([{"target": torch.full((1,), 1.0)}, {"target": torch.full((3,), 3.0)}])
    hist = train(module, sq_loss, const(0.0), val, **{**BASE, "epochs": 1, "lr": 0.0})
    assert hist["val_loss"].iloc[0] == pytest.approx((1 * 1 + 3 * 9) / 4)


def test_best_weights_restored():
    # training pulls w from 0 toward 5 while the validation optimum is 1: the best epoch
    # is an early one and the last weights are worse
    module = Scalar(0.0)
    hist = train(module, sq_loss, const(5.0), const(1.0), **{**BASE, "epochs": 6, "lr": 0.6})
    best = hist.index[hist["best"]][0]
    assert best < hist.index[-1]
    assert hist.loc[best, "val_loss"] == hist["val_loss"].min()
    with torch.no_grad():
        restored = sq_loss(module, {"target": torch.tensor([1.0])}).item()
    assert restored == pytest.approx(hist["val_loss"].min(), rel=1e-6)


def test_early_stopping():
    # lr = 0: the validation loss never improves after epoch 1
    hist = train(Scalar(2.0), sq_loss, const(5.0), const(1.0),
                 **{**BASE, "epochs": 50, "lr": 0.0, "early_stop_patience": 3})
    assert len(hist) == 1 + 3
    assert hist["best"].tolist() == [True, False, False, False]


def test_lr_reduced_on_plateau():
    # a validation loss that does not depend on the weights plateaus from epoch 1
    def loss(module, batch):
        return (module.w * 0).sum() + batch["target"].mean()

    hist = train(Scalar(), loss, const(1.0), const(1.0),
                 **{**BASE, "epochs": 6, "plateau_patience": 1, "plateau_factor": 0.5})
    # ReduceLROnPlateau cuts after more than `patience` bad epochs (epochs 2, 3; then 4, 5)
    np.testing.assert_allclose(hist["lr"], [0.1, 0.1, 0.1, 0.05, 0.05, 0.025])


class TwoParams(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.ones(4))
        self.b = nn.Parameter(torch.ones(4), requires_grad=False)


def test_weight_decay_only_on_trainable_parameters():
    module = TwoParams()
    opt = make_optimizer(module, lr=0.01, weight_decay=0.1)
    params = [p for g in opt.param_groups for p in g["params"]]
    assert len(params) == 1 and params[0] is module.a
    assert opt.param_groups[0]["weight_decay"] == 0.1

    def loss(m, batch):  # no data gradient: only the decay moves the weights
        return (m.a * 0).sum() + (m.b * 0).sum() + batch["target"].mean()

    train(module, loss, const(0.0, n=5), None, **{**BASE, "epochs": 1, "lr": 0.01,
                                                   "weight_decay": 0.1})
    assert (module.a < 1).all()
    torch.testing.assert_close(module.b, torch.ones(4))


def test_frozen_encoder_untouched_by_training():
    from xdownscale.models import ConditionalUNet, TemporalUNet, TransferModel

    torch.manual_seed(0)
    small = TemporalUNet(3, widths=(8, 16, 32))
    before = {k: v.clone() for k, v in small.encoder.state_dict().items()}
    model = TransferModel(small, ConditionalUNet(32 + 1, widths=(8, 16, 32)), "unet",
                          ("coarse",), out_size=8)
    head_before = [p.clone() for p in model.large.parameters()]
    data = Batches([{"hist": torch.rand(4, 3, 8, 8), "cond": torch.rand(4, 1, 8, 8),
                     "y": torch.rand(4, 1, 8, 8)} for _ in range(3)])
    hist = train(model, lambda m, b: m.loss(b), data, data,
                 **{**BASE, "epochs": 2, "lr": 1e-2, "weight_decay": 0.1, "grad_clip": 0.5})
    assert len(hist) == 2
    assert not model.encoder.training
    for k, v in small.encoder.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert any(not torch.equal(p, q) for p, q in zip(model.large.parameters(), head_before,
                                                       strict=True))
    opt = make_optimizer(model, 1e-3, 0.1)
    opt_ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert opt_ids == {id(p) for p in model.trainable_parameters()}
    assert not opt_ids & {id(p) for p in small.encoder.parameters()}


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, x):
        return self.lin(x)


def _noisy_loss(m, batch):  # stochastic like the diffusion loss
    x = batch["x"] + 0.1 * torch.randn_like(batch["x"])
    return ((m(x) - batch["y"]) ** 2).mean()


def test_seeded_runs_are_identical():
    gen = torch.Generator().manual_seed(0)
    data = Batches([{"x": torch.randn(8, 3, generator=gen), "y": torch.randn(8, 1, generator=gen)}
                    for _ in range(4)])
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the module's init is the caller's business
        m = Noisy()
        h = train(m, _noisy_loss, data, data[:2], **{**BASE, "epochs": 3, "lr": 0.05}, seed=7)
        runs.append((h, m.lin.weight.detach().clone()))
    np.testing.assert_array_equal(runs[0][0]["train_loss"], runs[1][0]["train_loss"])
    np.testing.assert_array_equal(runs[0][0]["val_loss"], runs[1][0]["val_loss"])
    torch.testing.assert_close(runs[0][1], runs[1][1], rtol=0, atol=0)


def test_validation_draws_fixed_across_epochs():
    # with lr = 0 the weights never change, so a stochastic val loss must repeat exactly
    gen = torch.Generator().manual_seed(0)
    data = Batches([{"x": torch.randn(8, 3, generator=gen), "y": torch.randn(8, 1, generator=gen)}])
    h = train(Noisy(), _noisy_loss, data, data, **{**BASE, "epochs": 3, "lr": 0.0})
    assert h["val_loss"].nunique() == 1
    assert h["train_loss"].nunique() == 3


def test_val_none_monitors_train_loss():
    module = Scalar(0.0)
    hist = train(module, sq_loss, const(5.0), None, **{**BASE, "epochs": 3, "lr": 0.5})
    assert hist["val_loss"].isna().all()
    assert hist.index[hist["best"]][0] == hist["train_loss"].idxmin()


def test_empty_data_and_bad_settings_raise():
    with pytest.raises(ConfigError, match="val_data yielded no batch"):
        train(Scalar(), sq_loss, const(1.0), Batches(), **BASE)
    with pytest.raises(ConfigError, match="train_data yielded no batch"):
        train(Scalar(), sq_loss, Batches(), const(1.0), **BASE)
    with pytest.raises(ConfigError, match="no trainable"):
        train(TwoParams().requires_grad_(False), sq_loss, const(1.0), None, **BASE)
    with pytest.raises(ConfigError, match="epochs"):
        train(Scalar(), sq_loss, const(1.0), None, **{**BASE, "epochs": 0})


def test_non_finite_loss_raises():
    with pytest.raises(NonFiniteLossError, match="not finite"):
        train(Scalar(), sq_loss, const(math.nan), None, **BASE)


def test_quiet_when_not_verbose(capsys):
    # progress shows without a TTY too (tests/test_progress.py); verbose=False silences it
    train(Scalar(), sq_loss, const(1.0), None, **{**BASE, "epochs": 2, "verbose": False},
          amp=True)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.parametrize("native", [True, False])
def test_amp_on_cpu_is_bfloat16_only_where_native(monkeypatch, native):
    """On a CPU, mixed precision is bfloat16 autocast when the CPU computes it natively and
    nothing otherwise; either way the loss is a float and training still converges."""
    from xdownscale.estimator import training

    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: native)
    ctx, dtype = training._autocast(torch.device("cpu"), True)
    assert dtype == (torch.bfloat16 if native else None)
    with ctx:
        y = nn.Linear(4, 3)(torch.ones(2, 4))
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    assert training._autocast(torch.device("cpu"), False)[1] is None
    # a linear fit of y = 2x in bfloat16 still gets there (to bfloat16's precision)
    torch.manual_seed(0)
    x = torch.randn(64, 1)
    net = nn.Linear(1, 1, bias=False)
    data = [{"x": x, "y": 2 * x}]
    log = train(net, lambda m, b: ((m(b["x"]).float() - b["y"]) ** 2).mean(), data, None,
                **{**BASE, "epochs": 60, "lr": 0.05}, amp=True)
    assert net.weight.item() == pytest.approx(2.0, abs=0.02)
    assert log["train_loss"].dtype == np.float64


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ConfigError):
        resolve_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
