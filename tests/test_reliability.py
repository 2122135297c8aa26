"""Faults a search must survive (issue 17): signals, early deaths, bad input, full disks, damaged state.

Every interruption is synchronised on the study's own state (polled in study.db), never on sleeps.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from search.cli import get_args_parser
from search.run import main
from tests.test_search import ROOT, SEARCH, load_study, run_search

# One trial at a time: the sampler then sees the same history in the same order in every run, so an
# interrupted and resumed search must end with the uninterrupted one's best config.
SIGNALLED = [*SEARCH, "--num-samples", "4", "--max-epochs", "3", "--max-concurrent", "1", "--no-retrain",
             "--no-report"]


def running_with_curve(db) -> list[int]:
    """Numbers of the RUNNING trials that reported at least one epoch, read straight from the study."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT DISTINCT t.number FROM trials t JOIN trial_intermediate_values v "
                               "ON v.trial_id = t.trial_id WHERE t.state = 'RUNNING'").fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or locked by a writer
        return []
    return [n for (n,) in rows]


def best_config(out) -> dict:
    """``best/config.json`` less the Tune trial id, which is random in every run."""
    best = json.loads((out / "best" / "config.json").read_text())
    return {k: v for k, v in best.items() if k != "ray_trial_id"}


@pytest.fixture(scope="module")
def uninterrupted(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "smoke"
    proc = run_search(*SIGNALLED, "--data", str(image_folder), "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signalled_search_loses_nothing_and_resumes_to_the_same_best(signum, uninterrupted, image_folder,
                                                                       tmp_path):
    out = tmp_path / "smoke"
    argv = [*SIGNALLED, "--data", str(image_folder), "--out", str(out)]
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    # A terminal's Ctrl-C and systemd's stop both signal the whole process group: the driver and its Ray.
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not running_with_curve(out / "study.db"):
        assert proc.poll() is None, "the search ended before it could be signalled: " + proc.stderr.read()[-3000:]
        time.sleep(0.2)  # polling interval, not a synchronisation
    running = running_with_curve(out / "study.db")
    assert running, "no trial reported an epoch in time"
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    assert "--resume" in err.strip().splitlines()[-1]

    before = {t.number: t for t in load_study(out).trials}
    for n in running:
        # Still RUNNING with its curve, for --resume to continue: not FAIL "orphaned".
        assert before[n].state == optuna.trial.TrialState.RUNNING, before[n].user_attrs
        assert before[n].intermediate_values

    resumed = run_search(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = {t.number: t for t in load_study(out).trials}
    assert len(after) == 4 and optuna.trial.TrialState.RUNNING not in {t.state for t in after.values()}
    for n in running:
        assert after[n].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        assert before[n].intermediate_values.items() <= after[n].intermediate_values.items()
        assert len(after[n].intermediate_values) > len(before[n].intermediate_values)
    reference = {t.number: t for t in load_study(uninterrupted).trials}
    assert {n: (t.state, t.params, t.intermediate_values) for n, t in after.items()} == \
        {n: (t.state, t.params, t.intermediate_values) for n, t in reference.items()}
    assert best_config(out) == best_config(uninterrupted)


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system: root writes through every permission bit, not through this."""
    path = tmp_path / "ro"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", str(path)], check=True)


def test_bad_input_is_one_line_and_leaves_no_folder(tmp_path, capsys, image_folder, read_only_dir):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    smoke = ["--space", "smoke", "--data", str(image_folder), "--val-size", "200"]
    cases = [
        (["--storage-path", str(a_file / "sub")], "--storage-path"),
        (["--storage-path", str(read_only_dir / "tune")], "--storage-path"),
        (["--storage-path", "foo://bar"], "unknown scheme 'foo'"),
        (["--seed", "1099511627776"], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--split-seed", "-1"], "--split-seed"),
        (["--reduction-factor", "nan"], "--reduction-factor"),
        (["--gpus-per-trial", "nan"], "--gpus-per-trial"),
        (["--cpus-per-trial", "nan"], "--cpus-per-trial"),
        (["--cpus-per-trial", "inf"], "--cpus-per-trial"),
        (["--max-failures", "-5"], "--max-failures"),
        (["--max-concurrent", "0"], "--max-concurrent"),
        (["--retrain-epochs", "0"], "--retrain-epochs"),
        (["--val-size", "-1"], "--val-size"),
        (["--train-subset", "0"], "--train-subset"),
    ]
    for argv, needle in cases:
        out = tmp_path / "new" / "o"
        assert main(get_args_parser().parse_args([*smoke, *argv, "--out", str(out)])) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], (argv, err)
        assert not (tmp_path / "new").exists(), argv  # nothing left behind for a user to delete
    for out, needle in [(a_file, "is a file"), (read_only_dir / "o", "cannot write")]:
        assert main(get_args_parser().parse_args([*smoke, "--out", str(out)])) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--out" in err[0] and needle in err[0], err


def test_model_train_refuses_bad_numbers_and_outs_in_one_line(tmp_path, image_folder, read_only_dir):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    base = [sys.executable, "-m", "model.train", "--data", str(image_folder), "--val-size", "100", "--epochs", "1"]
    cases = [(["--threads", "-1", "--out", str(tmp_path / "t")], "threads"),
             (["--lr", "nan", "--out", str(tmp_path / "t")], "lr"),
             (["--out", str(a_file)], "--out"),
             (["--out", str(read_only_dir / "o")], "--out")]
    for argv, needle in cases:
        proc = subprocess.run([*base, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1 and err[0].startswith("error:") and needle in err[0], \
            (argv, proc.stderr[-2000:])


def test_report_refuses_a_study_that_is_not_a_database(tmp_path):
    (tmp_path / "study.db").write_text("not a database\n" * 100)
    proc = subprocess.run([sys.executable, "-m", "search.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1 and "not an Optuna database" in err[0], proc.stderr[-2000:]


def test_the_loser_of_a_lock_race_leaves_the_winners_folder(tmp_path, monkeypatch):
    from search import driver
    from search.config import SearchConfig
    from search.errors import SearchError
    from search.lock import LOCK_NAME, OutLock

    out = tmp_path / "new" / "o"
    winner = OutLock(out)

    class Racing(OutLock):
        def __enter__(self):
            # Both searches found no --out and made it; the other one takes the lock first.
            winner.__enter__()
            return super().__enter__()

    monkeypatch.setattr(driver, "OutLock", Racing)
    with pytest.raises(SearchError, match="in use by a running search"):
        driver.run_search(SearchConfig(space="smoke", out=str(out)))
    assert (out / LOCK_NAME).read_text() == f"{os.getpid()}\n"  # the winner's lock, still in place
    winner.__exit__(None, None, None)


@pytest.mark.slow
def test_a_search_that_died_before_its_first_trial_starts_again(tmp_path, image_folder):
    from search.tuner import create_study

    out = tmp_path / "smoke"
    out.mkdir()
    create_study(out, "smoke")  # what a search killed before Tune's first snapshot leaves
    (out / ".search.lock").write_text("12345\n")
    proc = run_search(*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "1",
                      "--max-epochs", "1", "--no-retrain", "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "started no trial" in proc.stderr
    assert [t.state for t in load_study(out).trials] == [optuna.trial.TrialState.COMPLETE]
