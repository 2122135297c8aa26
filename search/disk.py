"""A full disk stops a search the way Ctrl-C does, before a write fails, and says so in one line.

Every file a search writes can fail with ENOSPC: trial checkpoints (in a Ray worker, retried
and then lost), Optuna's commits, Tune's own logs. Rather than meet the first failure somewhere,
``DiskGuard`` watches the free space of the folders the search writes to and, when it drops below
what the next round of writes needs, stops the Tune run (``StopSearch``): running trials stay
RUNNING in the study with their newest whole checkpoint, and the results are written with the
space held back. A disk that fills anyway (another process, a huge first checkpoint) still ends
in one line: ``is_disk_full`` recognises the failure wherever it surfaced, and SQLite keeps the
study whole (a failed commit is rolled back).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

from ray.tune import Callback

from .constants import KEPT_CHECKPOINTS
from .errors import SearchError

# Held back for the writes of a stopping search: study.db's journal, trials.csv, search.json, Tune's
# last logs. Measured at a few hundred KB for 200 trials; 16 MB is ample.
RESERVE_BYTES = 16 * 2**20
# Tune keeps KEPT_CHECKPOINTS per trial and writes the next before deleting the oldest: that many more may land.
CHECKPOINTS_IN_FLIGHT = KEPT_CHECKPOINTS


class DiskFullError(SearchError):
    """No space left where the search writes; free space and ``--resume`` (exit code 1)."""


def disk_full_message(path: str | os.PathLike, free: int | None = None) -> str:
    left = f" ({free / 2**20:.1f} MB free)" if free is not None else ""
    return (f"no space left on {path}{left}; free space there, then continue the search with the same command "
            "and --resume (nothing computed so far is lost)")


def is_disk_full(e: BaseException | None) -> bool:
    """Whether ``e``, or an error it was raised from, is a full disk (as OSError or SQLite saw it)."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(e) or "No space left on device" in str(e):
            return True  # SQLite's message, and errors Ray re-raised as text from a worker
        e = e.__cause__ or e.__context__
    return False


def not_a_disk_full_traceback(record: logging.LogRecord) -> bool:
    """Drops Ray's logged tracebacks of a full disk: the driver ends with one line that says what to do."""
    return not (record.exc_info and is_disk_full(record.exc_info[1]))


def folder_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class DiskGuard(Callback):
    """Stops the search once free space falls below the reserve plus the checkpoints the running trials will write.

    ``out`` holds the study and the search's files; ``storage`` (None when it is remote) holds the
    trials' checkpoints; ``stop`` is the run's ``StopSearch``. ``message`` says why it stopped the search.
    """

    def __init__(self, out: str | os.PathLike, storage: str | None, stop=None) -> None:
        self.out, self.storage, self.stop = str(out), storage, stop
        self._checkpoint_bytes = 0  # the largest trial checkpoint seen in this run
        self.message: str | None = None

    def check(self, running: int = 1) -> tuple[str, int] | None:
        """``(folder, free bytes)`` of the first folder too full to go on, or None."""
        holds_checkpoints = {self.out: False, **({self.storage: True} if self.storage is not None else {})}
        for path, checkpoints in holds_checkpoints.items():
            need = RESERVE_BYTES + (CHECKPOINTS_IN_FLIGHT * max(running, 1) * self._checkpoint_bytes
                                    if checkpoints else 0)
            free = shutil.disk_usage(path).free
            if free < need:
                return path, free
        return None

    def _stop_if_full(self, trials) -> None:
        if self.message is not None:
            return
        full = self.check(sum(t.status == "RUNNING" for t in trials))
        if full is not None:
            self.message = disk_full_message(*full)
            self.stop.request("disk full")

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        if self.storage is not None and os.path.isdir(checkpoint.path):
            self._checkpoint_bytes = max(self._checkpoint_bytes, folder_bytes(checkpoint.path))
        self._stop_if_full(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._stop_if_full(trials)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._stop_if_full(trials)  # a worker that failed to write its checkpoint

    def on_trial_error(self, iteration, trials, trial, **info):
        self._stop_if_full(trials)


def check_free_space(out: str | os.PathLike, storage: str | None) -> None:
    """Refuse to start (or resume) a search on a folder without even the reserve free."""
    full = DiskGuard(out, storage).check()
    if full is not None:
        raise DiskFullError(disk_full_message(*full))
