import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from model import data as data_module
from model.data import (
    AUGMENTATIONS,
    CIFAR10_CLASSES,
    CIFAR10Data,
    DataError,
    DeviceLoader,
    apply_policy,
    batch_crop_flip,
    batch_cutout_,
    load_cifar10,
    synthetic_cifar10,
)

REAL_TARBALL = Path(__file__).resolve().parents[1].parent / "shared/data/cifar10-jpeg.tar.gz"
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


# ---------------------------------------------------------------------------------------
# Loading image folders and tarballs


def test_folder_pixels_labels_and_sorted_classes(tree, tmp_path):
    root, written = tree
    d = load(root, tmp_path, val_size=0)
    assert d.classes == ("apple", "mango", "zebra")
    assert d.train_images.shape == (3 * N_TRAIN, 3, 32, 32)
    assert d.train_images.dtype == torch.uint8 and d.train_labels.dtype == torch.int64
    assert d.test_images.shape == (3 * N_TEST, 3, 32, 32)
    assert d.val_images.shape == (0, 3, 32, 32) and d.val_labels.shape == (0,)
    # Samples are ordered by class then file name, so index 0 of "mango" is known.
    first_mango = d.train_images[d.train_labels == 1][0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(first_mango, written["train/mango/0000.png"])
    last_test = d.test_images[-1].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(last_test, written[f"test/zebra/{N_TEST - 1:04d}.png"])
    assert d.test_labels.tolist() == [0] * N_TEST + [1] * N_TEST + [2] * N_TEST


@pytest.mark.parametrize("wrap", [None, "cifar10"])
def test_tarball_matches_directory(tree, tmp_path, wrap):
    root, _ = tree
    tarball = make_tarball(root, tmp_path / "data.tar.gz", wrap=wrap)
    from_dir = load(root, tmp_path)
    from_tar = load(tarball, tmp_path)
    assert_same_data(from_dir, from_tar)
    assert from_tar.source == str(tarball)
    assert from_dir.fingerprint != from_tar.fingerprint


def test_directory_with_wrapping_folder(tree, tmp_path):
    root, _ = tree
    wrapped = tmp_path / "outer"
    (wrapped / "inner").mkdir(parents=True)
    for split in ("train", "test"):
        (wrapped / "inner" / split).symlink_to(root / split)
    assert_same_data(load(root, tmp_path), load(wrapped, tmp_path))


def test_cifar10_folder_names_use_torchvision_order(tmp_path):
    names = list(reversed(CIFAR10_CLASSES))
    write_tree(tmp_path / "src", classes=names, n_train=2, n_test=1)
    d = load(tmp_path / "src", tmp_path, val_size=0)
    assert d.classes == CIFAR10_CLASSES
    assert d.test_labels.tolist() == list(range(10))


def test_jpeg_files_are_decoded(tmp_path):
    write_tree(tmp_path / "src", ext="jpg", n_train=3, n_test=1)
    d = load(tmp_path / "src", tmp_path, val_size=0)
    assert d.train_images.shape == (9, 3, 32, 32)
    assert 0.3 < d.mean[0] < 0.7  # uniform random pixels, smoothed by JPEG


def test_torchvision_root(tmp_path, monkeypatch):
    import torchvision

    batches = tmp_path / "root" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    expected = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        pixels = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        labels = list(np.arange(20) % 10)
        expected[name] = pixels.reshape(20, 3, 32, 32)
        with open(batches / name, "wb") as f:
            pickle.dump({"data": pixels, "labels": labels}, f)
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, f)
    # The fake batches do not match torchvision's md5 sums.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)

    d = load(tmp_path / "root", tmp_path, val_size=10)
    assert d.classes == CIFAR10_CLASSES
    assert len(d.train_labels) == 90 and len(d.val_labels) == 10
    assert torch.equal(d.test_images, torch.from_numpy(expected["test_batch"]))
    assert torch.equal(load(batches, tmp_path, val_size=10).train_images, d.train_images)


def test_torchvision_root_missing_batches(tmp_path):
    (tmp_path / "root" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DataError, match="download"):
        load(tmp_path / "root", tmp_path)


