"""A full disk stops a search the way Ctrl-C does, before it breaks the search's state, and says so in one line.

Every file a search writes can fail with ENOSPC: trial checkpoints (in a Ray worker, retried
and then lost), Optuna's commits, Tune's experiment state, ``asha_state.json``. Rather than
meet the first failure somewhere, ``DiskGuard`` watches the free space of the folders the search
writes to and, when it drops below what the next round of writes needs, stops Tune through its
own SIGINT path: running trials keep their checkpoints and stay resumable, and the results are
written with the space held back. A disk that fills anyway (another process, a huge first
checkpoint) still ends in one line: ``is_disk_full`` recognises the failure wherever it surfaced.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import pickletools
import shutil
import signal
import time
from pathlib import Path

from ray.tune import Callback

from .errors import SearchError

# Held back for the writes of a stopping search: Tune's last experiment snapshot, study.db's
# journal, trials.csv, search.json. Measured at a few hundred KB for 200 trials; 16 MB is ample.
RESERVE_BYTES = 16 * 2**20
# Tune keeps 2 checkpoints per trial and writes the third before deleting the oldest.
CHECKPOINTS_IN_FLIGHT = 2

_fired: dict[str, str] = {}  # out folder -> why its guard stopped the search, read by the driver


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


def stop_like_ctrl_c(quiet: bool = False) -> None:
    """End the search as Ctrl-C does: Tune's SIGINT handler stops it gracefully, trials left resumable.

    ``quiet`` keeps Tune's "Stop signal received (e.g. via SIGINT/Ctrl+C)" warning off the
    terminal when no signal was sent.
    """
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        raise KeyboardInterrupt
    logger = logging.getLogger("ray.tune.tune")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        handler(signal.SIGINT, None)
    finally:
        logger.setLevel(level)


# Ray writes its experiment snapshot (experiment state, searcher state, generator state) into a
# local staging folder, then copies it into the storage folder in place, so a full disk can cut
# the copy short, and Tune then restarts the experiment from nothing. The guard keeps the last
# whole set beside it, copied from the staging folder while Tune is not writing it.
WHOLE = ".whole"  # OUT/tune/.whole/<snapshot mtime in ns>/: one complete snapshot per folder
COMPLETE_MARK = "complete"
# Written once by a new Tuner, and read by Tuner.restore. A resumed run downloads it into its
# staging folder with the rest (ExperimentCheckpointManager.sync_down_experiment_state takes
# every top-level .json and .pkl), so every later snapshot uploads it again, in place: a full
# disk then cuts it short like the snapshot itself (seen in CI: "pickle data was truncated").
TUNER_PKL = "tuner.pkl"


def _in_snapshot(f: Path) -> bool:
    """Whether ``f`` is one of the files a snapshot copies: experiment_state-, searcher-state-, search_gen_state-."""
    return f.is_file() and "state-" in f.name and not f.name.endswith(".cut")


def newest_experiment_state(folder: str | os.PathLike) -> Path | None:
    found = sorted(Path(folder).glob("experiment_state-*.json"))
    return found[-1] if found else None


def parses(path: Path) -> bool:
    """Whether a snapshot file is whole: JSON that parses, or a pickle that runs to its STOP opcode.

    Told apart by content, not name: Tune's ``search_gen_state-*.json`` is a pickle. A pickle is
    walked with ``pickletools``, which builds no object.
    """
    try:
        data = path.read_bytes()
        if data[:1] == b"\x80":  # pickle protocol 2 and later start with PROTO
            ops = [op.name for op, _, _ in pickletools.genops(data)]
            return bool(ops) and ops[-1] == "STOP"
        json.loads(data)
        return True
    except (OSError, ValueError):
        return False


def snapshot_files(state: Path) -> list[Path]:
    """The files of the snapshot ``state`` names: experiment, searcher and generator state of one run."""
    stamp = state.name[len("experiment_state-"):-len(".json")]
    return [f for f in state.parent.iterdir() if _in_snapshot(f) and stamp in f.name]


def back_up_experiment_state(staging: str | os.PathLike, experiment_dir: str | os.PathLike) -> None:
    """Copy Tune's newest snapshot and ``tuner.pkl`` to ``experiment_dir/.whole/<mtime>/`` if it is new.

    Callbacks run on the Tune loop's thread, which also writes the staging copy: what is read here
    is one whole snapshot. ``tuner.pkl`` comes from the staging folder after a resume, else from
    the storage folder, where a new Tuner wrote it once. Older backups go once the new one is complete.
    """
    state = newest_experiment_state(staging)
    if state is None:
        return
    whole = Path(experiment_dir) / WHOLE
    target = whole / str(state.stat().st_mtime_ns)
    if (target / COMPLETE_MARK).exists():
        return
    tuner = next((p for p in (Path(staging) / TUNER_PKL, Path(experiment_dir) / TUNER_PKL) if parses(p)), None)
    try:
        target.mkdir(parents=True, exist_ok=True)
        for f in [*filter(_in_snapshot, Path(staging).iterdir()), *([tuner] if tuner else [])]:
            shutil.copyfile(f, target / f.name)
        (target / COMPLETE_MARK).touch()
    except OSError:
        shutil.rmtree(target, ignore_errors=True)  # a full disk: the previous whole copy stays
        return
    for older in whole.iterdir():
        if older != target:
            shutil.rmtree(older, ignore_errors=True)


def repair_experiment_state(experiment_dir: str | os.PathLike) -> str | None:
    """Put back the last whole snapshot, or ``tuner.pkl``, if cut short; return a note saying so, or None."""
    experiment_dir = Path(experiment_dir)
    state = newest_experiment_state(experiment_dir)
    if state is None:
        return None
    tuner = experiment_dir / TUNER_PKL
    state_whole = all(parses(f) for f in snapshot_files(state))
    tuner_whole = not tuner.exists() or parses(tuner)  # a missing one is Tune's own error to report
    if state_whole and tuner_whole:
        return None
    cut = state if not state_whole else tuner
    whole = experiment_dir / WHOLE
    backups = [d for d in sorted(whole.iterdir(), key=lambda d: int(d.name)) if (d / COMPLETE_MARK).exists()
               and (tuner_whole or (d / TUNER_PKL).exists())] if whole.is_dir() else []
    if not backups:
        raise DiskFullError(f"--resume: Tune's {cut} was cut short (a full disk?) and no whole "
                            f"copy is left; the study {experiment_dir.parent / 'study.db'} keeps every "
                            "finished trial: warm-start a new search from it (--warm-start)")
    if state_whole:  # only tuner.pkl: it never changes, and the newer snapshot stays
        shutil.copyfile(backups[-1] / TUNER_PKL, tuner)
        return f"note: Tune's {tuner.name} was cut short (a full disk?); put back its whole copy"
    restored = {f.name for f in backups[-1].iterdir()} - {COMPLETE_MARK}
    for name in restored:
        shutil.copyfile(backups[-1] / name, experiment_dir / name)
    if state.name not in restored:  # cut short in a later run: Tune restores the newest, so set it aside
        for f in snapshot_files(state):
            f.rename(f.with_name(f.name + ".cut"))
    when = time.strftime("%H:%M:%S", time.localtime(int(backups[-1].name) / 1e9))
    return f"note: Tune's experiment state was cut short (a full disk?); resuming from its last whole copy ({when})"


def folder_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


class DiskGuard(Callback):
    """Stops the search once free space falls below the reserve plus the checkpoints the running trials will write.

    ``out`` holds the study and the search's files; ``storage`` (None when it is remote) holds the
    trials' checkpoints. A Tune callback, so a ``--resume`` runs an unpickled copy: what it decides
    goes into a module-level record the driver reads (``fired``), in the same process.
    """

    def __init__(self, out: str | os.PathLike, storage: str | None, experiment_dir: str | None = None) -> None:
        self.out, self.storage, self.experiment_dir = str(out), storage, experiment_dir
        self._checkpoint_bytes = 0  # the largest trial checkpoint seen in this run

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
        if self.out in _fired:
            return
        full = self.check(sum(t.status == "RUNNING" for t in trials))
        if full is not None:
            _fired[self.out] = disk_full_message(*full)
            stop_like_ctrl_c(quiet=True)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        checkpoint = getattr(checkpoint, "checkpoint", checkpoint)  # a training result, or the checkpoint
        if self.storage is not None and getattr(checkpoint, "path", None) and os.path.isdir(checkpoint.path):
            self._checkpoint_bytes = max(self._checkpoint_bytes, folder_bytes(checkpoint.path))
        self._stop_if_full(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._stop_if_full(trials)
        if self.experiment_dir is not None:
            # At most one copy per snapshot (TUNE_GLOBAL_CHECKPOINT_S): a trial moves on a checkpoint at
            # most, and Tune keeps two, so the copy's checkpoints still exist when it is needed.
            back_up_experiment_state(trial.storage.experiment_driver_staging_path, self.experiment_dir)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._stop_if_full(trials)  # a worker that failed to write its checkpoint

    def on_trial_error(self, iteration, trials, trial, **info):
        self._stop_if_full(trials)


def fired(out: str | os.PathLike) -> str | None:
    """Why the guard of the search in ``out`` stopped it in this process, if it did."""
    return _fired.pop(str(out), None)


def check_free_space(out: str | os.PathLike, storage: str | None) -> None:
    """Refuse to start (or resume) a search on a folder without even the reserve free."""
    full = DiskGuard(out, storage).check()
    if full is not None:
        raise DiskFullError(disk_full_message(*full))
