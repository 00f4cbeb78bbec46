"""Resuming an interrupted fit from its training state (``fit(..., state_dir=)``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from conftest import tiny_config  # noqa: E402
from test_training import Noisy  # noqa: E402

from xdownscale import Downscaler  # noqa: E402
from xdownscale.errors import CheckpointError, ConfigError  # noqa: E402
from xdownscale.estimator import resume  # noqa: E402
from xdownscale.estimator.training import train  # noqa: E402
from xdownscale.models import TemporalUNet, TransferModel  # noqa: E402

# plateau and early stopping both act within the run, so a resume must carry their counters
SETTINGS = dict(epochs=6, lr=0.05, weight_decay=1e-4, grad_clip=1.0, plateau_patience=1,
                plateau_factor=0.5, early_stop_patience=4, verbose=False, seed=3)


class Interrupted(Exception):
    """Stands in for a job killed mid-round."""


def _data():
    gen = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(8, 3, generator=gen), "y": torch.randn(8, 1, generator=gen)}
            for _ in range(4)]


def _loss(stop_at=None):
    """A stochastic loss (noise drawn from torch's generator, as the diffusion loss does) that
    raises at its ``stop_at``-th training call; ``calls`` counts the training calls."""
    def loss(m, batch):
        if m.training:
            loss.calls += 1
            if loss.calls == stop_at:
                raise Interrupted
        x = batch["x"] + 0.1 * torch.randn_like(batch["x"])
        return ((m(x) - batch["y"]) ** 2).mean()
    loss.calls = 0
    return loss


def _fresh():
    torch.manual_seed(11)
    return Noisy()


def _same_history(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    data = _data()
    ref = _fresh()
    ref_hist = train(ref, _loss(), data, data[:2], **SETTINGS)

    path = tmp_path / "stage.pt"
    with pytest.raises(Interrupted):  # in round 4 (4 steps a round), after three were saved
        train(_fresh(), _loss(stop_at=14), data, data[:2], state_path=path, **SETTINGS)
    assert not resume.load_state(path, _key(path))["done"]
    again = Noisy()  # another init: the state, not the init, decides
    loss = _loss()
    hist = train(again, loss, data, data[:2], state_path=path, **SETTINGS)
    _same_history(hist, ref_hist)
    torch.testing.assert_close(again.state_dict(), ref.state_dict(), rtol=0, atol=0)
    assert loss.calls == 4 * (len(ref_hist) - 3)  # only the rounds after the third


def _key(path):
    """The key train() stored in ``path`` (to read the file back in a test)."""
    import json

    return json.loads(torch.load(path, weights_only=True)["key"])


def test_a_finished_state_is_read_back_without_training(tmp_path):
    data, path = _data(), tmp_path / "stage.pt"
    first = _fresh()
    hist = train(first, _loss(), data, data[:2], state_path=path, **SETTINGS)
    assert resume.load_state(path, _key(path))["done"]
    loss = _loss()
    again = Noisy()
    back = train(again, loss, data, data[:2], state_path=path, **SETTINGS)
    assert loss.calls == 0
    _same_history(back, hist)
    torch.testing.assert_close(again.state_dict(), first.state_dict(), rtol=0, atol=0)
    assert back["best"].sum() == 1


def test_a_state_of_other_settings_is_refused_and_kept(tmp_path):
    data, path = _data(), tmp_path / "stage.pt"
    with pytest.raises(Interrupted):
        train(_fresh(), _loss(stop_at=10), data, data[:2], state_path=path, **SETTINGS)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"lr: 0\.05 there, 0\.1 here"):
        train(_fresh(), _loss(), data, data[:2], state_path=path, **{**SETTINGS, "lr": 0.1})
    train(_fresh(), _loss(), data, data[:2], state_path=tmp_path / "k.pt",
          state_key={"data": "a"}, **{**SETTINGS, "epochs": 1})
    with pytest.raises(ConfigError, match="data: 'a' there, 'b' here"):
        train(_fresh(), _loss(), data, data[:2], state_path=tmp_path / "k.pt",
              state_key={"data": "b"}, **{**SETTINGS, "epochs": 1})
    assert path.read_bytes() == before  # nothing lost


def test_an_unreadable_state_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "stage.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable training state"):
        train(_fresh(), _loss(), _data(), None, state_path=bad, **SETTINGS)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an xdownscale training state"):
        train(_fresh(), _loss(), _data(), None, state_path=other, **SETTINGS)


def test_digests_see_values_shapes_and_dtypes():
    a = np.arange(6, dtype="int64")
    assert resume.array_digest(a) == resume.array_digest(a.copy())
    assert resume.array_digest(a) != resume.array_digest(a.reshape(2, 3))
    assert resume.array_digest(a) != resume.array_digest(a.astype("int32"))
    assert resume.array_digest(a) != resume.array_digest(a[::-1])
    m = _fresh()
    d = resume.module_digest(m)
    with torch.no_grad():
        m.lin.bias.add_(1e-6)
    assert resume.module_digest(m) != d


def test_module_digest_takes_scalar_and_bfloat16_entries():
    # a 0-d buffer (a noise schedule's scale, a step counter) and a bfloat16 weight, which
    # NumPy cannot hold, are hashed as their bytes like any other entry
    m = torch.nn.Linear(2, 2).to(torch.bfloat16)
    m.register_buffer("scale", torch.tensor(0.5))
    d = resume.module_digest(m)
    assert d == resume.module_digest(m)
    with torch.no_grad():
        m.scale.fill_(0.25)
    assert resume.module_digest(m) != d


# -- the estimator ---------------------------------------------------------------------------

CFG = dict(epochs=2, small_epochs=2, min_steps=0, small_min_steps=0, patches_per_day=2,
           small_max_days=12)


def _fit(pair, tmp_path=None, **overrides):
    coarse, fine, elev = pair
    est = Downscaler(tiny_config(**{**CFG, **overrides}), model="ddpm", seasons=["JJA"])
    return est.fit(coarse, fine, elev, state_dir=tmp_path)


def _weights(est):
    return {k: v.clone() for k, v in est.modules_["JJA"].state_dict().items()}


@pytest.mark.parametrize("stage_calls", [1, 6])  # stage B: 4 steps a round; 6: in its second
def test_fit_interrupted_in_stage_b_resumes_to_the_same_model(toy_pair, tmp_path,
                                                              monkeypatch, stage_calls):
    ref = _fit(toy_pair)
    real = TransferModel.loss
    calls = {"n": 0}

    def flaky(self, batch, *args, **kwargs):
        if self.training:
            calls["n"] += 1
            if calls["n"] == stage_calls:
                raise Interrupted
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(TransferModel, "loss", flaky)
    with pytest.raises(Interrupted):
        _fit(toy_pair, tmp_path / "state")
    monkeypatch.setattr(TransferModel, "loss", real)
    assert (tmp_path / "state" / "JJA" / "stage_a.pt").exists()
    back = _fit(toy_pair, tmp_path / "state")
    torch.testing.assert_close(_weights(back), _weights(ref), rtol=0, atol=0)
    _same_history(back.training_log_, ref.training_log_)
    pd.testing.assert_frame_equal(back.validation_, ref.validation_)


def test_a_finished_fit_is_read_back_and_prediction_settings_may_change(toy_pair, tmp_path,
                                                                         monkeypatch):
    first = _fit(toy_pair, tmp_path / "state")

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage was trained again")

    forward = TemporalUNet.forward

    def no_stage_a(self, *args, **kwargs):  # the small model trains in stage A only
        if self.training:
            no_training()
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(TransferModel, "loss", no_training)
    monkeypatch.setattr(TemporalUNet, "forward", no_stage_a)
    back = _fit(toy_pair, tmp_path / "state", sample_steps=2, infer_stride=4)
    torch.testing.assert_close(_weights(back), _weights(first), rtol=0, atol=0)
    with pytest.raises(ConfigError, match=r"stage_a.pt belongs to another fit.*\n?.*config.small_lr: 0.0005 "
                       r"there, 0.001 here"):
        _fit(toy_pair, tmp_path / "state", small_lr=1e-3)
    with pytest.raises(ConfigError, match=r"stage_b.pt belongs to another fit \(config.lr: 0.001 there, 0.0005 here;"):
        _fit(toy_pair, tmp_path / "state", lr=5e-4)


def test_one_fit_at_a_time_writes_a_state_folder(toy_pair, tmp_path):
    import json
    import os
    import socket
    import subprocess
    import sys

    state = tmp_path / "state"
    state.mkdir()
    lock = state / ".lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(CheckpointError, match="being written by another process"):
        _fit(toy_pair, state)
    assert lock.exists() and not (state / "JJA").exists()  # nothing written, the lock kept
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    _fit(toy_pair, state)  # the lock of a process that is gone is taken over
    assert (state / "JJA" / "stage_b.pt").exists() and not lock.exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointError, match="is a file"):
        _fit(toy_pair, tmp_path / "file")


def test_the_settings_a_resume_may_change_are_config_fields():
    """A misspelt name in the list would silently make that field part of the key."""
    from dataclasses import fields

    from xdownscale import DownscaleConfig
    from xdownscale.estimator.stages import _NOT_TRAINING, _STAGE_A_FIELDS

    names = {f.name for f in fields(DownscaleConfig)}
    assert _NOT_TRAINING <= names and set(_STAGE_A_FIELDS) <= names
    assert not _NOT_TRAINING & set(_STAGE_A_FIELDS)
