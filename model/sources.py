"""Where CIFAR-10 comes from: a torchvision root (downloaded if asked), an image-folder tree
or a .tar.gz of one, decoded to uint8 NCHW arrays and cached by content.

Example::

    train_x, train_y, test_x, test_y, classes, content = read_source(default_data_root(),
                                                                     download=True)
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"

# Bump when the cache layout changes so old files are ignored rather than misread.
_CACHE_VERSION = 1
_SPLITS = ("train", "test")
_SOURCE_HINT = (
    "--data should point to a CIFAR-10 root (containing cifar-10-batches-py/), "
    "a train/<class>/ + test/<class>/ image-folder tree, or a .tar.gz of one"
)


class DataError(ValueError):
    """Bad data input; the message is one line saying what is wrong and what to do."""


def default_data_root() -> Path:
    """$RESNET_HPO_DATA, else ~/.cache/resnet-hpo/cifar10: where CIFAR-10 is downloaded."""
    if os.environ.get("RESNET_HPO_DATA"):
        return Path(os.environ["RESNET_HPO_DATA"]).expanduser()
    return Path.home() / ".cache" / "resnet-hpo" / "cifar10"


def read_source(path: Path, *, download: bool = False, cache_dir=None):
    """Decoded (train_x, train_y, test_x, test_y, classes, content key) of one source."""
    kind = _source_kind(path, download)
    if kind == "torchvision":
        return _load_torchvision(path, download)
    return _load_folders(path, kind, cache_dir)


def _source_kind(path: Path, download: bool) -> str:
    if path.is_dir():
        if (path / "cifar-10-batches-py").is_dir() or path.name == "cifar-10-batches-py":
            return "torchvision"
        if (download and not _has_split_dirs(path)) or (path / CIFAR10_ARCHIVE).is_file():
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
    # torchvision only extracts an archive whose checksum matches, so one put there by
    # hand (the offline way in) is used without the network.
    download = download or (root / CIFAR10_ARCHIVE).is_file()
    try:
        train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError
        if download:
            raise DataError(
                f"could not download CIFAR-10 into {root} ({_one_line(exc)}); pass --data PATH "
                "to local files (a torchvision root, an image-folder tree or a .tar.gz of one), "
                f"or put {CIFAR10_ARCHIVE} from {CIFAR10_URL} into {root}") from exc
        if not isinstance(exc, RuntimeError):
            raise
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
        files, dirs = _read_dir(path, _split_root(path))
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


def _split_root(path: Path) -> Path:
    """The folder holding train/ and test/: `path` or its only subfolder, checked by name only.

    This runs before any file is read, so a wrong --data (a home folder, a repo with a
    virtualenv) fails at once instead of being read into memory.
    """
    candidates = [path]
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1:
        candidates.append(subdirs[0])
    for root in candidates:
        present = [s for s in _SPLITS if (root / s).is_dir()]
        if len(present) == len(_SPLITS):
            return root
        if present:
            (missing,) = set(_SPLITS) - set(present)
            raise DataError(f"no {missing}/ folder in {root}; expected train/<class>/* and "
                            "test/<class>/* images (optionally under one top folder)")
    raise DataError(f"{path} holds no train/ and test/ folders (nor does a single subfolder); "
                    f"{_SOURCE_HINT}")


def _read_dir(path: Path, split_root: Path) -> tuple[dict[str, bytes], list[str]]:
    """Files and folders under split_root/{train,test}, keyed by their path relative to `path`."""
    files, dirs = {}, []
    for split in _SPLITS:
        top = split_root / split
        dirs.append((split_root.relative_to(path) / split).as_posix())
        for root, dirnames, filenames in os.walk(top, followlinks=True):
            rel_root = split_root.relative_to(path) / Path(root).relative_to(top.parent)
            dirs.extend((rel_root / d).as_posix() for d in dirnames)
            for name in filenames:
                files[(rel_root / name).as_posix()] = (Path(root) / name).read_bytes()
    return files, dirs


def _read_tar(path: Path) -> tuple[dict[str, bytes], list[str]]:
    # Members are read in stream order straight from the archive; nothing touches disk.
    # Only files under train/ or test/ (optionally below one top folder) are kept in memory.
    files, dirs = {}, []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./").rstrip("/")
                if member.isdir():
                    dirs.append(name)
                elif member.isfile() and set(name.split("/")[:2]) & set(_SPLITS):
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
