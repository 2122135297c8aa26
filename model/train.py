"""Train one ResNet on CIFAR-10: the training loop shared by the CLI, the search trials and the retrain.

Example::

    python -m model.train --arch resnet20 --epochs 30 --data ../shared/data/cifar10-jpeg.tar.gz --out runs/r20
    python -m model.train --arch resnet18 --weights resnet18.pth --frozen-stages 4 --input-size 64 \\
        --lr 0.01 --epochs 5 --data ../shared/data/cifar10-jpeg.tar.gz --out runs/probe --test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .build import WeightsError, build_model
from .data import AUGMENTATIONS, CIFAR10Data, DataError, DeviceLoader, load_cifar10
from .resnet import ResNet, list_models

OPTIMIZERS = ("sgd", "nesterov", "adamw")
SCHEDULES = ("cosine", "onecycle", "step", "constant")
CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class RunConfig:
    """Everything one training run needs; the search fills it, the CLI maps flags onto it."""

    # Model
    arch: str = "resnet20"  # one of model.list_models()
    weights: str | None = None  # None: from scratch; "imagenet": torchvision's; or a torchvision state-dict file
    frozen_stages: int = 0  # freeze the stem and stages 1..k; 0 trains everything, 4 (resnet18/34/50) = linear probe
    input_size: int = 32  # pixels; CIFAR's 32x32 is resized on the device (ImageNet-pretrained nets prefer 64-224)
    # Optimization
    optimizer: str = "sgd"  # sgd | nesterov | adamw
    lr: float = 0.1  # peak learning rate, per batch of `batch_size` (the head's lr when fine-tuning)
    backbone_lr_mult: float = 1.0  # trainable backbone parameters get lr * this (fine-tuning; 1 = same lr)
    weight_decay: float = 5e-4  # L2 for SGD, decoupled for AdamW
    momentum: float = 0.9  # SGD momentum, AdamW beta1
    batch_size: int = 128  # images per step
    epochs: int = 30  # full passes over the training split
    schedule: str = "cosine"  # per-step lr schedule: cosine | onecycle | step (x0.1 at 50% and 75%) | constant
    warmup_epochs: float = 0.0  # linear warm-up from 0, in epochs (fractions allowed); onecycle warms up 30% anyway
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment: str = "crop_flip"  # one of model.data.AUGMENTATIONS
    # Execution
    seed: int = 0  # model init, shuffling and augmentation all derive from it
    device: str = "auto"  # auto (cuda if present) | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = every CPU this process may use (Ray trials pass their CPUs)
    amp: bool = True  # bf16 autocast on CUDA (never on CPU, where bf16 is slower without AMX)
    channels_last: bool = True  # channels_last (NHWC) model and batches: ~3x faster convs on CPU (oneDNN), and on GPUs
    compile: bool = False  # torch.compile the model (pays a compile time of tens of seconds)
    checkpoint_every: int = 1  # epochs between checkpoints, when fit() is given a checkpoint directory
    eval_batch_size: int = 1024  # images per evaluation step

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, list_models())
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("augment", self.augment, AUGMENTATIONS)
        for name in ("lr", "batch_size", "epochs", "input_size", "checkpoint_every", "eval_batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown RunConfig fields {unknown}; valid: {', '.join(sorted(names))}")
        return cls(**d)


def check_choice(what: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(map(str, valid))}")


@dataclass
class FitResult:
    status: str  # completed | stopped (on_epoch asked) | diverged (non-finite loss)
    epochs: int  # epochs finished
    history: list[dict] = field(default_factory=list)  # one metrics dict per epoch
    model: ResNet | None = None

    @property
    def metrics(self) -> dict:
        return self.history[-1] if self.history else {}


# ---------------------------------------------------------------------------------------------
# Devices, threads, seeds


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu")
    return device


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def configure_threads(threads: int) -> int:
    """Give torch ``threads`` intra-op threads (0: every CPU we may use).

    Ray sets OMP_NUM_THREADS=1 in its workers, which would leave a trial with 4 CPUs on one
    thread; the trial passes its CPU count here instead.
    """
    n = threads or available_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def epoch_seed(seed: int, epoch: int) -> int:
    # Every epoch reseeds from (seed, epoch), so a resumed run shuffles and augments exactly
    # like an uninterrupted one, whatever consumed random numbers before the interruption.
    return (seed * 1_000_003 + epoch) % 2**63


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------
# Optimizer and schedule


def build_optimizer(model: ResNet, cfg: RunConfig) -> torch.optim.Optimizer:
    """Only trainable parameters reach the optimizer; the backbone may get a smaller lr."""
    head = [p for p in model.fc.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": cfg.lr, "name": "head"}]
    if backbone:
        groups.append({"params": backbone, "lr": cfg.lr * cfg.backbone_lr_mult, "name": "backbone"})
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.optimizer == "nesterov"
    )


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based) of ``total``."""
    if schedule == "onecycle":
        # Cosine up over the first 30% (or the warm-up, if longer), cosine down to ~0 after.
        up = max(warmup, int(0.3 * total), 1)
        if step < up:
            return 0.04 + 0.96 * 0.5 * (1 - math.cos(math.pi * step / up))
        t = (step - up) / max(total - up, 1)
        return 0.5 * (1 + math.cos(math.pi * t))
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "step":
        return 0.1 ** sum(t >= m for m in (0.5, 0.75))
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig, steps_per_epoch: int):
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg.schedule, step, total, warmup))


