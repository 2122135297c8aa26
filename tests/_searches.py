"""Searches run as a user runs them (``python -m search.run`` in a subprocess), and their study read back."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna

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
