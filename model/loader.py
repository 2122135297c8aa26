"""DeviceLoader: epochs of batches from a uint8 dataset held on the device, augmented there."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .augment import RandAugment, TrivialAugmentWide, batch_crop_flip, batch_cutout_

AUGMENTATIONS: tuple[str, ...] = (
    "none", "flip", "crop_flip", "crop_flip_cutout", "trivialaugment", "randaugment",
)
_POLICIES = {"trivialaugment": TrivialAugmentWide, "randaugment": RandAugment}


class DeviceLoader:
    """Batches of a uint8 dataset held on `device`, augmented with batched tensor ops.

    Each iteration is one epoch. Shuffling and augmentation draw from the global torch
    RNG, so seeding torch before an epoch makes it reproducible (and resumable).
    Augmentation order: policy (uint8, op and magnitude drawn per image) -> crop with
    4-px reflect padding and flip (uint8) -> float -> resize -> normalize -> cutout
    (input_size // 4 square, zero after normalization, i.e. the training mean).
    """

    def __init__(self, images, labels, *, batch_size, mean, std, device="cpu", train=False,
                 augment="none", input_size=32, drop_last=None, channels_last=False):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augment {augment!r}; "
                             f"choose one of {', '.join(AUGMENTATIONS)}")
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} "
                             f"{list(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1 or input_size < 1:
            raise ValueError("batch_size and input_size must be positive")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.train = train
        self.augment = augment
        self.input_size = input_size
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add.
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        # The hole is a quarter of the side (8 px at 32 px) and scales with input_size.
        self.cutout_size = max(1, input_size // 4)
        self._policy = None
        if augment in _POLICIES:
            self._policy = _POLICIES[augment](tuple(images.shape[-2:]), self.device)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.images)
        stop = len(self) * self.batch_size
        order = torch.randperm(n).to(self.device) if self.train else None
        for start in range(0, min(stop, n), self.batch_size):
            if order is None:
                x = self.images[start:start + self.batch_size]
                y = self.labels[start:start + self.batch_size]
            else:
                idx = order[start:start + self.batch_size]
                x = self._augment(self.images[idx])
                y = self.labels[idx]
            yield self._finish(x, self.train and self.augment == "crop_flip_cutout"), y

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self._policy is not None:
            x = self._policy(x)
        if self.augment == "flip":
            return batch_crop_flip(x, padding=0)
        if self.augment != "none":
            return batch_crop_flip(x, padding=4)
        return x

    def _finish(self, x: torch.Tensor, cutout: bool) -> torch.Tensor:
        x = x.float()
        if self.channels_last:
            # Convert before the resize: the CPU bilinear kernel is faster on channels_last
            # input and its output keeps the layout.
            x = x.contiguous(memory_format=torch.channels_last)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                              align_corners=False, antialias=False)
        x = x.mul_(self._scale).add_(self._shift)
        if cutout:
            x = batch_cutout_(x, self.cutout_size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
