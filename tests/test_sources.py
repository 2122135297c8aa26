import builtins
import io
import os
import pickle
import tarfile
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from model import sources
from model.data import load_cifar10
from model.sources import CIFAR10_CLASSES, DataError, default_data_root
from tests._image_trees import (N_TEST, N_TRAIN, assert_same_data, check_one_line, load,
                                make_tarball, write_tree)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    return root, write_tree(root)


def write_batches(batches: Path) -> dict[str, np.ndarray]:
    """Fake torchvision CIFAR-10 batch files of 20 images each; returns their NCHW pixels."""
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    expected = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = rng.integers(0, 256, (20, 3072), dtype=np.uint8)
        expected[name] = pixels.reshape(20, 3, 32, 32)
        with open(batches / name, "wb") as f:
            pickle.dump({"data": pixels, "labels": list(np.arange(20) % 10)}, f)
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, f)
    return expected


@pytest.fixture
def offline(monkeypatch):
    """torchvision's download fails as it does offline; files that exist pass its md5 checks."""
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    def exists(path, md5=None):
        return Path(path).is_file()

    for name in ("_get_redirect_url", "_urlretrieve"):
        monkeypatch.setattr(torchvision.datasets.utils, name, no_network)
    monkeypatch.setattr(torchvision.datasets.utils, "check_integrity", exists)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists)


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


def test_torchvision_root(tmp_path, offline):
    batches = tmp_path / "root" / "cifar-10-batches-py"
    expected = write_batches(batches)
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
# Download and the default data folder


def test_default_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_HPO_DATA", str(tmp_path / "mine"))
    assert default_data_root() == tmp_path / "mine"
    monkeypatch.delenv("RESNET_HPO_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_root() == tmp_path / ".cache/resnet-hpo/cifar10"


def test_offline_download_names_both_ways_out(tmp_path, offline):
    root = tmp_path / "root"
    with pytest.raises(DataError) as excinfo:
        load(root, tmp_path, download=True)
    check_one_line(excinfo, f"could not download CIFAR-10 into {root}", "name resolution",
                   "--data PATH", ".tar.gz", f"put cifar-10-python.tar.gz from {sources.CIFAR10_URL}"
                   f" into {root}")


def test_no_source_means_default_root_downloading(tmp_path, monkeypatch, offline):
    root = tmp_path / "default"
    monkeypatch.setenv("RESNET_HPO_DATA", str(root))
    with pytest.raises(DataError) as excinfo:
        load_cifar10(None, cache_dir=tmp_path / "cache")
    check_one_line(excinfo, f"could not download CIFAR-10 into {root}")

    def fake_download(url, download_root, filename=None, md5=None):
        write_batches(Path(download_root) / "cifar-10-batches-py")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", fake_download)
    d = load_cifar10(None, val_size=10, cache_dir=tmp_path / "cache")
    assert d.source == str(root) and len(d.train_labels) == 90
    # An explicit path that does not exist stays an error, not a download.
    with pytest.raises(DataError, match="does not exist"):
        load(tmp_path / "nowhere", tmp_path)


def test_archive_put_in_the_folder_by_hand_is_used_offline(tmp_path, offline):
    expected = write_batches(tmp_path / "unpacked" / "cifar-10-batches-py")
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "unpacked" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    d = load(root, tmp_path, val_size=0)
    assert torch.equal(d.test_images, torch.from_numpy(expected["test_batch"]))


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
        m.setattr(sources, "_decode_tree", no_decode)
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
# Bad data


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
# Only train/ and test/ are read, after the layout is checked by name

BIG = 8 << 30  # a sparse 8 GiB file: reading it would take minutes and 8 GiB of memory
_real_open = io.open


@pytest.fixture
def opened(monkeypatch):
    """Paths opened through open()/Path.read_bytes; opening a file named big.* fails at once."""
    seen = []
    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            seen.append(Path(file))
            if Path(file).name.startswith("big."):
                raise AssertionError(f"{file} was opened")
        return _real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)
    return seen


def make_big(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with _real_open(path, "wb") as f:
        f.truncate(BIG)
    assert path.stat().st_size == BIG and path.stat().st_blocks * 512 < BIG // 1000
    return path



def test_folder_without_splits_fails_at_once_without_reading(tmp_path, opened):
    # What --data . on a repo gives: a big non-image file, a few folders, a hidden venv.
    home = tmp_path / "home"
    make_big(home / "big.img")
    make_big(home / ".venv" / "lib" / "big.so")
    for name in ("src", "docs"):
        (home / name / "train").mkdir(parents=True)
    start = time.perf_counter()
    with pytest.raises(DataError) as excinfo:
        load(home, tmp_path)
    elapsed = time.perf_counter() - start
    check_one_line(excinfo, f"{home} holds no train/ and test/ folders", "--data", ".tar.gz")
    assert elapsed < 2, elapsed
    assert not [p for p in opened if home in p.parents], opened


def test_only_train_and_test_are_read(tmp_path, opened):
    src = tmp_path / "src"
    write_tree(src, n_train=2, n_test=1)
    make_big(src / "big.bin")
    make_big(src / "notes" / "big.txt")
    reference = tmp_path / "reference"
    write_tree(reference, n_train=2, n_test=1)
    d = load(src, tmp_path, val_size=0)
    assert_same_data(d, load(reference, tmp_path, val_size=0))
    read = {p.relative_to(src).parts[0] for p in opened if src in p.parents}
    assert read == {"train", "test"}


def test_single_wrapping_folder_missing_a_split_names_it(tmp_path):
    write_tree(tmp_path / "outer" / "inner", n_train=1, n_test=1)
    for f in sorted((tmp_path / "outer/inner/test").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    (tmp_path / "outer/inner/test").rmdir()
    with pytest.raises(DataError) as excinfo:
        load(tmp_path / "outer", tmp_path)
    check_one_line(excinfo, f"no test/ folder in {tmp_path / 'outer' / 'inner'}")


def test_tarball_members_outside_the_splits_are_not_extracted(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_tree(src, n_train=2, n_test=1)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "blob.bin").write_bytes(b"x" * 1000)
    tarball = tmp_path / "data.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "junk", arcname="cifar10/junk")
        for split in ("train", "test"):
            tar.add(src / split, arcname=f"cifar10/{split}")
    extracted = []
    real_extract = tarfile.TarFile.extractfile

    def tracked(self, member):
        extracted.append(member.name)
        return real_extract(self, member)

    monkeypatch.setattr(tarfile.TarFile, "extractfile", tracked)
    d = load(tarball, tmp_path, val_size=0)
    assert len(d.train_labels) == 6 and len(d.test_labels) == 3
    assert len(extracted) == 9 and not [n for n in extracted if "junk" in n]

