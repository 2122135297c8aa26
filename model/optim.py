"""The optimizer and the per-step learning-rate schedule of a run."""

from __future__ import annotations

import math

import torch

from .config import RunConfig
from .resnet import ResNet


def build_optimizer(model: ResNet, cfg: RunConfig) -> torch.optim.Optimizer:
    """Only trainable parameters reach the optimizer; the backbone may get a smaller lr."""
    head = [p for p in model.fc.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": cfg.lr, "name": "head"}]
    if backbone:
        groups.append({"params": backbone, "lr": cfg.lr * cfg.backbone_lr_mult, "name": "backbone"})
    # On a GPU the fused kernels update every parameter in one launch (a few % of a ResNet-20 step).
    fused = True if all(p.is_cuda for p in head + backbone) else None
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay,
                                 fused=fused)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.optimizer == "nesterov", fused=fused)


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
