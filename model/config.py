"""``RunConfig``: everything one training run needs, with its valid choices."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .data import AUGMENTATIONS
from .resnet import list_models

OPTIMIZERS = ("sgd", "nesterov", "adamw")
SCHEDULES = ("cosine", "onecycle", "step", "constant")


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
    # Mixed precision on CUDA: bf16 autocast on GPUs with native bf16 (compute capability >= 8.0),
    # fp16 autocast + GradScaler on older ones (T4, V100). Never on CPU, where bf16 is slower without AMX.
    amp: bool = True
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
    """Raise a ValueError that lists the valid choices when ``value`` is not one of them."""
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(map(str, valid))}")
