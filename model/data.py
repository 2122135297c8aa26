"""CIFAR-10 as a CIFAR10Data: a seeded stratified validation split, training statistics,
and a learnable synthetic stand-in for tests.

Example::

    from model.loader import DeviceLoader

    data = load_cifar10("../shared/data/cifar10-jpeg.tar.gz", val_size=5000, seed=0)
    loader = DeviceLoader(data.train_images, data.train_labels, batch_size=256,
                          mean=data.mean, std=data.std, device="cuda", train=True,
                          augment="crop_flip")
    for x, y in loader:  # one epoch
        ...

Sources and their cache live in model.sources, the loader in model.loader and the
augmentations in model.augment; the data flags are ``model.config.DataConfig``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .sources import CIFAR10_CLASSES, DataError, default_data_root, read_source


@dataclass
class CIFAR10Data:
    """Decoded uint8 NCHW splits on CPU, with the statistics of the training split."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str
    fingerprint: str
    val_size: int = 0
    train_subset: int | None = None
    seed: int = 0

    def describe(self) -> dict:
        """Small JSON-able summary, saved next to results so a run can be reproduced."""
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "sizes": {
                "train": len(self.train_labels),
                "val": len(self.val_labels),
                "test": len(self.test_labels),
            },
            "classes": list(self.classes),
            "mean": [round(m, 6) for m in self.mean],
            "std": [round(s, 6) for s in self.std],
            "val_size": self.val_size,
            "train_subset": self.train_subset,
            "seed": self.seed,
        }

    def full_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Training and validation images together, for retraining the chosen config."""
        images = torch.cat([self.train_images, self.val_images])
        labels = torch.cat([self.train_labels, self.val_labels])
        return images, labels


# ---------------------------------------------------------------------------------------
# Loading


def load_cifar10(source=None, *, val_size=5000, train_subset=None, seed=0, cache_dir=None,
                 download=False) -> CIFAR10Data:
    """Load CIFAR-10 from a torchvision root, an image-folder tree or a tarball of one.

    With no `source`, use default_data_root(), downloading CIFAR-10 there if it is missing.
    """
    if source is None:
        source, download = default_data_root(), True
    path = Path(source).expanduser()
    train_x, train_y, test_x, test_y, classes, content = read_source(
        path, download=download, cache_dir=cache_dir)
    return _make_data(train_x, train_y, test_x, test_y, classes, str(path), content,
                      val_size=val_size, train_subset=train_subset, seed=seed)


# ---------------------------------------------------------------------------------------
# Splits and statistics


def _make_data(train_x, train_y, test_x, test_y, classes, source, content, *, val_size,
               train_subset, seed) -> CIFAR10Data:
    n = len(train_y)
    if not isinstance(val_size, (int, np.integer)) or not 0 <= val_size < n:
        raise DataError(f"val_size={val_size} is invalid for {n} training images; "
                        f"use an integer from 0 to {n - 1}")
    # The validation split is drawn first from the seeded generator, so it is the same
    # whatever train_subset is, and trials with different subsets share one val set.
    rng = np.random.default_rng(seed)
    val_idx, rest = _stratified_split(train_y, val_size, rng)
    if train_subset is not None:
        if not isinstance(train_subset, (int, np.integer)) or not 0 < train_subset <= len(rest):
            raise DataError(f"train_subset={train_subset} is invalid: {len(rest)} training "
                            f"images remain after val_size={val_size}; use 1 to {len(rest)}")
        picked, _ = _stratified_split(train_y[rest], train_subset, rng)
        train_idx = rest[picked]
    else:
        train_idx = rest
    train_images = train_x[train_idx]
    mean, std = _channel_stats(train_images)
    settings = f"{content}|val_size={val_size}|train_subset={train_subset}|seed={seed}"
    return CIFAR10Data(
        train_images=torch.from_numpy(train_images),
        train_labels=torch.from_numpy(train_y[train_idx]),
        val_images=torch.from_numpy(train_x[val_idx]),
        val_labels=torch.from_numpy(train_y[val_idx]),
        test_images=torch.from_numpy(np.ascontiguousarray(test_x)),
        test_labels=torch.from_numpy(np.asarray(test_y, dtype=np.int64)),
        classes=tuple(classes),
        mean=mean,
        std=std,
        source=source,
        fingerprint=hashlib.sha256(settings.encode()).hexdigest()[:16],
        val_size=int(val_size),
        train_subset=None if train_subset is None else int(train_subset),
        seed=seed,
    )


def _stratified_split(labels: np.ndarray, k: int, rng: np.random.Generator):
    """Pick k indices with per-class counts proportional to class sizes; return (picked, rest)."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = k * counts / counts.sum()
    take = np.floor(quota).astype(np.int64)
    # Largest remainders get the leftover picks; a stable sort keeps ties deterministic.
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: k - take.sum()]] += 1
    picked = []
    for c, t in zip(classes, take):
        members = np.flatnonzero(labels == c)
        picked.append(members[rng.permutation(len(members))[:t]])
    picked = np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), picked, assume_unique=True)
    return picked, rest


def _channel_stats(images: np.ndarray):
    # Pixel histograms give the exact float64 mean/std without a float copy of the data.
    levels = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
        total = hist.sum()
        mean = (hist * levels).sum() / total
        means.append(float(mean))
        stds.append(float(np.sqrt((hist * (levels - mean) ** 2).sum() / total)))
    return tuple(means), tuple(stds)


# ---------------------------------------------------------------------------------------
# Synthetic data


def synthetic_cifar10(num_train=2000, num_test=500, *, num_classes=10, val_size=200, seed=0,
                      noise=0.2) -> CIFAR10Data:
    """Learnable fake CIFAR-10: a smooth colour pattern per class, shifted, plus noise.

    `num_train` images are generated for training and `val_size` of them are split off
    for validation; `noise` is the per-pixel Gaussian std on the [0, 1] scale.
    """
    rng = np.random.default_rng(seed)
    # A 4x4 grid of random colours upsampled to 40x40: low-frequency, so small random
    # shifts (a 32x32 window moving up to 8 px) keep each class recognisable.
    grid = torch.from_numpy(rng.uniform(0.1, 0.9, (num_classes, 3, 4, 4)).astype(np.float32))
    patterns = F.interpolate(grid, size=(40, 40), mode="bilinear", align_corners=False).numpy()

    def make(n):
        labels = rng.permutation(np.arange(n) % num_classes)
        shifts = rng.integers(0, 9, (n, 2))
        ar = np.arange(32)
        rows = (shifts[:, :1] + ar)[:, None, :, None]
        cols = (shifts[:, 1:] + ar)[:, None, None, :]
        images = patterns[labels[:, None, None, None], np.arange(3)[None, :, None, None],
                          rows, cols]
        images = images + rng.normal(0.0, noise, images.shape)
        return np.clip(np.rint(images * 255), 0, 255).astype(np.uint8), labels.astype(np.int64)

    train_x, train_y = make(num_train)
    test_x, test_y = make(num_test)
    if num_classes == 10:
        classes = CIFAR10_CLASSES
    else:
        classes = tuple(f"class{i}" for i in range(num_classes))
    content = (f"synthetic:num_train={num_train},num_test={num_test},"
               f"num_classes={num_classes},seed={seed},noise={noise}")
    return _make_data(train_x, train_y, test_x, test_y, classes, "synthetic", content,
                      val_size=val_size, train_subset=None, seed=seed)
