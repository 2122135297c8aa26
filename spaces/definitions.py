"""The named search spaces. Parameter names are ``model.train.RunConfig`` fields."""

from __future__ import annotations

import optuna

from . import register_space

# Augmentation choices from weakest to strongest; "trivialaugment" adds a torchvision policy
# (TrivialAugmentWide, per image group) on top of crop + flip.
AUGMENT_CHOICES = ["none", "crop_flip", "crop_flip_cutout", "trivialaugment"]


@register_space
def scratch(trial: optuna.Trial) -> None:
    """CIFAR ResNets trained from scratch: depth, optimisation and regularisation."""
    trial.suggest_categorical("arch", ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18"])
    trial.suggest_float("lr", 1e-2, 0.5, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    trial.suggest_categorical("batch_size", [64, 128, 256, 512])
    trial.suggest_categorical("schedule", ["cosine", "onecycle", "step"])
    trial.suggest_float("label_smoothing", 0.0, 0.2)
    trial.suggest_categorical("augment", AUGMENT_CHOICES)


@register_space(pretrained=True)
def finetune(trial: optuna.Trial) -> None:
    """ImageNet-pretrained ResNets fine-tuned with some stages frozen."""
    trial.suggest_categorical("arch", ["resnet18", "resnet34", "resnet50"])
    frozen = trial.suggest_int("frozen_stages", 0, 4)
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)  # the head's learning rate
    if frozen < 4:
        # Conditional: only asked when some backbone stage trains besides the head.
        trial.suggest_float("backbone_lr_mult", 0.01, 1.0, log=True)
    trial.suggest_categorical("input_size", [32, 64, 96, 128])
    trial.suggest_categorical("optimizer", ["sgd", "adamw"])
    trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True)
    trial.suggest_categorical("batch_size", [64, 128, 256])
    trial.suggest_categorical("augment", AUGMENT_CHOICES)
    trial.suggest_float("label_smoothing", 0.0, 0.2)


@register_space
def smoke(trial: optuna.Trial) -> None:
    """Tiny models and ranges, for tests and CI: one learning rate range wide enough to matter."""
    trial.suggest_categorical("arch", ["resnet20"])
    trial.suggest_float("lr", 1e-3, 0.5, log=True)
    trial.suggest_categorical("batch_size", [32, 64])
    trial.suggest_categorical("augment", ["none", "flip"])
