"""A full disk (issue 17): the search stops in one line with nothing lost, and ``--resume`` finishes it once
space is freed. The end-to-end tests run a real search on a small tmpfs that the fixture mounts and unmounts."""

import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pytest

from search import disk
from search.disk import DiskFullError, DiskGuard, is_disk_full, repair_experiment_state
from tests._mounts import tmpfs
from tests.test_reliability import SIGNALLED
from tests.test_search import ROOT, load_study, run_search
from tests.test_search_api import started_and_finished


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


def snapshot(folder, stamp, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"experiment_state-{stamp}.json").write_text(text)
    (folder / f"searcher-state-{stamp}.pkl").write_bytes(pickle.dumps({"searcher": stamp, "trials": list(range(500))}))
    # Tune's generator state is a pickle despite its name.
    (folder / f"search_gen_state-{stamp}.json").write_bytes(pickle.dumps({"counter": 1}))


def test_the_guard_keeps_one_whole_snapshot_and_a_resume_puts_it_back(tmp_path):
    staging, experiment = tmp_path / "staging", tmp_path / "tune"
    snapshot(staging, "t1", json.dumps({"trials": 1}))
    experiment.mkdir()
    disk.back_up_experiment_state(staging, experiment)
    first = list((experiment / disk.WHOLE).iterdir())
    disk.back_up_experiment_state(staging, experiment)  # the same snapshot: nothing copied again
    assert list((experiment / disk.WHOLE).iterdir()) == first
    os.utime(staging / "experiment_state-t1.json", ns=(10**18, 10**18))
    (staging / "experiment_state-t1.json").write_text(json.dumps({"trials": 2}))
    os.utime(staging / "experiment_state-t1.json", ns=(2 * 10**18, 2 * 10**18))
    disk.back_up_experiment_state(staging, experiment)
    (backup,) = (experiment / disk.WHOLE).iterdir()  # the older copy is gone once the new one is complete
    assert backup.name == str(2 * 10**18)
    assert pickle.loads((backup / "searcher-state-t1.pkl").read_bytes())["searcher"] == "t1"

    assert repair_experiment_state(experiment) is None  # no snapshot in storage yet: nothing to repair
    snapshot(experiment, "t1", json.dumps({"trials": 2}))
    assert repair_experiment_state(experiment) is None  # whole: left as it is
    # A later run's snapshot, cut short by the full disk: set aside, and the whole one put back.
    snapshot(experiment, "t2", '{"trials": [{"id": "a", "che')
    note = repair_experiment_state(experiment)
    assert note.startswith("note: Tune's experiment state was cut short")
    assert json.loads((experiment / "experiment_state-t1.json").read_text()) == {"trials": 2}
    assert not (experiment / "experiment_state-t2.json").exists()
    assert (experiment / "experiment_state-t2.json.cut").exists()

    # The experiment state whole but the searcher's pickle cut short: the whole set is put back.
    searcher = experiment / "searcher-state-t1.pkl"
    searcher.write_bytes(searcher.read_bytes()[:300])
    assert repair_experiment_state(experiment) is not None
    assert pickle.loads(searcher.read_bytes())["searcher"] == "t1"

    (experiment / "experiment_state-t1.json").write_text('{"cut')
    for d in (experiment / disk.WHOLE).iterdir():
        (d / disk.COMPLETE_MARK).unlink()  # a backup that never completed is no backup
    with pytest.raises(DiskFullError, match=r"cut short .* no whole copy is left; the study .* \(--warm-start\)"):
        repair_experiment_state(experiment)


def test_the_guard_stops_the_search_as_ctrl_c_once_free_space_runs_low(tmp_path, monkeypatch):
    stops = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stops.append(signum))
    try:
        guard = DiskGuard(tmp_path, str(tmp_path))
        guard._checkpoint_bytes = 3 * 2**20
        running = [type("T", (), {"status": "RUNNING"})()] * 2
        free = {"bytes": disk.RESERVE_BYTES + 2 * 2 * 3 * 2**20}  # exactly the reserve and 2 checkpoints of 2 trials
        monkeypatch.setattr(disk.shutil, "disk_usage", lambda path: type("U", (), {"free": free["bytes"]})())
        guard._stop_if_full(running)
        assert stops == [] and disk.fired(tmp_path) is None
        free["bytes"] -= 1
        guard._stop_if_full(running)
        guard._stop_if_full(running)  # once only
        assert stops == [signal.SIGINT]
        assert disk.fired(tmp_path).startswith(f"no space left on {tmp_path} (")
    finally:
        signal.signal(signal.SIGINT, previous)


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


def test_a_tuner_pkl_cut_short_by_a_resumed_runs_upload_is_put_back(tmp_path):
    # A resumed run's staging folder holds tuner.pkl (Tune downloads it), and every snapshot
    # uploads it again in place: CI saw a full disk cut it ("pickle data was truncated").
    staging, experiment = tmp_path / "staging", tmp_path / "tune"
    tuner_state = pickle.dumps({"tuner": "state", "param_space": list(range(500))})
    snapshot(staging, "t1", json.dumps({"trials": 1}))
    (staging / disk.TUNER_PKL).write_bytes(tuner_state)
    snapshot(experiment, "t1", json.dumps({"trials": 1}))
    disk.back_up_experiment_state(staging, experiment)
    (experiment / "experiment_state-t1.json").write_text(json.dumps({"trials": 2}))  # a newer whole snapshot
    (experiment / disk.TUNER_PKL).write_bytes(tuner_state[:100])
    assert repair_experiment_state(experiment) == "note: Tune's tuner.pkl was cut short (a full disk?); put back its whole copy"
    assert pickle.loads((experiment / disk.TUNER_PKL).read_bytes()) == pickle.loads(tuner_state)
    assert json.loads((experiment / "experiment_state-t1.json").read_text()) == {"trials": 2}  # kept, not rolled back
    assert repair_experiment_state(experiment) is None

    # A first run's staging folder has no tuner.pkl: the one the new Tuner wrote to storage is kept.
    first = tmp_path / "first"
    snapshot(first, "t1", json.dumps({"trials": 1}))
    shutil.rmtree(experiment / disk.WHOLE)
    disk.back_up_experiment_state(first, experiment)
    (backup,) = (experiment / disk.WHOLE).iterdir()
    assert pickle.loads((backup / disk.TUNER_PKL).read_bytes()) == pickle.loads(tuner_state)

    (experiment / disk.TUNER_PKL).write_bytes(b"")
    shutil.rmtree(backup)
    with pytest.raises(DiskFullError, match=r"tuner.pkl was cut short .* no whole copy is left"):
        repair_experiment_state(experiment)


@pytest.mark.slow
def test_a_full_disk_stops_the_search_in_one_line_and_resume_finishes_it(small_disk, image_folder):
    out = small_disk / "smoke"
    argv = [*SIGNALLED, "--data", str(image_folder), "--out", str(out)]

    def search(*extra):
        return subprocess.Popen([sys.executable, "-m", "search.run", *argv, *extra], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    # 1. Free space falls below the reserve once a trial is COMPLETE: the guard stops the search.
    error = fill_when(search(), out, small_disk, at_least=1, leave=disk.RESERVE_BYTES)
    assert " MB free)" in error  # the guard measured it
    first = kept(out)
    assert any(state == optuna.trial.TrialState.COMPLETE for state, _, _ in first.values())

    # 2. Resumed, it fills from outside to the last byte once one more trial finished: Ray's own writes
    #    fail (its snapshot copy may be cut short), and the run still ends in the one line.
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
