"""The training loop shared by both stages (paper section 2.3).

Adam with weight decay on the trainable parameters only (eq. 3: the frozen encoder is
neither optimised nor regularised), gradient-norm clipping, reduce-on-plateau and early
stopping on the day-grouped train-validation loss, and the best weights kept in memory and
restored at the end.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from .._progress import bar as progress_bar
from ..errors import ConfigError, NonFiniteLossError
from . import resume

__all__ = ["NonFiniteLossError", "resolve_device", "train"]

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Any], torch.Tensor]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device to run on.

    Parameters
    ----------
    device : str or torch.device, default "auto"
        ``"auto"`` picks CUDA if available, then Apple MPS, then the CPU; anything else is
        passed to :class:`torch.device` and checked for availability.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        If the device string is malformed or the device is not available.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={device!r} is not a torch device ('auto', 'cpu', 'cuda', "
                          "'cuda:1', 'mps')") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but CUDA is not available; use device='auto' or 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device!r} but MPS is not available; use device='auto' or 'cpu'")
    return dev


def make_optimizer(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam over the parameters with ``requires_grad`` only.

    Frozen parameters are left out of the optimiser entirely, so weight decay (torch's
    coupled L2 term, ``weight_decay * p`` added to the gradient, as in eq. 3) never touches
    them.

    Raises
    ------
    ConfigError
        If the module has no trainable parameter.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the module has no trainable parameters (all have requires_grad=False)")
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors (and numpy arrays) in a nested batch to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if type(obj).__module__ == "numpy" and hasattr(obj, "dtype"):
        return torch.from_numpy(obj).to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _batch_size(batch: Any) -> int:
    """Number of samples in a batch (the leading length of its first tensor; 1 if none)."""
    values = batch.values() if isinstance(batch, Mapping) else (
        batch if isinstance(batch, (list, tuple)) else [batch])
    for v in values:
        if isinstance(v, torch.Tensor) and v.ndim:
            return int(v.shape[0])
    return 1


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 convolutions natively (AVX512-BF16 or AMX): there
    autocast to bfloat16 trains faster; elsewhere it would be emulated, and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast(device: torch.device, amp: bool):
    """Mixed precision: on CUDA bfloat16 where supported, else float16 (with loss scaling);
    on a CPU with native bfloat16, bfloat16 (measured on a 2-core AVX512-BF16 CPU: a 32/64/128
    U-Net step at batch 64 took 0.10 s instead of 0.17 s); otherwise none."""
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype
    if amp and device.type == "cpu" and cpu_has_native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16), torch.bfloat16
    return nullcontext(), None


def _progress(total: int | None, desc: str, enabled: bool):
    return progress_bar(total=total, desc=desc, verbose=enabled, unit="batch")


def _run_epoch(module, loss_fn, data, device, *, optimizer=None, grad_clip=None, scaler=None,
               amp=False, bar=None, max_batches=None) -> tuple[float, int, int]:
    """Mean loss per sample over ``data``, the sample count and the batch count; trains given
    an optimiser. Stops after ``max_batches`` batches when given."""
    total = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    batches = 0
    ctx, _ = _autocast(device, amp)
    for i, batch in enumerate(data):
        if max_batches is not None and batches >= max_batches:
            break
        batches += 1
        batch = _to_device(batch, device)
        size = _batch_size(batch)
        with ctx:
            loss = loss_fn(module, batch)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if grad_clip:
                params = [p for g in optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        total += loss.detach().double() * size
        n += size
        if bar is not None:
            bar.update(1)
            if i % 20 == 0 and not bar.disable:  # .item() syncs the GPU: not every batch
                bar.set_postfix(loss=f"{total.item() / n:.4g}")
    return (float(total.item() / n) if n else math.nan), n, batches


def train(module: nn.Module, loss_fn: LossFn, train_data: Iterable, val_data: Iterable | None,
          *, epochs: int, lr: float, weight_decay: float, grad_clip: float | None,
          plateau_patience: int, plateau_factor: float = 0.5, early_stop_patience: int,
          device: str | torch.device = "cpu", seed: int = 0, verbose: bool = True,
          desc: str = "training", amp: bool = False, min_steps: int = 0,
          max_steps: int | None = None, round_steps: int = 0,
          state_path: str | os.PathLike | None = None, state_key: Mapping | None = None):
    """Train ``module`` in place and return its history.

    Parameters
    ----------
    module : nn.Module
        The model; moved to ``device``. Only parameters with ``requires_grad`` are optimised.
    loss_fn : callable
        ``loss_fn(module, batch) -> scalar tensor``; ``batch`` is what the data yields (a dict
        of tensors or arrays), already moved to ``device``.
    train_data, val_data : iterable of batches
        Re-iterable (e.g. :class:`~xdownscale.tiling.patches.DayPatchDataset`); ``set_epoch(k)`` is
        called before each epoch when present. ``val_data=None`` makes the training loss the
        monitored quantity (the ``val_loss`` column is then NaN).
    epochs : int
        Maximum number of rounds (epochs), unless ``min_steps`` needs more.
    lr, weight_decay : float
        Adam learning rate and L2 weight decay (trainable parameters only).
    grad_clip : float or None
        Maximum global gradient norm (None or 0: no clipping).
    plateau_patience : int
        Epochs without improvement before the learning rate is multiplied by ``plateau_factor``.
    plateau_factor : float, default 0.5
        Learning-rate reduction factor.
    early_stop_patience : int
        Stop after this many epochs without improvement of the monitored loss.
    device : str or torch.device, default "cpu"
        Device, see :func:`resolve_device`.
    seed : int, default 0
        Seeds torch's generators; validation uses its own fixed seed each epoch, so a
        stochastic loss (diffusion steps and noise) is compared on the same draws.
    verbose : bool, default True
        Show a progress bar with an ETA per epoch (also when stderr is not a terminal;
        ``XDOWNSCALE_PROGRESS=0`` hides it) and log one line per epoch at INFO level.
    desc : str, default "training"
        Label of the progress bar and log lines.
    amp : bool, default False
        Mixed precision (``torch.autocast``): on CUDA, and on a CPU that computes bfloat16
        natively (:func:`cpu_has_native_bf16`); ignored elsewhere.
    min_steps : int, default 0
        Optimizer steps to take at least: rounds go on past ``epochs`` until they are done,
        and early stopping waits for them.
    max_steps : int, optional
        Optimizer steps to take at most (the last pass is cut short).
    round_steps : int, default 0
        A round (one validation, one row of the history, one unit of the patiences) is as
        many whole passes over ``train_data`` as it takes to reach this many steps; 0 means
        one pass. On a small data set this keeps the validation and the learning-rate
        schedule from reacting to a few noisy batches.
    state_path : path, optional
        Where to write the training state after every round (:mod:`.resume`): if the file
        exists, training continues after the round it holds (or, when that state is of a
        finished run, its final weights are loaded and nothing is trained). On the same
        device the result is the one an uninterrupted run gives.
    state_key : mapping, optional
        What else decides what this run learns (data, frozen parts), stored with the state;
        a state written with another key, or other settings of this function, is refused.

    Returns
    -------
    pandas.DataFrame
        One row per round, indexed by ``epoch`` (1-based; ``reset_index()`` makes it a
        column), columns ``train_loss``, ``val_loss``, ``lr`` (during the round), ``steps``
        (optimizer steps so far), ``passes`` (over the training data so far), ``seconds``
        and ``best`` (True on the one round whose weights were restored).

    Raises
    ------
    ConfigError
        Bad settings, no trainable parameter, or data that yields no batch.
    NonFiniteLossError
        If an epoch's loss is NaN or infinite.
    CheckpointError
        If ``state_path`` holds a file that is not a readable training state.
    """
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    if not 0 < plateau_factor < 1:
        raise ConfigError(f"plateau_factor must be in (0, 1), got {plateau_factor}")
    device = resolve_device(device)
    torch.manual_seed(seed)
    module.to(device)
    optimizer = make_optimizer(module, lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=plateau_factor, patience=plateau_patience)
    scaler = None
    if amp and device.type == "cuda" and _autocast(device, amp)[1] is torch.float16:
        scaler = torch.amp.GradScaler("cuda")
    show = verbose  # bars without a terminal too (notebooks, logs); XDOWNSCALE_PROGRESS=0 hides
    fork_devices = [device.index or 0] if device.type == "cuda" else []

    rows: list[dict] = []
    best_loss, best_state, best_epoch, stale = math.inf, None, 0, 0
    steps = passes = 0
    last_batches = None
    epoch = 0
    if state_path is not None:
        key = {**(state_key or {}), "desc": desc, "epochs": epochs, "lr": lr,
               "weight_decay": weight_decay, "grad_clip": grad_clip,
               "plateau_patience": plateau_patience, "plateau_factor": plateau_factor,
               "early_stop_patience": early_stop_patience, "seed": seed, "amp": bool(amp),
               "min_steps": min_steps, "max_steps": max_steps, "round_steps": round_steps,
               "parameters": [[k, list(v.shape)] for k, v in module.state_dict().items()]}
        saved = resume.load_state(state_path, key, map_location=device)
        if saved is not None and saved["done"]:
            module.load_state_dict(saved["module"])
            resume.set_rng_state(saved["rng"], device)
            logger.info("%s: finished before, read from %s", desc, state_path)
            return _history(saved["rows"], saved["best_epoch"])
        if saved is not None:
            module.load_state_dict(saved["module"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            if scaler is not None and saved["scaler"] is not None:
                scaler.load_state_dict(saved["scaler"])
            rows, best_state = saved["rows"], saved["best_state"]
            best_loss, best_epoch, stale = saved["best_loss"], saved["best_epoch"], saved["stale"]
            steps, passes, epoch = saved["steps"], saved["passes"], saved["epoch"]
            last_batches = saved["last_batches"]
            resume.set_rng_state(saved["rng"], device)
            logger.info("%s: resuming after round %d (%d steps) from %s", desc, epoch, steps,
                        state_path)
    while epoch < epochs or steps < min_steps:
        epoch += 1
        start = time.perf_counter()
        lr_now = optimizer.param_groups[0]["lr"]
        loss_sum, n, round_batches = 0.0, 0, 0
        label = f"{desc} {epoch}/{max(epochs, epoch)}"
        module.train()
        while True:  # whole passes until the round has its steps (or the budget is spent)
            for data in (train_data, val_data):
                if data is not None and hasattr(data, "set_epoch"):
                    data.set_epoch(passes)
            cap = None if max_steps is None else max_steps - steps
            # a streamed dataset has no len(): the last pass's batch count gives the ETA
            total = len(train_data) if hasattr(train_data, "__len__") else last_batches
            with _progress(total, label, show) as bar:
                loss, n_pass, b = _run_epoch(module, loss_fn, train_data, device,
                                             optimizer=optimizer, grad_clip=grad_clip,
                                             scaler=scaler, amp=amp, bar=bar, max_batches=cap)
            last_batches = b or None
            passes += 1
            if not n_pass:
                break
            loss_sum += loss * n_pass
            n += n_pass
            steps += b
            round_batches += b
            if round_batches >= round_steps or (max_steps is not None and steps >= max_steps):
                break
        if not n:
            raise ConfigError(f"{desc}: train_data yielded no batch at epoch {epoch} (it must "
                              "be re-iterable: a list, DataLoader or dataset, not a generator)")
        train_loss = loss_sum / n
        val_loss = math.nan
        if val_data is not None:
            module.eval()
            with torch.no_grad(), torch.random.fork_rng(devices=fork_devices,
                                                       device_type=device.type):
                torch.manual_seed(seed + 7919)  # same validation draws every epoch
                val_loss, n, _ = _run_epoch(module, loss_fn, val_data, device, amp=amp)
            if not n:
                raise ConfigError(f"{desc}: val_data yielded no batch at epoch {epoch}; pass "
                                  "val_data=None to monitor the training loss instead")
        monitored = train_loss if val_data is None else val_loss
        if not math.isfinite(monitored) or not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"{desc}: loss is not finite at epoch {epoch} (train {train_loss}, val "
                f"{val_loss}); check the inputs for NaN or lower lr")
        scheduler.step(monitored)
        if monitored < best_loss:
            best_loss, best_epoch, stale = monitored, epoch, 0
            best_state = copy.deepcopy(module.state_dict())
        else:
            stale += 1
        rows.append(dict(epoch=epoch, train_loss=train_loss, val_loss=val_loss, lr=lr_now,
                         steps=steps, passes=passes, seconds=time.perf_counter() - start))
        if verbose:
            logger.info("%s round %d: %d steps, train %.5g, val %.5g, lr %.3g", desc, epoch,
                        steps, train_loss, val_loss, lr_now)
        if stale >= early_stop_patience and steps >= min_steps:
            break
        if max_steps is not None and steps >= max_steps:
            break
        if state_path is not None:
            resume.save_state(state_path, key, dict(
                done=False, module=module.state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=None if scaler is None else scaler.state_dict(), best_state=best_state,
                best_loss=best_loss, best_epoch=best_epoch, stale=stale, steps=steps,
                passes=passes, epoch=epoch, last_batches=last_batches, rows=rows,
                rng=resume.rng_state(device)))

    module.load_state_dict(best_state)
    if state_path is not None:  # finished: the final weights and curve are all a rerun needs
        resume.save_state(state_path, key, dict(done=True, module=module.state_dict(),
                                                rows=rows, best_epoch=best_epoch,
                                                rng=resume.rng_state(device)))
    return _history(rows, best_epoch)


def _history(rows: list[dict], best_epoch: int):
    import pandas as pd

    # epoch is the index only: a column of the same name would make reset_index() and
    # sort_values("epoch") ambiguous
    history = pd.DataFrame(rows).set_index("epoch")
    history["best"] = history.index == best_epoch
    return history
