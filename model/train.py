"""Train one ResNet on CIFAR-10: the training loop shared by the CLI, the search trials and the retrain.

Example::

    python -m model.train --arch resnet20 --epochs 30 --data ../shared/data/cifar10-jpeg.tar.gz --out runs/r20
    python -m model.train --arch resnet18 --weights resnet18.pth --frozen-stages 4 --input-size 64 \\
        --lr 0.01 --epochs 5 --data ../shared/data/cifar10-jpeg.tar.gz --out runs/probe --test
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .build import WeightsError, build_model
from .checkpoint import (CHECKPOINT_NAME, find_checkpoint, load_checkpoint, restore_checkpoint, save_checkpoint,
                         check_writable, save_model, versions, write_json)
from .config import DataConfig, RunConfig
from .data import CIFAR10Data
from .device import (FiniteCheck, autocast, configure_threads, epoch_seed, grad_scaler, precision, resolve_device,
                     seed_everything, seed_torch, synchronize)
from .flags import DefaultsHelpFormatter, add_config_args, config_kwargs
from .loader import DeviceLoader
from .optim import build_optimizer, build_scheduler
from .resnet import ResNet
from .sources import DataError


@dataclass
class FitResult:
    status: str  # completed | stopped (on_epoch asked) | diverged (non-finite loss)
    epochs: int  # epochs finished
    history: list[dict] = field(default_factory=list)  # one metrics dict per epoch
    model: ResNet | None = None
    precision: str = "fp32"  # bf16 | fp16 | fp32: the arithmetic the run trained in

    @property
    def metrics(self) -> dict:
        return self.history[-1] if self.history else {}


# ---------------------------------------------------------------------------------------------
# One epoch, one evaluation


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    loader: DeviceLoader,
    device: torch.device,
    *,
    amp: bool = True,
    scaler: torch.amp.GradScaler | None = None,
    check_every: int = 20,
    progress=None,
) -> dict:
    """One pass over ``loader``; returns train_loss, train_acc, images, seconds, finite.

    ``amp`` trains in ``precision(device, amp)``; fp16 needs the run's ``scaler``, made once per
    run (``grad_scaler``): its loss scale carries over from call to call. Losses and hits are
    summed on the device and read back once, at the end. Every ``check_every`` steps the sum
    is checked for a non-finite loss without waiting for the GPU (``FiniteCheck``), so a
    diverging run stops a few dozen steps in, with no host sync in the loop.
    """
    arithmetic = precision(device, amp)
    if arithmetic == "fp16" and scaler is None:
        raise ValueError("fp16 training needs the run's GradScaler: make it once per run with "
                         "grad_scaler('fp16') and pass it as scaler=, so the loss scale is not reset every call")
    model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hits = torch.zeros((), device=device, dtype=torch.int64)
    images = 0
    finite = True
    still_finite = FiniteCheck(device)
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader, 1):
        with autocast(device, arithmetic):
            logits = model(x)
            loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            # fp16: a step whose scaled gradients overflow is skipped and the scale shrinks. That
            # is routine, so divergence is judged on the loss below, never on the gradients.
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        scheduler.step()
        loss_sum += loss.detach().double() * y.shape[0]
        hits += (logits.argmax(1) == y).sum()
        images += y.shape[0]
        if progress is not None:
            progress.update(1)
        if step % check_every == 0 and not still_finite(loss_sum):
            finite = False
            break
    synchronize(device)
    seconds = time.perf_counter() - start
    loss_total, hits_total = torch.stack([loss_sum, hits.double()]).tolist()  # one read-back
    return {
        "train_loss": loss_total / max(images, 1),
        "train_acc": hits_total / max(images, 1),
        "images": images,
        "seconds": seconds,
        "finite": finite and math.isfinite(loss_total),
    }


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DeviceLoader, device: torch.device, *, amp: bool = True) -> dict:
    """Mean cross-entropy and accuracy over ``loader`` (no label smoothing)."""
    model.eval()
    arithmetic = precision(device, amp)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hits = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    for x, y in loader:
        with autocast(device, arithmetic):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        hits += (logits.argmax(1) == y).sum()
        n += y.shape[0]
    return {"loss": loss_sum.item() / max(n, 1), "acc": hits.item() / max(n, 1), "images": n}


# ---------------------------------------------------------------------------------------------
# A whole run


def make_loader(cfg: RunConfig, data: CIFAR10Data, images, labels, device, *, train: bool) -> DeviceLoader:
    return DeviceLoader(
        images,
        labels,
        batch_size=cfg.batch_size if train else cfg.eval_batch_size,
        mean=data.mean,
        std=data.std,
        device=device,
        train=train,
        augment=cfg.augment if train else "none",
        input_size=cfg.input_size,
        channels_last=cfg.channels_last,
    )


def progress_bar(total: int, initial: int):
    """A tqdm bar on stderr; None without tqdm (fit then prints a line per epoch)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # a bare GPU machine may have torch and nothing else
        return None
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr)