# ---------------------------------------------------------------------------------------
# Cache


def test_cache_hit_and_content_key(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_tree(src, n_train=4, n_test=2)
    first = load(src, tmp_path, val_size=0)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def no_decode(*args):
        raise AssertionError("decoded although the cache should have been used")

    with monkeypatch.context() as m:
        m.setattr(data_module, "_decode_tree", no_decode)
        assert_same_data(first, load(src, tmp_path, val_size=0))

    # Same size, same name, new pixels: a key on paths or mtimes would serve stale data.
    new_pixels = np.full((32, 32, 3), 7, dtype=np.uint8)
    Image.fromarray(new_pixels).save(src / "train/apple/0000.png")
    changed = load(src, tmp_path, val_size=0)
    assert torch.equal(changed.train_images[0], torch.full((3, 32, 32), 7, dtype=torch.uint8))
    assert changed.fingerprint != first.fingerprint
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_tarball_cache_keyed_by_bytes(tmp_path):
    src = tmp_path / "src"
    write_tree(src, n_train=4, n_test=2)
    tarball = make_tarball(src, tmp_path / "a.tar.gz")
    first = load(tarball, tmp_path, val_size=0)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src / "test/zebra/0001.png")
    make_tarball(src, tarball)
    second = load(tarball, tmp_path, val_size=0)
    assert torch.equal(second.test_images[-1], torch.zeros(3, 32, 32, dtype=torch.uint8))
    assert not torch.equal(first.test_images[-1], second.test_images[-1])


def test_cache_location_from_env(tmp_path, monkeypatch):
    write_tree(tmp_path / "src", n_train=2, n_test=1)
    monkeypatch.setenv("RESNET_HPO_CACHE", str(tmp_path / "envcache"))
    load_cifar10(tmp_path / "src", val_size=0)
    assert len(list((tmp_path / "envcache").glob("cifar10-*.npz"))) == 1


def test_damaged_cache_is_rebuilt(tmp_path):
    write_tree(tmp_path / "src", n_train=2, n_test=1)
    good = load(tmp_path / "src", tmp_path, val_size=0)
    (cache_file,) = (tmp_path / "cache").glob("*.npz")
    cache_file.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="unreadable data cache"):
        assert_same_data(good, load(tmp_path / "src", tmp_path, val_size=0))


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
# Bad data


