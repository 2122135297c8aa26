import json
from pathlib import Path

import pytest
import torch

from model.data import CIFAR10Data, load_cifar10, synthetic_cifar10
from model.sources import CIFAR10_CLASSES, DataError
from tests._image_trees import images_as_set, load, write_tree

REAL_TARBALL = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-jpeg.tar.gz"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    return root, write_tree(root)


# ---------------------------------------------------------------------------------------
# Splits and statistics


def test_val_split_stratified_disjoint_seeded(tree, tmp_path):
    root, _ = tree
    d = load(root, tmp_path, val_size=6, seed=0)
    assert torch.bincount(d.val_labels, minlength=3).tolist() == [2, 2, 2]
    assert torch.bincount(d.train_labels, minlength=3).tolist() == [10, 10, 10]
    train_set, val_set = images_as_set(d.train_images), images_as_set(d.val_images)
    assert len(train_set) == 30 and len(val_set) == 6 and not train_set & val_set
    everything = load(root, tmp_path, val_size=0)
    assert train_set | val_set == images_as_set(everything.train_images)
    assert images_as_set(d.test_images) == images_as_set(everything.test_images)

    again = load(root, tmp_path, val_size=6, seed=0)
    assert torch.equal(again.val_images, d.val_images) and again.fingerprint == d.fingerprint
    other = load(root, tmp_path, val_size=6, seed=1)
    assert images_as_set(other.val_images) != val_set
    assert other.fingerprint != d.fingerprint


def test_uneven_val_size_is_spread_over_classes(tree, tmp_path):
    root, _ = tree
    d = load(root, tmp_path, val_size=7)
    counts = sorted(torch.bincount(d.val_labels, minlength=3).tolist())
    assert counts == [2, 2, 3]


def test_train_subset_stratified_and_val_unchanged(tree, tmp_path):
    root, _ = tree
    full = load(root, tmp_path, val_size=6)
    sub = load(root, tmp_path, val_size=6, train_subset=9)
    assert torch.bincount(sub.train_labels, minlength=3).tolist() == [3, 3, 3]
    assert torch.equal(sub.val_images, full.val_images)
    assert images_as_set(sub.train_images) <= images_as_set(full.train_images)
    assert sub.fingerprint != full.fingerprint
    assert sub.describe()["train_subset"] == 9


@pytest.mark.parametrize("kwargs, text", [
    (dict(val_size=36), "val_size=36"),
    (dict(val_size=-1), "val_size=-1"),
    (dict(val_size=6, train_subset=31), "train_subset=31"),
    (dict(val_size=6, train_subset=0), "train_subset=0"),
])
def test_bad_split_sizes(tree, tmp_path, kwargs, text):
    root, _ = tree
    with pytest.raises(DataError, match=text):
        load(root, tmp_path, **kwargs)


def test_mean_std_from_training_split(tree, tmp_path):
    root, _ = tree
    d = load(root, tmp_path, val_size=6, train_subset=12)
    x = d.train_images.double() / 255
    expected_mean = x.mean(dim=(0, 2, 3))
    expected_std = x.std(dim=(0, 2, 3), unbiased=False)
    assert d.mean == pytest.approx(expected_mean.tolist(), abs=1e-12)
    assert d.std == pytest.approx(expected_std.tolist(), abs=1e-12)
    assert isinstance(d.mean, tuple) and len(d.std) == 3


def test_describe_and_full_train(tree, tmp_path):
    root, _ = tree
    d = load(root, tmp_path, val_size=6, seed=3)
    info = json.loads(json.dumps(d.describe()))
    assert info["sizes"] == {"train": 30, "val": 6, "test": 12}
    assert info["classes"] == ["apple", "mango", "zebra"]
    assert info["seed"] == 3 and info["val_size"] == 6 and info["train_subset"] is None
    assert info["fingerprint"] == d.fingerprint and len(d.fingerprint) == 16
    images, labels = d.full_train()
    assert images.shape == (36, 3, 32, 32) and labels.shape == (36,)
    assert images_as_set(images) == images_as_set(load(root, tmp_path, val_size=0).train_images)


# ---------------------------------------------------------------------------------------
# Synthetic data


def test_synthetic_is_learnable():
    d = synthetic_cifar10(num_train=1000, num_test=200, val_size=100, seed=0)
    assert isinstance(d, CIFAR10Data) and d.source == "synthetic"
    assert d.classes == CIFAR10_CLASSES
    assert d.train_images.shape == (900, 3, 32, 32) and d.train_images.dtype == torch.uint8
    assert torch.bincount(d.val_labels).tolist() == [10] * 10
    x, v = d.train_images.flatten(1).float(), d.val_images.flatten(1).float()
    centroids = torch.stack([x[d.train_labels == c].mean(0) for c in range(10)])
    accuracy = (torch.cdist(v, centroids).argmin(1) == d.val_labels).float().mean()
    assert accuracy > 0.6
    assert len(images_as_set(d.train_images)) == 900  # noise and shifts make images distinct


def test_synthetic_seeded_and_custom_classes():
    a = synthetic_cifar10(num_train=60, num_test=30, num_classes=3, val_size=6, seed=1)
    b = synthetic_cifar10(num_train=60, num_test=30, num_classes=3, val_size=6, seed=1)
    c = synthetic_cifar10(num_train=60, num_test=30, num_classes=3, val_size=6, seed=2)
    assert a.classes == ("class0", "class1", "class2")
    assert torch.equal(a.train_images, b.train_images) and a.fingerprint == b.fingerprint
    assert not torch.equal(a.train_images, c.train_images) and a.fingerprint != c.fingerprint


# ---------------------------------------------------------------------------------------
# Real data


@pytest.mark.slow
def test_real_cifar10_tarball(tmp_path):
    if not REAL_TARBALL.is_file():
        pytest.skip(f"real CIFAR-10 tarball not found at {REAL_TARBALL}")
    d = load_cifar10(REAL_TARBALL, cache_dir=tmp_path)
    assert (len(d.train_labels), len(d.val_labels), len(d.test_labels)) == (45000, 5000, 10000)
    assert d.classes == CIFAR10_CLASSES
    assert torch.bincount(d.val_labels).tolist() == [500] * 10
    assert torch.bincount(d.train_labels).tolist() == [4500] * 10
    assert torch.bincount(d.test_labels).tolist() == [1000] * 10
    full = load_cifar10(REAL_TARBALL, cache_dir=tmp_path, val_size=0)
    assert full.mean == pytest.approx((0.4913, 0.4821, 0.4465), abs=1e-3)
