"""Searches run as a user runs them (``python -m search.run`` in a subprocess), and their study read back."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ["--space", "smoke", "--val-size", "200", "--cpus-per-trial", "1", "--grace-period", "1",
          "--reduction-factor", "2", "--seed", "0"]


def run_search(*args, timeout=900, **kwargs):
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    return subprocess.run([sys.executable, "-m", "search.run", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def load_study(out):
    return optuna.load_study(study_name="smoke", storage=f"sqlite:///{out / 'study.db'}")


def trial_rows(db) -> dict[int, tuple[str, int]]:
    """Every trial in ``db`` so far: number -> (state, epochs reported); {} before the search made its tables.

    Read with sqlite3, not Optuna, so that polling a running search never creates or migrates its study.
    """
    if not Path(db).exists():
        return {}
    try:
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT t.number, t.state, COUNT(v.step) FROM trials t LEFT JOIN "
                               "trial_intermediate_values v ON v.trial_id = t.trial_id GROUP BY t.number").fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or locked by a writer
        return {}
    return {n: (state, epochs) for n, state, epochs in rows}


def started_and_finished(db):
    """Trial states in study.db so far ({} before the search made its tables)."""
    return {n: state for n, (state, _) in trial_rows(db).items()}


def signal_at(argv, marker: str, signum, group=True, env=None):
    """Run ``search.run argv``, send ``signum`` as soon as a line holding ``marker`` is printed, and wait.

    Returns (exit code, seconds from the signal to the exit, everything printed). The signal
    follows the line the process printed, never a sleep.
    """
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, env=env or os.environ,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            break
    else:
        proc.wait()
        pytest.fail(f"the command ended before {marker!r}: {''.join(lines)[-3000:]}")
    signalled = time.monotonic()
    os.killpg(proc.pid, signum) if group else os.kill(proc.pid, signum)
    rest, _ = proc.communicate(timeout=120)
    return proc.returncode, time.monotonic() - signalled, "".join(lines) + rest


def one_error_line(printed: str) -> str:
    said = [line for line in printed.splitlines() if line.startswith("error:")]
    assert len(said) == 1, printed[-3000:]
    assert "Traceback" not in printed and "SIGTERM received at time" not in printed, printed[-3000:]
    return said[0]
