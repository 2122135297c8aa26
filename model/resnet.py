"""ResNets written from scratch the torchvision way.

Two families share one ``ResNet`` class:

* the CIFAR ResNets of He et al. (2016, section 4.2): three stages of 16/32/64 channels,
  a 3x3 stem and parameter-free "option A" shortcuts, so that ``resnet20`` ... ``resnet110``
  have the parameter counts of the paper's table (0.27M ... 1.7M);
* the ImageNet ResNets (``resnet18/34/50``): four stages of 64...512 channels with 1x1
  projection shortcuts ("option B"), either with the ImageNet stem (7x7/2 conv + max-pool) or
  a CIFAR stem (3x3/1 conv, no max-pool). Module names follow torchvision (``conv1``, ``bn1``,
  ``layer1``...``layer4``, ``fc``) so a torchvision state dict loads directly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "register_model", "list_models", "get_builder"]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution"""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample spatially and zero-pad the new channels (no parameters)."""

    def __init__(self, planes: int, stride: int) -> None:
        super().__init__()
        self.planes = planes
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.planes - x.shape[1]
        # Pad half the new channels on each side, as in the paper's reference implementation.
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


class BasicBlock(nn.Module):
    expansion: int = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    # torchvision's "ResNet V1.5": the stride sits on the 3x3 conv, not the first 1x1.
    expansion: int = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """One ResNet for both families; ``widths`` sets the number of stages."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 10,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        stem: str = "cifar",
        shortcut: str = "B",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers {layers} and widths {widths} must have the same length")
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        self.stem = stem
        self.shortcut = shortcut
        self.inplanes = widths[0]
        self.frozen_stages = 0
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = conv3x3(3, self.inplanes)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.num_stages = len(layers)
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            stage = self._make_layer(block, planes, blocks, stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = widths[-1] * block.expansion
        self.fc = nn.Linear(self.num_features, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            # Each residual branch starts as the identity, which helps large batches (Goyal et al.).
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        out_planes = planes * block.expansion
        if stride != 1 or self.inplanes != out_planes:
            if self.shortcut == "A":
                downsample = PadShortcut(out_planes, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, out_planes, stride), nn.BatchNorm2d(out_planes))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = out_planes
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stages(self) -> list[nn.Module]:
        """The stem followed by the residual stages, in order (what ``frozen_stages`` counts)."""
        stem = nn.ModuleList([self.conv1, self.bn1])
        return [stem] + [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def freeze(self, frozen_stages: int) -> None:
        """Freeze the stem and the first ``frozen_stages`` stages (0: train everything).

        Frozen parameters stop receiving gradients and their BatchNorm layers stay in eval mode,
        so their running statistics are not updated either: a frozen stage is bit-identical
        to what was loaded, however long the training.
        """
        if not 0 <= frozen_stages <= self.num_stages:
            raise ValueError(f"frozen_stages must be in 0..{self.num_stages}, got {frozen_stages}")
        self.frozen_stages = frozen_stages
        for i, module in enumerate(self.stages()):
            trainable = frozen_stages == 0 or i > frozen_stages
            for p in module.parameters():
                p.requires_grad_(trainable)
        self.train(self.training)

    def train(self, mode: bool = True) -> ResNet:
        super().train(mode)
        if self.frozen_stages:
            for module in self.stages()[: self.frozen_stages + 1]:
                module.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_MODELS: dict[str, Callable[..., ResNet]] = {}


def register_model(fn: Callable[..., ResNet]) -> Callable[..., ResNet]:
    """Add a builder to the registry under its function name; names are unique."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is already registered")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Registered architectures, CIFAR ResNets first, in registration order."""
    return list(_MODELS)


def get_builder(name: str) -> Callable[..., ResNet]:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown arch {name!r}; valid: {', '.join(list_models())}") from None


def _cifar_resnet(depth: int, **kwargs) -> ResNet:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n, n, n], widths=(16, 32, 64), stem="cifar", shortcut="A", **kwargs)


def _resnet(block: type[BasicBlock | Bottleneck], layers: list[int], stem: str = "cifar", **kwargs) -> ResNet:
    return ResNet(block, layers, widths=(64, 128, 256, 512), stem=stem, shortcut="B", **kwargs)


@register_model
def resnet20(**kwargs) -> ResNet:
    return _cifar_resnet(20, **kwargs)


@register_model
def resnet32(**kwargs) -> ResNet:
    return _cifar_resnet(32, **kwargs)


@register_model
def resnet44(**kwargs) -> ResNet:
    return _cifar_resnet(44, **kwargs)


@register_model
def resnet56(**kwargs) -> ResNet:
    return _cifar_resnet(56, **kwargs)


@register_model
def resnet110(**kwargs) -> ResNet:
    return _cifar_resnet(110, **kwargs)


@register_model
def resnet18(stem: str = "cifar", **kwargs) -> ResNet:
    return _resnet(BasicBlock, [2, 2, 2, 2], stem=stem, **kwargs)


@register_model
def resnet34(stem: str = "cifar", **kwargs) -> ResNet:
    return _resnet(BasicBlock, [3, 4, 6, 3], stem=stem, **kwargs)


@register_model
def resnet50(stem: str = "cifar", **kwargs) -> ResNet:
    return _resnet(Bottleneck, [3, 4, 6, 3], stem=stem, **kwargs)
