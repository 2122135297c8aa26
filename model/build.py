"""``build_model``: an architecture from the registry, optionally with pretrained weights and frozen stages."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from .resnet import ResNet, get_builder

# The torchvision weights enum that matches each architecture we can pretrain.
TORCHVISION_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}


class WeightsError(RuntimeError):
    """Pretrained weights that cannot be had or do not fit the architecture."""


def build_model(
    arch: str,
    num_classes: int = 10,
    weights: str | os.PathLike | dict[str, torch.Tensor] | None = None,
    frozen_stages: int = 0,
    stem: str | None = None,
    **kwargs,
) -> ResNet:
    """Build ``arch`` for ``num_classes`` classes.

    ``weights``: ``None`` (random init), ``"imagenet"`` (torchvision's ImageNet weights, from
    its cache or downloaded when online), the path of a torchvision-format state-dict file, or
    such a state dict already in memory (a search ships it to its trials). The 1000-class ImageNet classifier is replaced by a fresh ``num_classes`` one.
    ``stem`` defaults to ``"imagenet"`` with pretrained weights (their 7x7 conv1 needs it) and
    ``"cifar"`` otherwise; the CIFAR ResNets (resnet20...110) only have the CIFAR stem.
    ``frozen_stages=k`` freezes the stem and stages 1..k (0 trains everything).
    """
    builder = get_builder(arch)
    if arch in TORCHVISION_WEIGHTS:
        kwargs["stem"] = stem or ("imagenet" if weights is not None else "cifar")
    elif weights is not None:
        raise WeightsError(f"{arch} has no pretrained weights; use one of {', '.join(TORCHVISION_WEIGHTS)} or weights=None")
    elif stem not in (None, "cifar"):
        raise ValueError(f"{arch} is a CIFAR ResNet and only has the 'cifar' stem")
    model = builder(num_classes=num_classes, **kwargs)
    if weights is not None:
        load_pretrained(model, arch, weights)
    model.freeze(frozen_stages)
    return model


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a torchvision-format state dict (tensors only: ``weights_only=True``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path} (pass a torchvision state-dict .pth file, or 'imagenet')")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a file that is not a state dict
        raise WeightsError(f"cannot read weights file {path}: {e.__class__.__name__}: {str(e).splitlines()[0]}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} does not hold a state dict of tensors")
    return state


def imagenet_weights_file(arch: str) -> tuple[str, Path]:
    """The URL of torchvision's ImageNet weights for ``arch`` and the torch hub cache file for it."""
    import torchvision.models as tvm

    url = getattr(tvm, TORCHVISION_WEIGHTS[arch]).IMAGENET1K_V1.url
    return url, Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def imagenet_state_dicts(archs: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """torchvision's ImageNet weights for each of ``archs``: the torch hub cache, or a download when online.

    A failed download raises one WeightsError naming every file still missing, the cache folder and
    ``--weights PATH``. The files are fetched here rather than by torch.hub, which prints a
    "Downloading" line before it finds out that it is offline, and would fail one file per run.
    """
    files = {arch: imagenet_weights_file(arch) for arch in archs}
    missing = [arch for arch, (_, cache) in files.items() if not cache.is_file()]
    for i, arch in enumerate(missing):
        url, cache = files[arch]
        hash_prefix = torch.hub.HASH_REGEX.search(cache.name)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            # A byte-count bar only once connected, and only for a person watching.
            torch.hub.download_url_to_file(url, str(cache), hash_prefix and hash_prefix.group(1),
                                           progress=sys.stderr.isatty())
        except OSError as e:  # URLError and socket errors are OSErrors
            left = missing[i:]
            urls = ", ".join(files[a][0] for a in left)
            raise WeightsError(
                f"cannot fetch torchvision's ImageNet weights for {', '.join(left)} ({e.__class__.__name__}; "
                f"offline?): put {urls} in {cache.parent}, or pass a torchvision state-dict file "
                f"(or, for a search, a folder of them) with --weights PATH"
            ) from e
        except RuntimeError as e:  # download_url_to_file's hash check; the partial file is removed
            raise WeightsError(f"the download of {url} is damaged ({str(e).splitlines()[0]}); try again, "
                               "or pass a torchvision state-dict file with --weights PATH") from e
    return {arch: load_state_dict_file(cache) for arch, (_, cache) in files.items()}


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights for ``arch``: its cache, or a download when online."""
    return imagenet_state_dicts([arch])[arch]


def load_pretrained(model: ResNet, arch: str, weights: str | os.PathLike | dict) -> None:
    """Load ``weights`` ("imagenet", a state-dict file, or a state dict) into ``model``, less the classifier."""
    if isinstance(weights, dict):
        state = weights
    else:
        state = imagenet_state_dict(arch) if str(weights) == "imagenet" else load_state_dict_file(weights)
    # The pretrained classifier has ImageNet's classes; ours is new.
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        k = mismatched[0]
        raise WeightsError(
            f"weights do not fit {arch}: {k} has shape {tuple(state[k].shape)}, the model needs {tuple(own[k].shape)}"
        )
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"weights do not fit {arch}: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {result.unexpected_keys[:3]}{'...' if len(result.unexpected_keys) > 3 else ''}"
        )


def trainable_parameters(model: ResNet) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