def fit(
    cfg: RunConfig,
    data: CIFAR10Data,
    on_epoch: Callable[[dict, Path | None], bool | None] | None = None,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | dict | None = None,
    train_on_val: bool = False,
    progress: bool = False,
    pretrained: dict[str, torch.Tensor] | None = None,
) -> FitResult:
    """Train ``cfg`` on ``data``; the one training loop of this project.

    After every epoch ``on_epoch(metrics, checkpoint)`` gets the epoch's metrics (epoch,
    train_loss, train_acc, val_loss, val_acc, lr, seconds, images_per_second) and the path of
    the checkpoint written this epoch (or None); returning True stops the run. Checkpoints go
    to ``checkpoint_dir`` every ``cfg.checkpoint_every`` epochs and at the end;
    ``resume_from`` (a checkpoint file, a directory holding one, or a checkpoint ``load_checkpoint``
    has read) continues exactly where it left off, on any device. ``train_on_val`` trains on
    train + validation (the retrain of the best config) and then has no validation metrics. A
    non-finite loss ends the run with status "diverged". ``pretrained`` is the state dict of
    ``cfg.weights`` when the caller has already loaded it (a search loads it once on its driver,
    and the trials' nodes may lack the file).
    """
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_threads(cfg.threads)
    arithmetic = precision(device, cfg.amp)
    seed_everything(cfg.seed, device)
    weights = pretrained if pretrained is not None and cfg.weights is not None else cfg.weights
    model = build_model(cfg.arch, num_classes=len(data.classes), weights=weights, frozen_stages=cfg.frozen_stages)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    train_x, train_y = data.full_train() if train_on_val else (data.train_images, data.train_labels)
    train_loader = make_loader(cfg, data, train_x, train_y, device, train=True)
    if len(train_loader) == 0:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the {len(train_y)} training images")
    val_loader = None
    if not train_on_val and len(data.val_labels):
        val_loader = make_loader(cfg, data, data.val_images, data.val_labels, device, train=False)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, len(train_loader))
    scaler = grad_scaler(arithmetic)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    step_model = torch.compile(model) if cfg.compile else model

    result = FitResult(status="completed", epochs=0, model=model, precision=arithmetic)
    state = resume_from if isinstance(resume_from, dict) else None
    if state is None and (checkpoint := find_checkpoint(resume_from)) is not None:
        state = load_checkpoint(checkpoint)
    if state is not None:
        result.epochs, result.history = restore_checkpoint(state, model, optimizer, scheduler, device, scaler)
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None

    bar = None
    if progress:
        bar = progress_bar(cfg.epochs * len(train_loader), result.epochs * len(train_loader))
    try:
        for epoch in range(result.epochs + 1, cfg.epochs + 1):
            seed_torch(epoch_seed(cfg.seed, epoch), device)
            lr = optimizer.param_groups[0]["lr"]
            train = train_one_epoch(step_model, criterion, optimizer, scheduler, train_loader, device,
                                    amp=cfg.amp, scaler=scaler, progress=bar)
            metrics = {
                "epoch": epoch,
                "train_loss": train["train_loss"],
                "train_acc": train["train_acc"],
                "lr": lr,
                "seconds": train["seconds"],
                "images_per_second": train["images"] / max(train["seconds"], 1e-9),
            }
            if not train["finite"]:
                result.status = "diverged"
                metrics.update(val_loss=float("nan"), val_acc=0.0, diverged=True)
            elif val_loader is not None:
                val = evaluate(step_model, val_loader, device, amp=cfg.amp)
                metrics.update(val_loss=val["loss"], val_acc=val["acc"])
            result.history.append(metrics)
            result.epochs = epoch
            if bar is not None:
                bar.set_postfix(epoch=epoch, loss=f"{metrics['train_loss']:.3f}",
                                val_acc=f"{metrics.get('val_acc', float('nan')):.4f}")
            elif progress:
                print(f"epoch {epoch}/{cfg.epochs}: train_loss {metrics['train_loss']:.4f}, val_acc "
                      f"{metrics.get('val_acc', float('nan')):.4f}, {metrics['images_per_second']:,.0f} images/s",
                      file=sys.stderr, flush=True)
            written = None
            if result.status != "diverged" and ckpt_path is not None and (
                epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs
            ):
                written = save_checkpoint(ckpt_path, model, optimizer, scheduler, epoch, result.history, cfg,
                                          scaler=scaler)
            stop = on_epoch(metrics, written) if on_epoch is not None else False
            if result.status == "diverged":
                break
            if stop and epoch < cfg.epochs:
                result.status = "stopped"
                break
    finally:
        if bar is not None:
            bar.close()
    return result


