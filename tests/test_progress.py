"""Progress bars show without a terminal (notebooks, log files) and have an off switch."""

from __future__ import annotations

import pytest

from xdownscale import _progress

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from xdownscale.estimator.training import train  # noqa: E402


class Scalar(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.0))


def _loss(module, batch):
    return ((module.w - batch) ** 2).mean()


def _train(verbose):
    batches = [torch.ones(2) for _ in range(3)]
    return train(Scalar(), _loss, batches, None, epochs=2, lr=0.1, weight_decay=0.0,
                 grad_clip=None, plateau_patience=5, early_stop_patience=5, verbose=verbose,
                 desc="toy fit")


def test_training_progress_shown_without_a_tty(capsys, monkeypatch):
    monkeypatch.delenv(_progress.ENV, raising=False)
    _train(verbose=True)
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    assert "toy fit 1/2" in err and "toy fit 2/2" in err
    assert "3/3" in err and "batch" in err  # the finished bar stays in a log: count and rate


@pytest.mark.parametrize("how", ["verbose", "env"])
def test_progress_off_switch(capsys, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv(_progress.ENV, "0")
    _train(verbose=how != "verbose")
    assert "toy fit" not in capsys.readouterr().err


def test_bar_has_an_eta(capsys, monkeypatch):
    monkeypatch.delenv(_progress.ENV, raising=False)
    for _ in _progress.bar(range(4), desc="phase", unit="day"):
        pass
    err = capsys.readouterr().err
    assert "phase" in err and "4/4" in err and "<" in err  # elapsed<remaining


def test_a_streamed_dataset_gets_an_eta_from_its_first_epoch(capsys, monkeypatch):
    monkeypatch.delenv(_progress.ENV, raising=False)

    class Stream:  # re-iterable, no len(): like DayPatchDataset
        def __iter__(self):
            return iter([torch.ones(2) for _ in range(3)])

    train(Scalar(), _loss, Stream(), None, epochs=2, lr=0.1, weight_decay=0.0, grad_clip=None,
          plateau_patience=5, early_stop_patience=5, verbose=True, desc="stream")
    err = capsys.readouterr().err
    assert "stream 1/2: 3batch" in err.replace("\r", "\n")  # first epoch: a count only
    assert "3/3" in err  # second epoch: out of a known total, hence an ETA