# ---------------------------------------------------------------------------------------------
# One epoch, one evaluation


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    loader: DeviceLoader,
    device: torch.device,
    *,
    amp: bool = True,
    check_every: int = 20,
    progress=None,
) -> dict:
    """One pass over ``loader``; returns train_loss, train_acc, images, seconds, finite.

    Losses and hits are summed on the device and read back only every ``check_every`` steps,
    which is when a non-finite loss is noticed (so a diverging run stops within a few steps
    without a host sync per step on a GPU).
    """
    model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hits = torch.zeros((), device=device, dtype=torch.int64)
    images = 0
    finite = True
    start = time.perf_counter()
    for step, (x, y) in enumerate(loader, 1):
        with autocast(device, amp):
            logits = model(x)
            loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach().double() * y.shape[0]
        hits += (logits.argmax(1) == y).sum()
        images += y.shape[0]
        if progress is not None:
            progress.update(1)
        if step % check_every == 0 and not torch.isfinite(loss_sum):
            finite = False
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    finite = finite and bool(torch.isfinite(loss_sum))
    return {
        "train_loss": loss_sum.item() / max(images, 1),
        "train_acc": hits.item() / max(images, 1),
        "images": images,
        "seconds": seconds,
        "finite": finite,
    }


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DeviceLoader, device: torch.device, *, amp: bool = True) -> dict:
    """Mean cross-entropy and accuracy over ``loader`` (no label smoothing)."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    hits = torch.zeros((), device=device, dtype=torch.int64)
    n = 0
    for x, y in loader:
        with autocast(device, amp):
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


def save_checkpoint(path: Path, model, optimizer, scheduler, epoch: int, history: list[dict], cfg: RunConfig) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "history": history,
            "config": cfg.to_dict(),
            "rng": rng_state(),
        },
        tmp,
    )
    os.replace(tmp, path)  # never leave a half-written checkpoint behind
    return path


def find_checkpoint(path: str | os.PathLike | None) -> Path | None:
    """``path`` itself, or the checkpoint file inside the directory ``path``; None if absent."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    return path if path.is_file() else None


def fit(
    cfg: RunConfig,
    data: CIFAR10Data,
    on_epoch: Callable[[dict, Path | None], bool | None] | None = None,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    train_on_val: bool = False,
    progress: bool = False,
) -> FitResult:
    """Train ``cfg`` on ``data``; the one training loop of this project.

    After every epoch ``on_epoch(metrics, checkpoint)`` gets the epoch's metrics (epoch,
    train_loss, train_acc, val_loss, val_acc, lr, seconds, images_per_second) and the path of
    the checkpoint written this epoch (or None); returning True stops the run. Checkpoints go
    to ``checkpoint_dir`` every ``cfg.checkpoint_every`` epochs and at the end;
    ``resume_from`` (a checkpoint file or a directory holding one) continues exactly where it
    left off. ``train_on_val`` trains on train + validation (the retrain of the best config)
    and then has no validation metrics. A non-finite loss ends the run with status "diverged".
    """
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_threads(cfg.threads)
    seed_everything(cfg.seed)
    model = build_model(cfg.arch, num_classes=len(data.classes), weights=cfg.weights, frozen_stages=cfg.frozen_stages)
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
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    step_model = torch.compile(model) if cfg.compile else model

    result = FitResult(status="completed", epochs=0, model=model)
    checkpoint = find_checkpoint(resume_from)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        result.epochs, result.history = state["epoch"], state["history"]
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs * len(train_loader), initial=result.epochs * len(train_loader), unit="step",
                   dynamic_ncols=True, file=sys.stderr)
    try:
        for epoch in range(result.epochs + 1, cfg.epochs + 1):
            torch.manual_seed(epoch_seed(cfg.seed, epoch))
            lr = optimizer.param_groups[0]["lr"]
            train = train_one_epoch(step_model, criterion, optimizer, scheduler, train_loader, device,
                                    amp=cfg.amp, progress=bar)
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
            written = None
            if result.status != "diverged" and ckpt_path is not None and (
                epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs
            ):
                written = save_checkpoint(ckpt_path, model, optimizer, scheduler, epoch, result.history, cfg)
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


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def versions() -> dict:
    import torchvision

    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__}


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """The data flags, shared with the search CLI."""
    parser.add_argument("--data", default="data",
                        help="CIFAR-10 source: a torchvision root (holding cifar-10-batches-py), or a directory or "
                             ".tar.gz of train/<class>/*, test/<class>/* images (default: %(default)s)")
    parser.add_argument("--download", action="store_true",
                        help="download CIFAR-10 with torchvision into --data if it is not there (needs internet)")
    parser.add_argument("--val-size", type=int, default=5000,
                        help="stratified validation images held out of the training set (default: %(default)s)")
    parser.add_argument("--train-subset", type=int, default=None,
                        help="train on a stratified subset of N images, for quick runs (None: all)")


