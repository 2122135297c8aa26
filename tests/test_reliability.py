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
from tests._mounts import tmpfs
from tests.test_search import ROOT, SEARCH, load_study, run_search

# One trial at a time: the sampler then sees the same history in the same order in every run, so an
# interrupted and resumed search must end with the uninterrupted one's best config.
SIGNALLED = [*SEARCH, "--num-samples", "4", "--max-epochs", "3", "--max-concurrent", "1", "--no-retrain",
             "--no-report"]


def running_with_curve(db, before: dict[int, int] | None = None) -> dict[int, int]:
    """RUNNING trials with more reported epochs than ``before`` gave them: number -> epochs, read from the study."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT t.number, COUNT(v.step) FROM trials t JOIN trial_intermediate_values v "
                               "ON v.trial_id = t.trial_id WHERE t.state = 'RUNNING' GROUP BY t.number").fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or locked by a writer
        return {}
    return {n: epochs for n, epochs in rows if epochs > (before or {}).get(n, 0)}


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


def signal_mid_trial(argv, out, signum, env) -> dict[int, int]:
    """Start ``argv``, send ``signum`` once a trial reported an epoch more; return the RUNNING trials' epochs."""
    progress = running_with_curve(out / "study.db")  # a resume's RUNNING trials already have a curve
    # A terminal's Ctrl-C signals the whole process group: the driver and the local Ray it started.
    # SIGTERM goes to the driver alone, as `kill PID` and a scheduler's stop do: sent to the group it
    # also ends the local Ray's own daemons at once, a death --resume recovers from like a SIGKILL.
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not running_with_curve(out / "study.db", progress):
        assert proc.poll() is None, "the search ended before it could be signalled: " + proc.stderr.read()[-3000:]
        time.sleep(0.2)  # polling interval, not a synchronisation
    running = running_with_curve(out / "study.db")
    assert any(epochs > progress.get(n, 0) for n, epochs in running.items()), "no trial reported an epoch in time"
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)
    else:
        os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-3000:]
    # Ray's own processes, signalled too, may log after it as they go.
    assert "interrupted" in err and "continue it with the same command and --resume" in err, err[-3000:]

    before = {t.number: t for t in load_study(out).trials}
    for n, epochs in running.items():
        # Still RUNNING with its curve, for --resume to continue: not FAIL "orphaned".
        assert before[n].state == optuna.trial.TrialState.RUNNING, before[n].user_attrs
        assert len(before[n].intermediate_values) >= epochs
    return {n: len(before[n].intermediate_values) for n in running}


@pytest.mark.slow
def test_a_signalled_search_loses_nothing_and_resumes_to_the_same_best(uninterrupted, image_folder, tmp_path):
    # Ctrl-C on the first run, then SIGTERM on its resume: one search, so that CI runs it once.
    out = tmp_path / "smoke"
    argv = [*SIGNALLED, "--data", str(image_folder), "--out", str(out)]
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    interrupted = signal_mid_trial(argv, out, signal.SIGINT, env)
    curves = {t.number: dict(t.intermediate_values) for t in load_study(out).trials}
    terminated = signal_mid_trial([*argv, "--resume"], out, signal.SIGTERM, env)
    between = {t.number: t for t in load_study(out).trials}
    for n in interrupted:  # the resume continued the trial that Ctrl-C stopped, from its curve
        assert curves[n].items() <= between[n].intermediate_values.items()
    assert any(terminated[n] > interrupted.get(n, 0) for n in terminated)

    resumed = run_search(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = {t.number: t for t in load_study(out).trials}
    assert len(after) == 4 and optuna.trial.TrialState.RUNNING not in {t.state for t in after.values()}
    for n in terminated:
        assert after[n].state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        assert between[n].intermediate_values.items() <= after[n].intermediate_values.items()
        assert len(after[n].intermediate_values) > len(between[n].intermediate_values)
    reference = {t.number: t for t in load_study(uninterrupted).trials}
    assert {n: (t.state, t.params, t.intermediate_values) for n, t in after.items()} == \
        {n: (t.state, t.params, t.intermediate_values) for n, t in reference.items()}
    assert best_config(out) == best_config(uninterrupted)


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


@pytest.fixture
def damaged_copy(uninterrupted, tmp_path):
    """A copy of a finished search's folder, to damage, made to look interrupted (``finished`` None, as a
    search killed mid-way leaves it): ``--resume`` refuses a finished search before it reads any state."""
    import shutil

    from search.config import SearchConfig

    out = tmp_path / "copy"
    shutil.copytree(uninterrupted, out)
    summary = json.loads((out / "search.json").read_text())
    (out / "search.json").write_text(json.dumps({**summary, "finished": None}))
    return SearchConfig.from_run(out), out


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_lost_asha_state_is_rebuilt_from_the_study(damage, damaged_copy, capsys):
    from search.driver import check_resume

    config, out = damaged_copy
    saved = json.loads((out / "asha_state.json").read_text())
    assert any(rung["recorded"] for rung in saved["brackets"][0])
    if damage == "deleted":
        (out / "asha_state.json").unlink()
    else:
        (out / "asha_state.json").write_text(json.dumps(saved)[:40])
    check_resume(config, True, out, str(out / "tune"))
    rebuilt = json.loads((out / "asha_state.json").read_text())
    assert rebuilt["brackets"] == saved["brackets"] and rebuilt["num_stopped"] == saved["num_stopped"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rebuilt from the study" in err[0] and ("missing" if damage == "deleted" else "damaged") in err[0]


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
            check_resume(config, True, out, str(out / "tune"))
    finally:
        subprocess.run(["umount", db], check=True)


def test_trials_csv_search_json_and_the_report_count_the_same_trials(tmp_path):
    import pandas as pd

    from search.report import _counts
    from tests._tiny_run import make_run, tiny_image_folder

    data = tiny_image_folder(tmp_path / "data")
    out = make_run(tmp_path / "run", data, n_complete=2, n_pruned=2, n_failed=1, orphans=1)
    table = pd.read_csv(out / "trials.csv")
    summary = json.loads((out / "search.json").read_text())
    assert len(table) == len(load_study(out).trials) == 6
    assert (table["fail_reason"] == "orphaned").sum() == 1
    counts = table["state"].value_counts().to_dict()
    assert (summary["completed"], summary["pruned"], summary["failed"]) == (2, 2, 2) == \
        (counts["COMPLETE"], counts["PRUNED"], counts["FAIL"])
    # The report's "failed" row counts the study's trials (search/report.py _counts).
    assert _counts(load_study(out).get_trials())["FAIL"] == summary["failed"]
    assert summary["span_seconds"] >= 0 and summary["wall_seconds"] >= 0


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


def owns_epochs(trial):
    trial.suggest_float("lr", 0.01, 0.1, log=True)
    trial.suggest_int("epochs", 1, 3)
'''


def test_a_space_suggesting_what_the_search_owns_is_refused(tmp_path, capsys, image_folder):
    (tmp_path / "my_spaces.py").write_text(FLAKY_SPACE)
    argv = ["--space", f"{tmp_path / 'my_spaces.py'}:owns_epochs", "--data", str(image_folder), "--val-size", "200",
            "--out", str(tmp_path / "o")]
    assert main(get_args_parser().parse_args(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "suggests epochs, which the search sets" in err[0], err


@pytest.mark.slow
def test_a_space_that_misbehaves_mid_search_fails_those_trials_and_the_search_goes_on(tmp_path, image_folder):
    import pandas as pd

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
