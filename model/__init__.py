"""One training run: ResNets, CIFAR-10 data on the device, and the training loop (no Ray here).

The modules, one line each:

- ``train.py``: ``python -m model.train`` and the loop every run shares: ``train_one_epoch``, ``evaluate``, ``fit``.
- ``config.py``: ``RunConfig`` (one run) and ``DataConfig`` (where its images come from), with defaults and help.
- ``flags.py``: command-line flags made from a config dataclass's fields.
- ``resnet.py``: the CIFAR ResNets (resnet20 ... resnet110) and resnet18/34/50, in a registry.
- ``build.py``: ``build_model``: an architecture with optional pretrained weights and frozen stages.
- ``sources.py``: where CIFAR-10 comes from (a torchvision root, an image tree, a .tar.gz), cached by content.
- ``data.py``: ``CIFAR10Data``: the seeded stratified validation split and subset, and synthetic test data.
- ``loader.py``: ``DeviceLoader``: batches from uint8 images held on the device, augmented there.
- ``augment.py``: batched augmentations: crop + flip, cutout, TrivialAugmentWide and RandAugment.
- ``optim.py``: the optimizer and the per-step learning-rate schedule.
- ``device.py``: the device, CPU threads, precision (bf16/fp16 autocast) and seeds.
- ``checkpoint.py``: checkpoints, model files and JSON records, all loadable with ``weights_only=True``.
"""

from .build import WeightsError, build_model
from .resnet import ResNet, list_models

__all__ = ["ResNet", "WeightsError", "build_model", "list_models"]