def check_one_line(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_path(tmp_path):
    with pytest.raises(DataError) as excinfo:
        load(tmp_path / "nowhere", tmp_path)
    check_one_line(excinfo, "nowhere", "--data", ".tar.gz", "cifar-10-batches-py")


@pytest.mark.parametrize("missing", ["train", "test"])
def test_missing_split_folder(tmp_path, missing):
    write_tree(tmp_path / "src", n_train=1, n_test=1)
    for f in (tmp_path / "src" / missing).rglob("*.png"):
        f.unlink()
    for d in sorted((tmp_path / "src" / missing).rglob("*"), reverse=True):
        d.rmdir()
    (tmp_path / "src" / missing).rmdir()
    with pytest.raises(DataError) as excinfo:
        load(tmp_path / "src", tmp_path)
    check_one_line(excinfo, f"no {missing}/ folder")


def test_class_folders_differ(tmp_path):
    write_tree(tmp_path / "src", n_train=1, n_test=1)
    (tmp_path / "src/test/mango").rename(tmp_path / "src/test/kiwi")
    with pytest.raises(DataError) as excinfo:
        load(tmp_path / "src", tmp_path, val_size=0)
    check_one_line(excinfo, "only in train: ['mango']", "only in test: ['kiwi']")


def test_undecodable_image(tmp_path):
    write_tree(tmp_path / "src", n_train=1, n_test=1)
    (tmp_path / "src/train/apple/broken.png").write_bytes(b"this is not an image")
    with pytest.raises(DataError) as excinfo:
        load(tmp_path / "src", tmp_path, val_size=0)
    check_one_line(excinfo, "train/apple/broken.png", "cannot decode")


@pytest.mark.parametrize("size, mode, found", [
    ((16, 16), "RGB", "16x16 RGB"),
    ((32, 32), "L", "32x32 L"),
    ((32, 32), "RGBA", "32x32 RGBA"),
])
def test_wrong_image_size_or_mode(tmp_path, size, mode, found):
    write_tree(tmp_path / "src", n_train=1, n_test=1)
    Image.new(mode, size).save(tmp_path / "src/test/zebra/odd.png")
    tarball = make_tarball(tmp_path / "src", tmp_path / "src.tgz")
    for source in (tmp_path / "src", tarball):
        with pytest.raises(DataError) as excinfo:
            load(source, tmp_path, val_size=0)
        check_one_line(excinfo, "test/zebra/odd.png", found, "expected 32x32 RGB")


def test_empty_class_folder(tmp_path):
    write_tree(tmp_path / "src", n_train=1, n_test=1)
    (tmp_path / "src/train/kiwi").mkdir()
    (tmp_path / "src/test/kiwi").mkdir()
    tarball = make_tarball(tmp_path / "src", tmp_path / "src.tar")
    for source in (tmp_path / "src", tarball):
        with pytest.raises(DataError) as excinfo:
            load(source, tmp_path, val_size=0)
        check_one_line(excinfo, "train/kiwi", "no images")


def test_not_an_archive(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(DataError) as excinfo:
        load(tmp_path / "data.zip", tmp_path)
    check_one_line(excinfo, "data.zip", "--data")


def test_truncated_tarball(tree, tmp_path):
    root, _ = tree
    tarball = make_tarball(root, tmp_path / "data.tar.gz")
    tarball.write_bytes(tarball.read_bytes()[:2000])
    with pytest.raises(DataError) as excinfo:
        load(tarball, tmp_path)
    check_one_line(excinfo, "data.tar.gz")


# ---------------------------------------------------------------------------------------
# DeviceLoader


def ramp_images(n, seed=0):
    """Unique random uint8 images (so every sample can be identified)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)


MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def denormalize(x):
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)


def make_loader(images, labels=None, **kwargs):
    labels = torch.arange(len(images)) if labels is None else labels
    kwargs.setdefault("batch_size", 8)
    return DeviceLoader(images, labels, mean=MEAN, std=STD, **kwargs)


def test_eval_loader_in_order_exact_and_keeps_last_batch():
    images = ramp_images(20)
    loader = make_loader(images, augment="crop_flip_cutout")  # ignored for eval
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(y) for _, y in batches] == [8, 8, 4]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.float32 and x.shape == (20, 3, 32, 32)
    assert y.dtype == torch.int64 and y.tolist() == list(range(20))
    assert torch.equal(denormalize(x), images)


def test_train_loader_drops_last_by_default():
    loader = make_loader(ramp_images(20), train=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [8, 8]


def test_train_shuffle_covers_every_sample_once():
    images = ramp_images(21)
    loader = make_loader(images, train=True, drop_last=False)
    assert len(loader) == 3
    torch.manual_seed(0)
    batches = list(loader)
    y = torch.cat([b[1] for b in batches])
    assert sorted(y.tolist()) == list(range(21))
    assert y.tolist() != list(range(21))
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(denormalize(x), images[y])


@pytest.mark.parametrize("augment", AUGMENTATIONS)
def test_same_global_seed_same_batches(augment):
    loader = make_loader(ramp_images(32), train=True, augment=augment)
    torch.manual_seed(5)
    first = list(loader)
    torch.manual_seed(5)
    second = list(loader)
    third = list(loader)  # the next epoch continues the RNG stream
    for (x1, y1), (x2, y2) in zip(first, second):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert torch.isfinite(x1).all() and x1.shape == (8, 3, 32, 32)
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, third))


def test_flip_is_per_image():
    image = ramp_images(1)
    loader = make_loader(image.expand(64, -1, -1, -1).clone(), batch_size=64, train=True,
                         augment="flip")
    torch.manual_seed(0)
    (x, _), = list(loader)
    out = denormalize(x)
    same = (out == image).flatten(1).all(1)
    flipped = (out == image.flip(3)).flatten(1).all(1)
    assert (same | flipped).all()
    assert 10 < flipped.sum() < 54


def test_crop_flip_matches_reflect_padded_crops():
    image = ramp_images(1)
    padded = F.pad(image.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)[0]
    candidates = torch.stack([
        crop.flip(2) if mirror else crop
        for dy in range(9) for dx in range(9) for mirror in (False, True)
        for crop in [padded[:, dy:dy + 32, dx:dx + 32]]
    ])
    torch.manual_seed(0)
    out = batch_crop_flip(image.expand(128, -1, -1, -1))
    matches = (out[:, None] == candidates[None]).flatten(2).all(2)
    assert (matches.sum(1) == 1).all()  # every output is exactly one valid crop
    assert len(set(matches.float().argmax(1).tolist())) > 40  # offsets differ per image
    assert not (out == image).flatten(1).all(1).all()


def test_crop_flip_loader_changes_images_differently():
    image = ramp_images(1)
    loader = make_loader(image.expand(64, -1, -1, -1).clone(), batch_size=64, train=True,
                         augment="crop_flip")
    torch.manual_seed(1)
    (x, _), = list(loader)
    out = denormalize(x)
    assert len({o.numpy().tobytes() for o in out}) > 20
    assert (out != image).flatten(1).any(1).sum() > 50


def test_cutout_zeroes_one_clipped_square():
    torch.manual_seed(0)
    ones = torch.ones(200, 3, 32, 32)
    out = batch_cutout_(ones, 8)
    assert out is ones
    holes = out[:, 0] == 0
    assert torch.equal(holes, (out == 0).all(1))  # same hole in every channel
    counts = holes.flatten(1).sum(1)
    assert (counts >= 16).all() and (counts <= 64).all() and (counts == 64).any()
    assert (counts < 64).any()  # some holes are clipped at the border
    for hole in holes:
        rows, cols = hole.any(1).nonzero(), hole.any(0).nonzero()
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert height * width == hole.sum() and height <= 8 and width <= 8
    assert len({tuple(h.nonzero()[0].tolist()) for h in holes}) > 50


def test_cutout_loader_fills_with_zero_after_normalization():
    loader = make_loader(ramp_images(16), batch_size=16, train=True, augment="crop_flip_cutout")
    torch.manual_seed(0)
    (x, _), = list(loader)
    zero = (x == 0).all(1)
    assert (zero.flatten(1).sum(1) >= 16).all()


def test_policy_is_drawn_per_group():
    from torchvision.transforms import v2

    image = ramp_images(1)
    batch = image.expand(64, -1, -1, -1).contiguous()
    torch.manual_seed(0)
    out = apply_policy(batch, v2.TrivialAugmentWide(), group_size=8)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    groups = out.view(8, 8, 3, 32, 32)
    assert (groups == groups[:, :1]).all()  # one op within a group
    assert len({g[0].numpy().tobytes() for g in groups}) >= 4  # different ops across groups


@pytest.mark.parametrize("train", [False, True])
def test_input_size_and_channels_last(train):
    loader = make_loader(ramp_images(16), train=train, augment="crop_flip", input_size=64,
                         channels_last=True)
    x, y = next(iter(loader))
    assert x.shape == (8, 3, 64, 64) and y.shape == (8,)
    assert x.is_contiguous(memory_format=torch.channels_last)
    plain, _ = next(iter(make_loader(ramp_images(16), train=train, input_size=64)))
    assert plain.shape == (8, 3, 64, 64) and plain.is_contiguous()


def test_eval_resize_is_bilinear():
    images = ramp_images(4)
    x, _ = next(iter(make_loader(images, input_size=64)))
    expected = F.interpolate(images.float(), size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(denormalize(x).float(), expected.round(), atol=1)


def test_unknown_augment_lists_choices():
    with pytest.raises(ValueError, match="crop_flip_cutout.*randaugment"):
        make_loader(ramp_images(4), augment="mixup")


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