def evaluate_test(model: ResNet, cfg: RunConfig, data: CIFAR10Data) -> dict:
    """Evaluate the test split once: {"test_loss", "test_acc"}."""
    device = next(model.parameters()).device
    loader = make_loader(cfg, data, data.test_images, data.test_labels, device, train=False)
    result = evaluate(model, loader, device, amp=cfg.amp)
    return {"test_loss": result["loss"], "test_acc": result["acc"]}


# ---------------------------------------------------------------------------------------------
# Command line


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m model.train", description="Train one ResNet on CIFAR-10",
                                add_help=add_help, formatter_class=DefaultsHelpFormatter)
    add_config_args(p, DataConfig)
    p.add_argument("--out", default=None,
                   help="output directory: config.json, metrics.json, model.pt, checkpoint.pt (default: runs/ARCH)")
    add_config_args(p, RunConfig)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--test", action="store_true", help="evaluate the test set once at the end")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(**config_kwargs(args, RunConfig))


def main(args: argparse.Namespace) -> int:
    out = Path(args.out or f"runs/{args.arch}")
    try:
        cfg = config_from_args(args)
        check_writable(out, "--out")
        device = resolve_device(cfg.device)
        data = DataConfig(**config_kwargs(args, DataConfig)).load_data(seed=cfg.seed)
        resume = find_checkpoint(out) if args.resume else None
        if args.resume and resume is None:
            raise ValueError(f"--resume: no {CHECKPOINT_NAME} in {out}; run without --resume to start afresh")
        write_json(out / "config.json", {"config": cfg.to_dict(), "device": str(device),
                                         "precision": precision(device, cfg.amp), "data": data.describe(),
                                         "versions": versions()})
        result = fit(cfg, data, checkpoint_dir=out, resume_from=resume, progress=True)
    except (ValueError, DataError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = {**result.metrics, "status": result.status, "epochs": result.epochs, "precision": result.precision,
               "history": result.history}
    if args.test and result.status != "diverged":
        metrics.update(evaluate_test(result.model, cfg, data))
    save_model(result.model, out / "model.pt")
    write_json(out / "metrics.json", metrics)
    summary = ", ".join(f"{k}={metrics[k]:.4f}" for k in ("val_acc", "test_acc") if k in metrics)
    print(f"{result.status} after {result.epochs} epochs: {summary}; wrote {out}/{{config,metrics}}.json, model.pt")
    return 1 if result.status == "diverged" else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
