"""A lock on a search's --out folder, so that two searches never write one study."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import SearchError

LOCK_NAME = ".search.lock"


class OutLock:
    """An exclusive ``flock`` on ``OUT/.search.lock`` for as long as the search runs.

    The kernel drops the lock when the process dies, even by SIGKILL, so a killed search never
    leaves a stale lock behind for its ``--resume``.
    """

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> OutLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SearchError(f"{self.path.parent} is in use by a running search (pid {holder}); wait for it to end, "
                              "or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
