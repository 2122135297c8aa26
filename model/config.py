"""``RunConfig``: everything one training run needs; ``DataConfig``: where its images come from.

Each field carries its default and its help (``model.flags.setting``): ``model.train``'s flags are
made from these fields, and the search fills the same fields from its space.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .data import CIFAR10Data, load_cifar10
from .flags import check_choices, check_finite, config_from_dict, setting
from .loader import AUGMENTATIONS
from .resnet import list_models

OPTIMIZERS = ("sgd", "nesterov", "adamw")
SCHEDULES = ("cosine", "onecycle", "step", "constant")
DEFAULT_VAL_SIZE = 5000  # stratified validation images held out of CIFAR-10's 50,000 training images


@dataclass
class RunConfig:
    """Everything one training run needs; the search fills it, the CLI maps flags onto it."""

    # Model
    arch: str = setting("resnet20", "architecture", choices=list_models())
    weights: str | None = setting(None, "pretrained weights: 'imagenet' (torchvision's) or a torchvision state-dict "
                                        "file", default_text="none, from scratch")
    frozen_stages: int = setting(0, "freeze the stem and stages 1..K (0: train all; 4 on resnet18/34/50: linear probe)")
    input_size: int = setting(32, "pixels; CIFAR's 32x32 is resized on the device (ImageNet-pretrained nets "
                                  "prefer 64-224)")
    # Optimization
    optimizer: str = setting("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = setting(0.1, "peak learning rate, per batch of --batch-size (the head's lr when fine-tuning)")
    backbone_lr_mult: float = setting(1.0, "trainable backbone parameters get lr * this (fine-tuning; 1: same lr)")
    weight_decay: float = setting(5e-4, "L2 for SGD, decoupled for AdamW")
    momentum: float = setting(0.9, "SGD momentum, AdamW beta1")
    batch_size: int = setting(128, "images per step")
    epochs: int = setting(30, "full passes over the training split")
    schedule: str = setting("cosine", "per-step lr schedule (step: x0.1 at 50%% and 75%% of the run)",
                            choices=SCHEDULES)
    warmup_epochs: float = setting(0.0, "linear warm-up from 0, in epochs (fractions allowed); onecycle warms up "
                                        "30%% anyway")
    label_smoothing: float = setting(0.0, "cross-entropy label smoothing")
    augment: str = setting("crop_flip", "augmentation of the training batches", choices=AUGMENTATIONS)
    # Execution
    seed: int = setting(0, "model init, shuffling and augmentation all derive from it (and, in model.train, "
                           "the validation split)")
    device: str = setting("auto", "auto (cuda if present), cpu, cuda or cuda:N")
    threads: int = setting(0, "torch CPU threads; 0: every CPU this process may use (Ray trials pass their CPUs)")
    # Mixed precision on CUDA: bf16 autocast on GPUs with native bf16 (compute capability >= 8.0),
    # fp16 autocast + GradScaler on older ones (T4, V100). Never on CPU, where bf16 is slower without AMX.
    amp: bool = setting(True, "fp32 on CUDA too (default: bf16 autocast; fp16 + loss scaling below compute "
                              "capability 8.0)")
    # channels_last (NHWC) model and batches: ~3x faster convs on CPU (oneDNN), and on GPUs.
    channels_last: bool = setting(True, "keep the NCHW memory format")
    compile: bool = setting(False, "torch.compile the model (pays a compile time of tens of seconds)")
    checkpoint_every: int = setting(1, "epochs between checkpoints, when fit() is given a checkpoint directory")
    eval_batch_size: int = setting(1024, "images per evaluation step")

    def __post_init__(self) -> None:
        check_choices(self)
        check_finite(self, name=lambda f: f.name)
        for name in ("lr", "batch_size", "epochs", "input_size", "checkpoint_every", "eval_batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("frozen_stages", "threads", "seed", "warmup_epochs", "weight_decay", "backbone_lr_mult"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return config_from_dict(cls, d)


@dataclass(kw_only=True)
class DataConfig:
    """Where the images come from and how much of the training set a run sees (``model.train``, the search)."""

    data: str | None = setting(
        None, "CIFAR-10 source: a torchvision root (holding cifar-10-batches-py), or a directory or .tar.gz of "
              "train/<class>/*, test/<class>/* images",
        default_text="$RESNET_HPO_DATA or ~/.cache/resnet-hpo/cifar10, where torchvision downloads CIFAR-10 if it "
                     "is missing")
    # Fetching is not part of what a search is: a --resume may add or drop it.
    download: bool = setting(False, "download CIFAR-10 with torchvision into --data if it is not there (needs "
                                    "internet; implied without --data)", defining=False)
    val_size: int = setting(DEFAULT_VAL_SIZE, "stratified validation images held out of the training set")
    train_subset: int | None = setting(None, "train on a stratified subset of N images, for quick runs",
                                       default_text="all")

    def __post_init__(self) -> None:
        check_finite(self)
        if self.val_size < 0:
            raise ValueError(f"--val-size must be >= 0, got {self.val_size}")
        if self.train_subset is not None and self.train_subset < 1:
            raise ValueError(f"--train-subset must be >= 1, got {self.train_subset}")

    def load_data(self, seed: int) -> CIFAR10Data:
        """The images, split into train and validation and subset with ``seed``."""
        return load_cifar10(self.data, val_size=self.val_size, train_subset=self.train_subset, seed=seed,
                            download=self.download)
