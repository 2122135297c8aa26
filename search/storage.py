"""Where a search's Tune run and trial checkpoints live (``--storage-path``): a folder or a URI pyarrow opens.

Every reading of a storage path is here: whether it is a URI, the folder it is on this machine,
the filesystem it opens, and the URI of a checkpoint Tune wrote there (what the study records).
"""

from __future__ import annotations

import os
from pathlib import Path

from model.checkpoint import check_writable

from .errors import SearchError

# The file systems pyarrow (and so Ray's storage) opens by URI.
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


def scheme(storage_path: str) -> str | None:
    """``s3`` of ``s3://bucket/prefix``; None for a plain path."""
    return storage_path.partition("://")[0] if "://" in storage_path else None


def local_folder(storage_path: str) -> str | None:
    """The folder of a storage path on this machine's file system; None for a remote one (s3://...)."""
    if scheme(storage_path) is None:
        return storage_path
    return storage_path.partition("://")[2] if scheme(storage_path) == "file" else None


def resolve(config_storage_path: str | None, out: Path) -> str:
    """The storage path of a search, checked before anything is written: ``--storage-path``, else ``--out``."""
    try:
        check_writable(out, "--out")
        storage_path = config_storage_path or str(out)
        if scheme(storage_path) is not None:
            if scheme(storage_path) not in SCHEMES:
                raise SearchError(f"--storage-path {storage_path}: unknown scheme {scheme(storage_path)!r}; "
                                  f"valid: a path, or {', '.join(s + '://' for s in SCHEMES)}")
        else:
            storage_path = str(Path(storage_path).expanduser().resolve())
            check_writable(storage_path, "--storage-path")
    except ValueError as e:
        raise SearchError(str(e)) from None
    return storage_path.rstrip("/")


def filesystem(storage_path: str):
    """``(pyarrow filesystem, path on it)`` for a URI or a plain path, resolved as Ray resolves it."""
    import pyarrow.fs

    if scheme(storage_path) is None:
        storage_path = os.path.abspath(os.path.expanduser(storage_path))
    return pyarrow.fs.FileSystem.from_uri(storage_path)


def checkpoint_uri(storage_path: str, checkpoint_path: str) -> str:
    """The URI any node opens a checkpoint by, from the path on its filesystem that Tune gives it.

    Tune's ``Checkpoint.path`` has no scheme (``bucket/prefix/...`` on S3); the storage path's
    scheme, which every node's ``Checkpoint(uri)`` resolves with its own credentials, is put back.
    """
    kind = scheme(storage_path)
    return checkpoint_path if kind in (None, "file") else f"{kind}://{checkpoint_path.lstrip('/')}"
