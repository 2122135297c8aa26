"""A full disk (issue 17): the search stops in one line with nothing lost, and ``--resume`` finishes it once
space is freed. The end-to-end tests run a real search on a small tmpfs that the fixture mounts and unmounts."""

import errno
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pytest

from search import disk
from search.disk import DiskGuard, is_disk_full
from search.tune.callbacks import StopSearch
from tests._mounts import tmpfs
from tests._searches import ROOT, SEARCH, load_study, run_search, started_and_finished

DISK_SEARCH = [*SEARCH, "--num-samples", "4", "--max-epochs", "3", "--scheduler", "fifo", "--no-retrain", "--no-report"]


def test_a_full_disk_is_recognised_wherever_it_surfaced():
    class StorageError(Exception):
        pass

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise StorageError("could not save") from e
    except StorageError as e:
        wrapped = e
    assert is_disk_full(wrapped) and is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(Exception("(sqlite3.OperationalError) database or disk is full"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied")) and not is_disk_full(ValueError("nan"))


def test_the_guard_stops_the_search_as_ctrl_c_once_free_space_runs_low(tmp_path, monkeypatch):
    stop = StopSearch()
    guard = DiskGuard(tmp_path, str(tmp_path), stop)
    checkpoint = tmp_path / "checkpoint_000000"
    checkpoint.mkdir()
    (checkpoint / "checkpoint.pt").write_bytes(b"0" * 3 * 2**20)
    guard.on_checkpoint(0, [], None, SimpleNamespace(path=str(checkpoint)))  # the largest checkpoint seen: 3 MB
    running = [SimpleNamespace(status="RUNNING")] * 2
    free = {"bytes": disk.RESERVE_BYTES + 2 * 2 * 3 * 2**20}  # exactly the reserve and 2 checkpoints of 2 trials
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: SimpleNamespace(free=free["bytes"]))
    guard.on_trial_result(0, running, None, {})
    assert not stop.stop_all() and guard.message is None
    free["bytes"] -= 1
    guard.on_trial_result(0, running, None, {})
    assert stop.stop_all() and stop.reason == "disk full"
    assert guard.message.startswith(f"no space left on {tmp_path} (")


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs for --out, unmounted after the test."""
    with tmpfs(tmp_path / "disk", "64m") as path:
        yield path


def fill(path, leave: int) -> None:
    """Leave ``leave`` bytes free on ``path``'s file system (0: write until it refuses)."""
    st = os.statvfs(path)
    subprocess.run(["fallocate", "-l", str(max(st.f_bavail * st.f_frsize - leave - 2**20, 0)), str(path / "ballast")],
                   check=True)
    if leave == 0:
        subprocess.run(["dd", "if=/dev/zero", f"of={path / 'ballast-rest'}", "bs=64k"], capture_output=True)


def finished(out) -> int:
    return sum(s in ("COMPLETE", "PRUNED") for s in started_and_finished(out / "study.db").values())


def fill_when(proc, out, disk_root, at_least: int, leave: int) -> str:
    """Once ``at_least`` trials finished, fill the disk to ``leave`` bytes; return the run's one error line."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and finished(out) < at_least:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.2)  # polling interval, not a synchronisation
    fill(disk_root, leave)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert f"no space left on {out}" in error and "--resume" in error
    for ballast in disk_root.glob("ballast*"):
        ballast.unlink()
    return error


def kept(out) -> dict:
    return {t.number: (t.state, t.params, t.value) for t in load_study(out).trials if t.state.is_finished()}


@pytest.mark.slow
def test_a_full_disk_stops_the_search_in_one_line_and_resume_finishes_it(small_disk, image_folder):
    out = small_disk / "smoke"
    argv = [*DISK_SEARCH, "--data", str(image_folder), "--out", str(out)]

    def search(*extra):
        return subprocess.Popen([sys.executable, "-m", "search.run", *argv, *extra], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    # 1. Free space falls below the reserve once a trial is COMPLETE: the guard stops the search.
    error = fill_when(search(), out, small_disk, at_least=1, leave=disk.RESERVE_BYTES)
    assert " MB free)" in error  # the guard measured it
    first = kept(out)
    assert any(state == optuna.trial.TrialState.COMPLETE for state, _, _ in first.values())

    # 2. Resumed, it fills from outside to the last byte once one more trial finished: Ray's and SQLite's
    #    writes fail, and the run still ends in the one line; the study stays whole.
    fill_when(search("--resume"), out, small_disk, at_least=len(first) + 1, leave=0)
    second = kept(out)
    assert first.items() <= second.items() and len(second) > len(first)

    # 3. With space freed, --resume finishes the search and keeps every trial that had finished.
    resumed = run_search(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = kept(out)
    assert second.items() <= after.items()
    assert optuna.trial.TrialState.RUNNING not in {t.state for t in load_study(out).trials}
    summary = json.loads((out / "search.json").read_text())
    assert summary["finished"] and summary["completed"] + summary["pruned"] >= 4 - summary["failed"]
    assert (out / "trials.csv").exists() and (out / "best" / "config.json").exists()