def load_data(args: argparse.Namespace, seed: int = 0) -> CIFAR10Data:
    return load_cifar10(args.data, val_size=args.val_size, train_subset=args.train_subset, seed=seed,
                        download=args.download)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    d = RunConfig()
    p = argparse.ArgumentParser(prog="python -m model.train", description="Train one ResNet on CIFAR-10",
                                add_help=add_help,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_data_args(p)
    p.add_argument("--out", required=True, help="output directory: config.json, metrics.json, model.pt, checkpoint.pt")
    p.add_argument("--arch", default=d.arch, help=f"architecture: {', '.join(list_models())}")
    p.add_argument("--weights", default=d.weights, help="pretrained weights: 'imagenet' or a torchvision state-dict file")
    p.add_argument("--frozen-stages", type=int, default=d.frozen_stages,
                   help="freeze the stem and stages 1..K (0: train all; 4 on resnet18/34/50: linear probe)")
    p.add_argument("--input-size", type=int, default=d.input_size, help="resize images on the device to this size")
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--backbone-lr-mult", type=float, default=d.backbone_lr_mult,
                   help="backbone lr = lr * this (fine-tuning)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--schedule", default=d.schedule, choices=SCHEDULES)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--augment", default=d.augment, choices=AUGMENTATIONS)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (0: all available)")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--no-channels-last", action="store_true", help="keep the NCHW memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="epochs between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--test", action="store_true", help="evaluate the test set once at the end")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        arch=args.arch, weights=args.weights, frozen_stages=args.frozen_stages, input_size=args.input_size,
        optimizer=args.optimizer, lr=args.lr, backbone_lr_mult=args.backbone_lr_mult,
        weight_decay=args.weight_decay, momentum=args.momentum, batch_size=args.batch_size, epochs=args.epochs,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
        augment=args.augment, seed=args.seed, device=args.device, threads=args.threads, amp=not args.no_amp,
        channels_last=not args.no_channels_last, compile=args.compile, checkpoint_every=args.checkpoint_every,
    )


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        cfg = config_from_args(args)
        resolve_device(cfg.device)
        data = load_data(args, seed=cfg.seed)
        resume = find_checkpoint(out) if args.resume else None
        if args.resume and resume is None:
            raise ValueError(f"--resume: no {CHECKPOINT_NAME} in {out}; run without --resume to start afresh")
        write_json(out / "config.json", {"config": cfg.to_dict(), "data": data.describe(), "versions": versions()})
        result = fit(cfg, data, checkpoint_dir=out, resume_from=resume, progress=True)
    except (ValueError, DataError, WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics = {**result.metrics, "status": result.status, "epochs": result.epochs, "history": result.history}
    if args.test and result.status != "diverged":
        metrics.update(evaluate_test(result.model, cfg, data))
    torch.save(result.model.state_dict(), out / "model.pt")
    write_json(out / "metrics.json", metrics)
    summary = ", ".join(f"{k}={metrics[k]:.4f}" for k in ("val_acc", "test_acc") if k in metrics)
    print(f"{result.status} after {result.epochs} epochs: {summary}; wrote {out}/{{config,metrics}}.json, model.pt")
    return 1 if result.status == "diverged" else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
