"""A user space that searches ``epochs``: each trial plans its own, completes at its end, and the retrain keeps the best's."""

import json

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from search.cli import get_args_parser
from search.run import main
from tests._searches import run_search

EPOCHS_SPACE = '''
def searches_epochs(trial):
    trial.suggest_int("epochs", 1, 3)
    trial.suggest_float("lr", 0.01, 0.1, log=True)


def too_long(trial):
    trial.suggest_categorical("epochs", [2, 8])
'''


def test_a_space_searching_more_epochs_than_max_epochs_is_refused_in_one_line(tmp_path, capsys, image_folder):
    (tmp_path / "my_spaces.py").write_text(EPOCHS_SPACE)
    argv = ["--space", f"{tmp_path / 'my_spaces.py'}:too_long", "--data", str(image_folder), "--val-size", "200",
            "--max-epochs", "4", "--out", str(tmp_path / "o")]
    assert main(get_args_parser().parse_args(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "searches epochs up to 8, more than --max-epochs 4" in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_trials_that_plan_their_own_epochs_complete_at_their_end_and_the_retrain_keeps_the_best_ones(
        tmp_path, image_folder):
    (tmp_path / "my_spaces.py").write_text(EPOCHS_SPACE)
    out = tmp_path / "run"
    proc = run_search("--space", f"{tmp_path / 'my_spaces.py'}:searches_epochs", "--data", str(image_folder),
                      "--val-size", "200", "--cpus-per-trial", "1", "--max-concurrent", "2", "--num-samples", "6",
                      "--max-epochs", "4", "--no-report", "--no-recipe", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    storage = f"sqlite:///{out / 'study.db'}"
    [name] = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).trials
    assert len(trials) == 6
    planned = [t.params["epochs"] for t in trials]
    assert len(set(planned)) > 1, planned  # the space's epochs, not --max-epochs, set each trial's length
    for t in trials:
        last = max(t.intermediate_values)
        # COMPLETE exactly when a trial ran its own planned epochs (ASHA may stop one before them).
        assert (t.state == TrialState.COMPLETE) == (last == t.params["epochs"]), (t.number, t.state, last, planned)
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED) and last <= t.params["epochs"]
    assert any(t.state == TrialState.COMPLETE and t.params["epochs"] < 3 for t in trials), planned
    # No trial plans --max-epochs 4 (the space's longest is 3): the retrain keeps the best trial's own epochs.
    table = pd.read_csv(out / "trials.csv").set_index("number")
    assert list(table["epochs"]) == [max(t.intermediate_values) for t in trials]
    best = json.loads((out / "best" / "config.json").read_text())
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    assert best["config"]["epochs"] == best["params"]["epochs"] == metrics["epochs"] < 4
