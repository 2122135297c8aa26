"""One training run: ResNets, CIFAR-10 data on the device, and the training loop (no Ray here)."""

from .build import WeightsError, build_model
from .resnet import ResNet, list_models

__all__ = ["ResNet", "WeightsError", "build_model", "list_models"]
