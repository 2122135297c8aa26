"""The named search spaces. Parameter names are ``model.train.RunConfig`` fields."""

from __future__ import annotations

import optuna

from . import register_space

# Augmentation choices from weakest to strongest; "trivialaugment" adds TrivialAugmentWide
# (drawn per image) on top of crop + flip.
AUGMENT_CHOICES = ["none", "crop_flip", "crop_flip_cutout", "trivialaugment"]

# He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016), section 4.2:
# SGD with momentum 0.9 (our default), lr 0.1 at batch 128, weight decay 1e-4, lr divided by 10
# at 32k and 48k of 64k iterations (50% and 75% of the run: our "step" schedule), 4-pixel
# padded crops and horizontal flips, no label smoothing. resnet20 is the paper's smallest net.
SCRATCH_RECIPE = {"arch": "resnet20", "lr": 0.1, "weight_decay": 1e-4, "batch_size": 128, "schedule": "step", "optimizer": "sgd",
                  "label_smoothing": 0.0, "augment": "crop_flip"}

# Short budgets (spaces/budget.py): one-cycle with Nesterov momentum, the schedule of
# super-convergence (Smith & Topin 2019) and of Li, Yumer & Ramanan's budgeted training (ICLR 2020),
# at the paper's lr per batch 128 and the weight decay airbench and most short CIFAR recipes use
# (5e-4); the second adds label smoothing at twice the lr. Both were recorded first in
# benchmarks/curves/scratch-resnet20.csv (12 epochs, 2,000 images: 0.508 and 0.506 against the
# paper recipe's 0.419).
SHORT_RECIPES = [
    {"arch": "resnet20", "lr": 0.1, "weight_decay": 5e-4, "batch_size": 128, "schedule": "onecycle",
     "optimizer": "nesterov", "label_smoothing": 0.0, "augment": "crop_flip"},
    {"arch": "resnet20", "lr": 0.2, "weight_decay": 5e-4, "batch_size": 128, "schedule": "onecycle",
     "optimizer": "nesterov", "label_smoothing": 0.1, "augment": "crop_flip"},
]

# A standard full fine-tune, after Kornblith, Shlens & Le, "Do Better ImageNet Models Transfer
# Better?" (CVPR 2019), section 3: SGD with momentum 0.9 on every layer (nothing frozen), a
# small learning rate (0.01 at batch 128) and weight decay 1e-4, the usual crop + flip. Our
# choices: the backbone at the head's lr (mult 1), resnet18, and 64 px input, the smallest
# upsampling that keeps the ImageNet stem's four downsamplings meaningful on 32 px images.
FINETUNE_RECIPE = {"arch": "resnet18", "frozen_stages": 0, "lr": 0.01, "backbone_lr_mult": 1.0, "input_size": 64,
                   "optimizer": "sgd", "weight_decay": 1e-4, "batch_size": 128, "augment": "crop_flip",
                   "label_smoothing": 0.0}


@register_space(recipe=SCRATCH_RECIPE)
def scratch(trial: optuna.Trial) -> None:
    """CIFAR ResNets trained from scratch: depth, optimisation and regularisation.

    Recipe (evaluated first): the ResNet paper's CIFAR-10 setting, He et al. 2016, section 4.2.
    """
    trial.suggest_categorical("arch", ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18"])
    trial.suggest_float("lr", 1e-2, 0.5, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    trial.suggest_categorical("batch_size", [64, 128, 256, 512])
    trial.suggest_categorical("schedule", ["cosine", "onecycle", "step"])
    trial.suggest_categorical("optimizer", ["sgd", "nesterov"])
    trial.suggest_float("label_smoothing", 0.0, 0.2)
    trial.suggest_categorical("augment", AUGMENT_CHOICES)


@register_space(pretrained=True, recipe=FINETUNE_RECIPE)
def finetune(trial: optuna.Trial) -> None:
    """ImageNet-pretrained ResNets fine-tuned with some stages frozen.

    Recipe (evaluated first): a full fine-tune with SGD, after Kornblith et al. 2019, section 3.
    """
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


@register_space(recipe={"arch": "resnet20", "lr": 0.1, "batch_size": 64, "augment": "flip"})
def smoke(trial: optuna.Trial) -> None:
    """Tiny models and ranges, for tests and CI: one learning rate range wide enough to matter."""
    trial.suggest_categorical("arch", ["resnet20"])
    trial.suggest_float("lr", 1e-3, 0.5, log=True)
    trial.suggest_categorical("batch_size", [32, 64])
    trial.suggest_categorical("augment", ["none", "flip"])
