"""Pretrained weights for a search: resolved and loaded once, on the driver.

The trials run on other nodes, where a ``--weights`` file (or torchvision's ImageNet cache) may
not exist. So the driver loads each architecture's state dict once and the trials receive the
tensors through Ray's object store, like the data, instead of a path to open.
"""

from __future__ import annotations

from pathlib import Path

import spaces
from model.build import TORCHVISION_WEIGHTS, WeightsError, imagenet_state_dicts, load_pretrained, load_state_dict_file
from model.resnet import get_builder

from .errors import SearchError


def resolve_weights(space: str, weights: str | None, archs: list[str]) -> dict[str, tuple[str, dict]]:
    """Map each pretrained architecture of the space to ``(label, state_dict)`` that is known to load.

    ``label`` is what the run config records ("imagenet" or the file's path). Pretrained spaces
    default to ``imagenet``. Done before any trial starts, so that a search with unusable weights
    refuses to start instead of failing every trial.
    """
    if not spaces.needs_weights(space):
        if weights is not None:
            raise SearchError(f"--weights is for pretrained spaces such as finetune; space {space!r} trains from "
                              "scratch")
        return {}
    weights = weights or "imagenet"
    archs = [a for a in archs if a in TORCHVISION_WEIGHTS]
    if weights == "imagenet":
        # Offline, one WeightsError names every missing file, the cache folder and --weights PATH.
        states = imagenet_state_dicts(archs)
        return _keep_loadable({arch: ("imagenet", state) for arch, state in states.items()}, weights, archs)
    path = Path(weights).expanduser().resolve()
    if path.is_dir():
        candidates = {arch: sorted(path.glob(f"{arch}*.pth")) + sorted(path.glob(f"{arch}*.pt")) for arch in archs}
        files = {arch: found[0] for arch, found in candidates.items() if found}
    elif path.is_file():
        files = {arch: path for arch in archs}
    else:
        raise SearchError(f"--weights {weights}: no such file or folder; pass 'imagenet', a torchvision "
                          "state-dict file, or a folder of resnet18/34/50 .pth files")
    loaded = {}
    for arch, file in files.items():
        try:
            loaded[arch] = (str(file), load_state_dict_file(file))
        except WeightsError:
            continue
    return _keep_loadable(loaded, weights, archs)


def _keep_loadable(loaded: dict[str, tuple[str, dict]], weights: str, archs: list[str]) -> dict:
    found = {}
    for arch, (label, state) in loaded.items():
        try:
            load_pretrained(get_builder(arch)(stem="imagenet"), arch, state)
        except WeightsError:
            continue
        found[arch] = (label, state)
    if not found:
        raise SearchError(f"--weights {weights}: no torchvision {'/'.join(archs)} state dict found there that loads")
    return found
