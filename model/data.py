"""CIFAR-10 loading, validation split, synthetic data and an on-device batch loader.

Example::

    data = load_cifar10("../shared/data/cifar10-jpeg.tar.gz", val_size=5000, seed=0)
    loader = DeviceLoader(data.train_images, data.train_labels, batch_size=256,
                          mean=data.mean, std=data.std, device="cuda", train=True,
                          augment="crop_flip")
    for x, y in loader:  # one epoch
        ...
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
AUGMENTATIONS: tuple[str, ...] = (
    "none", "flip", "crop_flip", "crop_flip_cutout", "trivialaugment", "randaugment",
)

# Bump when the cache layout changes so old files are ignored rather than misread.
_CACHE_VERSION = 1
_SPLITS = ("train", "test")
_SOURCE_HINT = (
    "--data should point to a CIFAR-10 root (containing cifar-10-batches-py/), "
    "a train/<class>/ + test/<class>/ image-folder tree, or a .tar.gz of one"
)


class DataError(ValueError):
    """Bad data input; the message is one line saying what is wrong and what to do."""


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


def load_cifar10(source, *, val_size=5000, train_subset=None, seed=0, cache_dir=None,
                 download=False) -> CIFAR10Data:
    """Load CIFAR-10 from a torchvision root, an image-folder tree or a tarball of one."""
    path = Path(source).expanduser()
    kind = _source_kind(path, download)
    if kind == "torchvision":
        train_x, train_y, test_x, test_y, classes, content = _load_torchvision(path, download)
    else:
        train_x, train_y, test_x, test_y, classes, content = _load_folders(path, kind, cache_dir)
    return _make_data(train_x, train_y, test_x, test_y, classes, str(path), content,
                      val_size=val_size, train_subset=train_subset, seed=seed)


def _source_kind(path: Path, download: bool) -> str:
    if path.is_dir():
        if (path / "cifar-10-batches-py").is_dir() or path.name == "cifar-10-batches-py":
            return "torchvision"
        if download and not _has_split_dirs(path):
            return "torchvision"
        return "dir"
    if path.is_file():
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return "tar"
        raise DataError(f"{path} is a file but not a .tar.gz/.tgz/.tar archive; {_SOURCE_HINT}")
    if download:
        return "torchvision"
    raise DataError(f"data source {path} does not exist; {_SOURCE_HINT}")


def _has_split_dirs(path: Path) -> bool:
    """True if `path` holds train/ and test/, directly or inside its only subfolder."""
    if all((path / s).is_dir() for s in _SPLITS):
        return True
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return len(subdirs) == 1 and all((subdirs[0] / s).is_dir() for s in _SPLITS)


def _load_torchvision(path: Path, download: bool):
    import torchvision

    root = path.parent if path.name == "cifar-10-batches-py" else path
    try:
        train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
    except RuntimeError as exc:
        raise DataError(f"cannot load torchvision CIFAR-10 from {root}: {_one_line(exc)}; "
                        "pass download=True (--download) or point --data elsewhere") from exc
    batches = root / "cifar-10-batches-py"
    digest = hashlib.sha256()
    for f in sorted(p for p in batches.iterdir() if p.is_file()):
        digest.update(f.name.encode() + b"\0")
        digest.update(_sha256_file(f).encode())
    return (
        _to_nchw(train.data), np.asarray(train.targets, dtype=np.int64),
        _to_nchw(test.data), np.asarray(test.targets, dtype=np.int64),
        tuple(train.classes), "torchvision:" + digest.hexdigest(),
    )


def _load_folders(path: Path, kind: str, cache_dir):
    # A tarball is keyed by its bytes; a directory by its relative paths and file bytes,
    # so editing, adding or renaming any image gives a new key and never a stale cache.
    if kind == "tar":
        files = None
        content = "tar:" + _sha256_file(path)
    else:
        files, dirs = _read_dir(path)
        digest = hashlib.sha256()
        for rel in sorted(files):
            digest.update(rel.encode() + b"\0" + len(files[rel]).to_bytes(8, "little"))
            digest.update(files[rel])
        content = "dir:" + digest.hexdigest()

    cache_file = _cache_path(cache_dir, content)
    cached = _read_cache(cache_file)
    if cached is not None:
        return (*cached, content)

    if files is None:
        files, dirs = _read_tar(path)
    arrays = _decode_tree(files, dirs, str(path))
    _write_cache(cache_file, *arrays)
    return (*arrays, content)


def _read_dir(path: Path) -> tuple[dict[str, bytes], list[str]]:
    files, dirs = {}, []
    for root, dirnames, filenames in os.walk(path, followlinks=True):
        rel_root = Path(root).relative_to(path)
        dirs.extend((rel_root / d).as_posix() for d in dirnames)
        for name in filenames:
            files[(rel_root / name).as_posix()] = (Path(root) / name).read_bytes()
    return files, dirs


def _read_tar(path: Path) -> tuple[dict[str, bytes], list[str]]:
    # Members are read in stream order straight from the archive; nothing touches disk.
    files, dirs = {}, []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./").rstrip("/")
                if member.isdir():
                    dirs.append(name)
                elif member.isfile():
                    files[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read archive {path}: {_one_line(exc)}; "
                        "check that it is a complete .tar.gz/.tar file") from exc
    return files, dirs


def _decode_tree(files: dict[str, bytes], dirs: list[str], where: str):
    """Decode train/<class>/* and test/<class>/* (optionally under one top folder)."""
    rels = list(files) + dirs
    top = {r.split("/")[0] for r in rels if not r.startswith(".")}
    prefix = ""
    if not top & set(_SPLITS) and len(top) == 1:
        prefix = top.pop() + "/"
    layout: dict[str, dict[str, list[str]]] = {s: {} for s in _SPLITS}
    found = set()
    for rel in rels:
        if not rel.startswith(prefix):
            continue
        parts = rel[len(prefix):].split("/")
        if parts[0] not in layout or any(p.startswith(".") for p in parts):
            continue
        found.add(parts[0])
        # Only folders one level below the split are classes; stray files are ignored.
        if len(parts) >= 3 or (len(parts) == 2 and rel not in files):
            images = layout[parts[0]].setdefault(parts[1], [])
            if len(parts) == 3 and rel in files:
                images.append(rel)
    for split in _SPLITS:
        if split not in found:
            raise DataError(f"no {split}/ folder in {where}; expected train/<class>/* and "
                            f"test/<class>/* images (optionally under one top folder)")
    train_classes, test_classes = set(layout["train"]), set(layout["test"])
    if train_classes != test_classes:
        raise DataError(
            f"class folders differ between train/ and test/ in {where}: "
            f"only in train: {sorted(train_classes - test_classes)}, "
            f"only in test: {sorted(test_classes - train_classes)}; "
            "both splits need the same class folders")
    if not train_classes:
        raise DataError(f"no class folders in {where}/{prefix}train; "
                        "expected train/<class>/ folders of images")
    for split in _SPLITS:
        for name, images in layout[split].items():
            if not images:
                raise DataError(f"class folder {where}/{prefix}{split}/{name} has no images; "
                                "add images or remove the folder from both splits")
    if train_classes == set(CIFAR10_CLASSES):
        classes = CIFAR10_CLASSES
    else:
        classes = tuple(sorted(train_classes))

    out = []
    for split in _SPLITS:
        rels_sorted, labels = [], []
        for index, name in enumerate(classes):
            names = sorted(layout[split][name])
            rels_sorted.extend(names)
            labels.extend([index] * len(names))
        images = np.stack([_decode_image(files[r], f"{where}/{r}") for r in rels_sorted])
        out += [_to_nchw(images), np.asarray(labels, dtype=np.int64)]
    return (*out, classes)


def _decode_image(blob: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(blob)) as im:
            im.load()
            if im.mode != "RGB" or im.size != (32, 32):
                raise DataError(f"image {name} is {im.size[0]}x{im.size[1]} {im.mode}; "
                                "expected 32x32 RGB, convert or remove it")
            return np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot decode image {name}: {_one_line(exc)}; "
                        "replace or remove the file") from exc


def _to_nchw(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# Cache of decoded arrays


def default_cache_dir() -> Path:
    """$RESNET_HPO_CACHE, else $XDG_CACHE_HOME/resnet-hpo, else ~/.cache/resnet-hpo."""
    if os.environ.get("RESNET_HPO_CACHE"):
        return Path(os.environ["RESNET_HPO_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "resnet-hpo"


def _cache_path(cache_dir, content: str) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = hashlib.sha256(f"v{_CACHE_VERSION}:{content}".encode()).hexdigest()[:32]
    return root / f"cifar10-{key}.npz"


def _read_cache(path: Path):
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return (z["train_images"], z["train_labels"], z["test_images"], z["test_labels"],
                    tuple(str(c) for c in z["classes"]))
    except Exception as exc:
        # A damaged cache is only a lost speed-up: decode again and overwrite it.
        warnings.warn(f"ignoring unreadable data cache {path}: {_one_line(exc)}")
        return None


def _write_cache(path: Path, train_x, train_y, test_x, test_y, classes) -> None:
    # Write to a temp file in the same folder and rename: concurrent trials either see
    # the complete file or none, never a half-written one.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, train_images=train_x, train_labels=train_y, test_images=test_x,
                         test_labels=test_y, classes=np.asarray(classes, dtype=str))
            # mkstemp creates 0600; a shared cache must be readable by other users.
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        warnings.warn(f"could not write data cache {path}: {_one_line(exc)}")


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


# ---------------------------------------------------------------------------------------
# On-device batches


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror out-of-range indices back into [0, size), without repeating the edge."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def batch_crop_flip(images: torch.Tensor, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop (reflect padding) and horizontal flip, drawn per image, as one gather."""
    b, c, h, w = images.shape
    device = images.device
    rows = torch.arange(h, device=device).expand(b, h)
    cols = torch.arange(w, device=device).expand(b, w)
    if flip:
        mirror = torch.rand(b, 1, device=device) < 0.5
        cols = torch.where(mirror, w - 1 - cols, cols)
    if padding:
        # Reflect padding is folded into the index arithmetic, so nothing is padded and
        # every image gets its own offset in a single gather instead of a loop over offsets.
        shifts = torch.randint(-padding, padding + 1, (b, 2), device=device)
        rows = _reflect(rows + shifts[:, :1], h)
        cols = _reflect(cols + shifts[:, 1:], w)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return images.reshape(b, c, h * w).gather(2, index).view(b, c, h, w)


def batch_cutout_(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero, in place, one size x size square per image at a random centre, clipped at borders."""
    b, _, h, w = images.shape
    device = images.device
    top = torch.randint(0, h, (b, 1), device=device) - size // 2
    left = torch.randint(0, w, (b, 1), device=device) - size // 2
    r = torch.arange(h, device=device)
    c = torch.arange(w, device=device)
    in_rows = (r >= top) & (r < top + size)
    in_cols = (c >= left) & (c < left + size)
    # In place: an out-of-place fill allocates a fresh batch and costs a few ms on CPU.
    return images.masked_fill_(in_rows[:, None, :, None] & in_cols[:, None, None, :], 0)


def apply_policy(images: torch.Tensor, policy, group_size: int) -> torch.Tensor:
    """Apply a v2 policy per chunk of `group_size` images, one random op per chunk."""
    # A v2 transform draws one set of parameters per call; calling it per small chunk
    # gives per-chunk diversity at a fraction of the cost of per-image calls.
    return torch.cat([policy(chunk) for chunk in images.split(group_size)])


class DeviceLoader:
    """Batches of a uint8 dataset held on `device`, augmented with batched tensor ops.

    Each iteration is one epoch. Shuffling and augmentation draw from the global torch
    RNG, so seeding torch before an epoch makes it reproducible (and resumable).
    Augmentation order: policy (uint8, per group of `policy_group_size`) -> crop with
    4-px reflect padding and flip (uint8) -> float -> resize -> normalize -> cutout
    (input_size // 4 square, zero after normalization, i.e. the training mean).
    """

    def __init__(self, images, labels, *, batch_size, mean, std, device="cpu", train=False,
                 augment="none", input_size=32, drop_last=None, channels_last=False,
                 policy_group_size=8):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augment {augment!r}; "
                             f"choose one of {', '.join(AUGMENTATIONS)}")
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {images.dtype} "
                             f"{list(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1 or policy_group_size < 1 or input_size < 1:
            raise ValueError("batch_size, policy_group_size and input_size must be positive")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = batch_size
        self.train = train
        self.augment = augment
        self.input_size = input_size
        self.drop_last = train if drop_last is None else drop_last
        self.channels_last = channels_last
        self.policy_group_size = policy_group_size
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add.
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        # The hole is a quarter of the side (8 px at 32 px) and scales with input_size.
        self.cutout_size = max(1, input_size // 4)
        self._policy = None
        if augment in ("trivialaugment", "randaugment"):
            from torchvision.transforms import v2

            policies = {"trivialaugment": v2.TrivialAugmentWide, "randaugment": v2.RandAugment}
            self._policy = policies[augment]()

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
            x = apply_policy(x, self._policy, self.policy_group_size)
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
