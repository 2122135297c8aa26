"""Small image-folder trees and tarballs on disk, and checks shared by the data tests."""

import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from model.data import load_cifar10

CLASSES = ("zebra", "apple", "mango")  # deliberately unsorted: loading must sort them
N_TRAIN, N_TEST = 12, 4


def write_tree(root, classes=CLASSES, n_train=N_TRAIN, n_test=N_TEST, seed=0, ext="png"):
    """Random 32x32 RGB images in root/{train,test}/<class>/; returns {relpath: array}."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.{ext}")
                written[f"{split}/{name}/{i:04d}.{ext}"] = pixels
    return written


def make_tarball(tree, out, wrap=None):
    with tarfile.open(out, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tree / split, arcname=f"{wrap}/{split}" if wrap else split)
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    written = write_tree(root)
    return root, written


def load(source, tmp_path, **kwargs):
    kwargs.setdefault("val_size", 6)
    return load_cifar10(source, cache_dir=tmp_path / "cache", **kwargs)


def images_as_set(images):
    return {bytes(img.numpy().tobytes()) for img in images}


def assert_same_data(a, b):
    for field in ("train_images", "train_labels", "val_images", "val_labels",
                  "test_images", "test_labels"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert a.classes == b.classes
    assert a.mean == b.mean and a.std == b.std


def check_one_line(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
