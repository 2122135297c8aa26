"""Faults a search must survive (issue 17): signals, early deaths, bad input, full disks, damaged state.

Every interruption is synchronised on the study's own state (polled in study.db) or a file a hook
writes, never on sleeps.
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest

from search.cli import get_args_parser
from search.run import main
from tests._mounts import tmpfs
from tests._searches import ROOT, SEARCH, load_study, one_error_line, run_search, signal_at, trial_rows

# Two trials at once, FIFO, and TPE's random start as long as the search: trial N's config is then a
# function of the seed and N alone (search/sampler.py), whatever order trials finish in, so an
# interrupted and resumed search must end with the uninterrupted one's trials, curves and best config.
SIGNALLED = [*SEARCH, "--num-samples", "4", "--n-startup-trials", "4", "--max-epochs", "3", "--scheduler", "fifo",
             "--no-retrain", "--no-report"]
HOOKS = ROOT / "tests" / "_hooks"  # sitecustomize.py: holds a checkpoint upload open (the "checkpoint" moment)


def best_config(out) -> dict:
    """``best/config.json`` less the Tune trial id, which is random in every run."""
    best = json.loads((out / "best" / "config.json").read_text())
    return {k: v for k, v in best.items() if k != "ray_trial_id"}


def trials_of(out) -> dict:
    return {t.number: (t.state, t.params, t.intermediate_values) for t in load_study(out).trials}


@pytest.fixture(scope="module")
def uninterrupted(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "smoke"
    proc = run_search(*SIGNALLED, "--data", str(image_folder), "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # One line per finished trial: Tune's warning about frequent snapshots (3 lines each) stays out.
    assert "snapshotting has been triggered" not in proc.stdout + proc.stderr
    return out


def reached(moment: str, out, hold) -> bool:
    """Whether the search in ``out`` is at ``moment``, read from its study (or the upload hook's file)."""
    rows = trial_rows(out / "study.db")
    if moment == "asked":  # a third trial asked of the study while two train: Tune's next, not yet started
        return len(rows) >= 3 and rows[2] == ("RUNNING", 0)
    if moment == "mid-epoch":  # a running trial has an epoch in the study and trains its next
        return any(state == "RUNNING" and epochs >= 1 for state, epochs in rows.values())
    return any(hold.iterdir())  # "checkpoint": a worker holds a half-written checkpoint upload open


@pytest.mark.slow
@pytest.mark.parametrize("moment, signum, group", [
    ("asked", signal.SIGINT, True),  # Ctrl-C in a terminal: the driver and the Ray processes it started
    ("mid-epoch", signal.SIGTERM, False),  # `kill PID`, `ray job stop`
    ("checkpoint", signal.SIGTERM, True),  # `timeout`, SLURM at its time limit, Kubernetes: the process group
])
def test_a_signal_with_two_trials_running_loses_nothing_and_resumes_to_the_same_search(
        moment, signum, group, uninterrupted, image_folder, tmp_path):
    out, hold = tmp_path / "smoke", tmp_path / "hold"
    hold.mkdir()
    argv = [*SIGNALLED, "--data", str(image_folder), "--out", str(out)]
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    if moment == "checkpoint":
        env.update(RESNET_HPO_TEST_HOLD_UPLOAD=str(hold), PYTHONPATH=os.pathsep.join([str(HOOKS), str(ROOT)]))
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while not reached(moment, out, hold):
        assert proc.poll() is None, "the search ended before it could be signalled: " + proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"the search did not reach {moment} in time"
        time.sleep(0.1)  # polling interval, not a synchronisation
    before = trial_rows(out / "study.db")
    signalled = time.monotonic()
    os.killpg(proc.pid, signum) if group else os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    took = time.monotonic() - signalled

    # Within 15 s, one line that says how to resume, and every trial the study had is still there.
    assert proc.returncode == 1 and took < 15, (took, err[-3000:])
    said = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and "continue it with the same command and --resume" in said[0], err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    # No trial lost or failed: each is RUNNING with its curve so far, for --resume (or finished as it stopped).
    interrupted = trial_rows(out / "study.db")
    assert all(interrupted[n][1] >= epochs for n, (_, epochs) in before.items()), (before, interrupted)
    assert {state for state, _ in interrupted.values()} <= {"RUNNING", "COMPLETE"}, interrupted

    resumed = run_search(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    # The same trials, states, configs and curves as the search that was never interrupted, and its best.
    assert trials_of(out) == trials_of(uninterrupted)
    assert best_config(out) == best_config(uninterrupted)
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 4 and set(table["state"]) == {"COMPLETE"}


@pytest.mark.slow
def test_a_signal_at_any_moment_of_start_up_ends_the_command_in_one_line_and_loses_nothing(
        uninterrupted, image_folder, tmp_path):
    """Issue 32: SIGINT was ignored in the first seconds and SIGTERM ended in Ray's crash dump (exit 134)."""
    out = tmp_path / "smoke"
    argv = [*SIGNALLED, "--data", str(image_folder), "--out", str(out)]
    moments = [  # (the line the signal follows: the phase it lands in, the signal, to the group or the driver)
        ("loading data", signal.SIGINT, True, "run the same command again"),  # data loading, Ray's start next
        ("note: no GPU", signal.SIGTERM, False, "run the same command again"),  # Ray started: preflight, plan
        ("plan:", signal.SIGINT, True, "--resume"),  # the study holds the recipes: Tune's start
        ("plan:", signal.SIGTERM, True, "--resume"),
    ]
    for marker, signum, group, says in moments:
        code, took, printed = signal_at(argv, marker, signum, group)
        assert code == 1 and took < 15, (marker, signum, took, printed[-3000:])
        line = one_error_line(printed)
        assert f"({signal.Signals(signum).name})" in line and says in line, (marker, line)
        # A later start is refused nothing: a study that started no trial starts afresh.
        assert not (out / "study.db").exists() or "continue it" in line
        shutil.rmtree(out, ignore_errors=True)

    # A --resume is signalled in its start-up too, then resumed to the end: nothing was lost.
    code, took, printed = signal_at(argv, "] trial ", signal.SIGTERM, True)  # the first trial's end
    assert code == 1 and took < 15 and "--resume" in one_error_line(printed), printed[-3000:]
    code, took, printed = signal_at([*argv, "--resume"], "loading data", signal.SIGINT, True)
    assert code == 1 and took < 15 and "--resume" in one_error_line(printed), printed[-3000:]
    resumed = run_search(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert trials_of(out) == trials_of(uninterrupted)
    assert best_config(out) == best_config(uninterrupted)


@pytest.mark.slow
def test_a_signal_during_the_retrain_names_the_command_that_reruns_it(image_folder, tmp_path):
    out = tmp_path / "smoke"
    argv = [*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "1", "--max-epochs", "1",
            "--retrain-epochs", "50", "--no-report"]
    code, took, printed = signal_at(argv, "retraining trial", signal.SIGTERM, True)
    assert code == 1 and took < 15, (took, printed[-3000:])
    line = one_error_line(printed)
    assert "the retrain was interrupted (SIGTERM)" in line and f"python -m search.retrain {out}" in line, line
    assert json.loads((out / "search.json").read_text())["completed"] == 1  # the search's results are intact
    rerun = subprocess.run([sys.executable, "-m", "search.retrain", str(out), "--epochs", "1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and (out / "best" / "metrics.json").is_file(), rerun.stderr[-3000:]


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system: root writes through every permission bit, not through this."""
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as path:
        yield path


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
        (["--retrain-share", "1"], "--retrain-share"),
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


@pytest.mark.slow
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
    from search.study import create_study, enqueue_recipes, open_storage

    out = tmp_path / "smoke"
    out.mkdir()
    # What a search killed before Tune asked for its first trial leaves: the study with its recipe waiting.
    enqueue_recipes(create_study(open_storage(out), "smoke"), [{"lr": 0.1}], 1)
    (out / ".search.lock").write_text("12345\n")
    proc = run_search(*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "1",
                      "--max-epochs", "1", "--no-retrain", "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "started no trial" in proc.stderr
    assert [t.state for t in load_study(out).trials] == [optuna.trial.TrialState.COMPLETE]


@pytest.fixture
def damaged_copy(uninterrupted, tmp_path):
    """A copy of a finished search's folder, to damage, made to look interrupted (``finished`` None in its
    study, as a search killed mid-way leaves it): ``--resume`` refuses a finished search before it reads any state."""
    from search.config import SearchConfig
    from search.state import FINISHED, save_record

    out = tmp_path / "copy"
    shutil.copytree(uninterrupted, out)
    save_record(load_study(out), **{FINISHED: None})
    return SearchConfig.from_run(out), out


@pytest.mark.slow
def test_a_read_only_study_is_refused_before_a_resume_starts(damaged_copy):
    from search.driver import check_resume
    from search.errors import SearchError

    config, out = damaged_copy
    db = str(out / "study.db")
    subprocess.run(["mount", "--bind", db, db], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", db], check=True)
        with pytest.raises(SearchError, match="cannot write .*study.db"):
            check_resume(config, True, out)
    finally:
        subprocess.run(["umount", db], check=True)


def test_trials_csv_search_json_the_report_and_the_progress_line_count_the_same_trials(tmp_path):
    from search.progress import SearchProgress
    from search.report import build_report
    from tests._tiny_run import make_run, tiny_image_folder

    data = tiny_image_folder(tmp_path / "data")
    # Three suggestions the check refused (FAIL, never run), then 6 trials: 2 complete, 2 pruned, 2 diverged.
    out = make_run(tmp_path / "run", data, n_complete=2, n_pruned=2, n_failed=2, invalid=3)
    table = pd.read_csv(out / "trials.csv")
    summary = json.loads((out / "search.json").read_text())
    assert len(table) == len(load_study(out).trials) == 9
    assert list(table.loc[table["state"] == "FAIL", "fail_reason"].str[:18]) == ["invalid suggestion"] * 3 + [
        "diverged", "diverged"]
    # A failure is a trial that ran and failed; an invalid suggestion is no trial, and no sample.
    assert (summary["samples"], summary["completed"], summary["pruned"], summary["failed"],
            summary["invalid_suggestions"]) == (6, 2, 2, 2, 3)
    assert summary["span_seconds"] >= 0 and summary["wall_seconds"] >= 0
    report = build_report(out).read_text()
    assert "<th>failed</th><td>2</td>" in report
    assert "<th>invalid suggestions (not run, not counted)</th><td>3</td>" in report
    progress = SearchProgress(6, 4, study=load_study(out), stream=io.StringIO())
    line = progress.summary_line()
    assert "6/6 trials (2 complete, 2 pruned by ASHA, 2 failed; 3 invalid suggestions not run)" in line, line


FLAKY_SPACE = '''
import sys


def flaky(trial):
    """Fine while inspected up front; in the search, trial 1 is invalid, trial 2 raises, trial 3 exits."""
    trial.suggest_float("lr", 0.01, 0.1, log=True)  # RunConfig's defaults for the rest
    in_search = trial.study.study_name == "flaky"
    if in_search and trial.number == 1:
        trial.suggest_float("label_smoothing", 1.5, 2.0)  # RunConfig refuses it
    if in_search and trial.number == 2:
        raise RuntimeError("the space broke")
    if in_search and trial.number == 3:
        sys.exit(3)


def owns_seed(trial):
    trial.suggest_float("lr", 0.01, 0.1, log=True)
    trial.suggest_int("seed", 1, 3)
'''


def test_a_space_suggesting_what_the_search_owns_is_refused(tmp_path, capsys, image_folder):
    (tmp_path / "my_spaces.py").write_text(FLAKY_SPACE)
    argv = ["--space", f"{tmp_path / 'my_spaces.py'}:owns_seed", "--data", str(image_folder), "--val-size", "200",
            "--out", str(tmp_path / "o")]
    assert main(get_args_parser().parse_args(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "suggests seed, which the search sets" in err[0], err


@pytest.mark.slow
def test_a_space_that_misbehaves_mid_search_fails_those_trials_and_the_search_goes_on(tmp_path, image_folder):
    (tmp_path / "my_spaces.py").write_text(FLAKY_SPACE)
    out = tmp_path / "flaky"
    proc = run_search("--space", f"{tmp_path / 'my_spaces.py'}:flaky", "--data", str(image_folder),
                      "--val-size", "200", "--cpus-per-trial", "1", "--max-concurrent", "1", "--num-samples", "2",
                      "--max-epochs", "1", "--no-retrain", "--no-report", "--no-recipe", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = pd.read_csv(out / "trials.csv").set_index("number")
    assert list(table.index) == [0, 1, 2, 3, 4]
    assert list(table["state"]) == ["COMPLETE", "FAIL", "FAIL", "FAIL", "COMPLETE"]
    assert "label_smoothing must be in [0, 1)" in table.loc[1, "fail_reason"]
    assert "RuntimeError: the space broke" in table.loc[2, "fail_reason"]
    assert "SystemExit: 3" in table.loc[3, "fail_reason"]
    for n in (1, 2, 3):
        lines = [line for line in proc.stderr.splitlines() if f"error: trial {n} FAIL, invalid suggestion" in line]
        assert len(lines) == 1, proc.stderr[-3000:]
