"""End-to-end searches: real Ray (local, 2 CPUs), the smoke space, a small generated data set."""

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
import torch

import spaces
from model import build_model
from model.config import RunConfig
from model.train import evaluate_test
from search.cli import get_args_parser
from search.config import parse_choices
from search.errors import SearchError
from search.retrain import load_best_model, load_search_data
from search.run import main
from spaces.asks import inspect_space, sample_space
from spaces.narrow import narrow_space
from tests._figures import _array, _only_figure
from tests._searches import ROOT, SEARCH, load_study, run_search, started_and_finished

@pytest.fixture(scope="module")
def finished_search(image_folder, tmp_path_factory):
    """A finished search, retrained and reported; its split and subset are seeded apart from its trials."""
    out = tmp_path_factory.mktemp("search") / "smoke"
    proc = run_search(*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "8",
                      "--max-epochs", "3", "--split-seed", "3", "--train-subset", "600")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_search_records_complete_and_pruned_trials(finished_search):
    out, proc = finished_search
    table = pd.read_csv(out / "trials.csv")
    assert len(table) == 8
    assert {"number", "state", "params_lr", "params_batch_size", "epochs", "best_val_acc", "last_val_acc",
            "wall_seconds", "node"} <= set(table.columns)
    study = load_study(out)
    states = {t.state for t in study.trials}
    assert optuna.trial.TrialState.RUNNING not in states
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert complete and pruned
    for t in complete:
        assert sorted(t.intermediate_values) == [1, 2, 3] and t.value == t.intermediate_values[3]
    for t in pruned:
        assert t.intermediate_values and max(t.intermediate_values) < 3
    # The table agrees with the study.
    for t in study.trials:
        row = table[table["number"] == t.number].iloc[0]
        assert row["state"] == t.state.name and row["epochs"] == max(t.intermediate_values, default=0)
    best = json.loads((out / "best" / "config.json").read_text())
    best_trial = study.trials[best["trial"]]
    assert best_trial.state == optuna.trial.TrialState.COMPLETE
    assert best["val_acc"] == max(t.value for t in complete) and best["config"]["epochs"] == 3
    # Learnable data: chance is 0.1. The best of these 8 three-epoch trials reached 0.50 to 0.6 in runs here
    # (two trials at once make the TPE half of the search depend on timing).
    assert best["val_acc"] >= 0.45
    summary = json.loads((out / "search.json").read_text())
    assert summary["completed"] == len(complete) and summary["pruned"] == len(pruned)
    assert "completed" in proc.stdout and "pruned" in proc.stdout and "best val_acc" in proc.stdout


@pytest.mark.slow
def test_retrained_model_reproduces_its_test_accuracy(finished_search):
    out, _ = finished_search
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    cfg = RunConfig.from_dict({**metrics["config"], "device": "cpu"})
    model = build_model(cfg.arch)
    model.load_state_dict(torch.load(out / "best" / "model.pt", weights_only=True))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  load_best_model(out).state_dict().values()))
    data = load_search_data(out)
    assert evaluate_test(model, cfg, data)["test_acc"] == metrics["test_acc"]
    assert metrics["test_acc"] > 0.5 and metrics["epochs"] == 3 and metrics["train_images"] == 600 + 200
    assert len(json.loads((out / "best" / "history.json").read_text())) == 3


@pytest.mark.slow
def test_the_retrain_trains_on_the_data_the_search_searched_on(finished_search, tmp_path):
    out, _ = finished_search
    searched = json.loads((out / "search.json").read_text())["data"]
    assert (searched["seed"], searched["train_subset"]) == (3, 600)  # --split-seed, not --seed 0
    # The retrain that followed the search, and `python -m search.retrain` later, from the files alone.
    later = tmp_path / "later"
    (later / "best").mkdir(parents=True)
    shutil.copy(out / "search.json", later / "search.json")
    shutil.copy(out / "best" / "config.json", later / "best" / "config.json")
    proc = subprocess.run([sys.executable, "-m", "search.retrain", str(later), "--epochs", "1", "--device", "cpu"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for run in (out, later):
        retrained = json.loads((run / "best" / "metrics.json").read_text())["data"]
        assert retrained == searched and retrained["fingerprint"] == searched["fingerprint"]


@pytest.mark.slow
def test_search_writes_plots_and_report(finished_search):
    out, _ = finished_search
    study = load_study(out)
    n_complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    history = _only_figure(out / "plots" / "optimization_history.html")
    (markers,) = [d for d in history["data"] if d["name"] == "val_acc"]
    assert len(_array(markers["x"])) == n_complete
    curves = {d["name"]: _array(d["y"]) for d in _only_figure(out / "plots" / "intermediate_values.html")["data"]}
    assert sorted(curves) == sorted(f"Trial{t.number}" for t in study.trials if t.intermediate_values)
    report = (out / "report.html").read_text()
    metrics = json.loads((out / "best" / "metrics.json").read_text())
    assert f"{metrics['test_acc']:.4f}" in report


@pytest.mark.slow
def test_existing_search_is_not_overwritten(finished_search, image_folder):
    out, _ = finished_search
    before = (out / "study.db").read_bytes()
    proc = run_search(*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "2",
                      "--max-epochs", "1")
    assert proc.returncode == 2 and "--resume" in proc.stderr
    assert (out / "study.db").read_bytes() == before


def test_bad_input_is_one_line_before_anything_starts(tmp_path, capsys, image_folder):
    cases = [
        (["--space", "smoke", "--data", str(tmp_path / "missing")], "missing"),
        (["--space", "finetune", "--data", str(image_folder)], "--weights"),
        (["--space", "finetune", "--data", str(image_folder), "--weights", str(tmp_path / "none.pth")], "none.pth"),
        (["--space", "smoke", "--data", str(image_folder), "--grace-period", "5", "--max-epochs", "2"], "grace"),
        (["--space", "smoke", "--data", str(image_folder), "--resume"], "holds no search to resume"),
        (["--space", "nope", "--data", str(image_folder)], "valid: finetune, scratch, smoke"),
        (["--space", "smoke", "--data", str(image_folder), "--time-budget", "soon"], "like 90m"),
        (["--space", "smoke", "--data", str(image_folder), "--address", "ray://head:10001"], "ray job submit"),
    ]
    for argv, needle in cases:
        assert main(get_args_parser().parse_args([*argv, "--out", str(tmp_path / "o")])) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and needle in err[0], err


@pytest.mark.slow
def test_resources_the_machine_lacks_are_a_clear_error(image_folder, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_search(*SEARCH, "--data", str(image_folder), "--out", str(tmp_path / "g"), "--gpus-per-trial", "1",
                      timeout=300)
    assert proc.returncode == 2
    assert "no GPU" in proc.stderr.strip().splitlines()[-1]
    proc = run_search("--space", "smoke", "--val-size", "200", "--data", str(image_folder),
                      "--out", str(tmp_path / "c"), "--cpus-per-trial", "64", timeout=300)
    assert proc.returncode == 2
    assert "more than this machine's" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_resume_after_sigkill(image_folder, tmp_path):
    out = tmp_path / "smoke"
    argv = [*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "8", "--max-epochs", "4",
            "--no-retrain", "--no-report"]
    proc = subprocess.Popen([sys.executable, "-m", "search.run", *argv], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    # Wait (polling the study, not sleeping blindly) until some trials finished and one is running.
    while time.monotonic() < deadline:
        states = started_and_finished(out / "study.db")
        done = [n for n, s in states.items() if s in ("COMPLETE", "PRUNED")]
        if len(done) >= 3 and "RUNNING" in states.values():
            break
        assert proc.poll() is None, "the search ended before it could be interrupted"
        time.sleep(0.5)
    else:
        pytest.fail("the search did not get far enough to be interrupted")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    proc.wait()
    before = {t.number: t for t in load_study(out).trials}
    finished_before = {n: t for n, t in before.items() if t.state.is_finished()}

    resumed = run_search(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    study = load_study(out)
    after = {t.number: t for t in study.trials}
    table = pd.read_csv(out / "trials.csv")
    # Exactly --num-samples trials, every one finished: a trial asked as the driver died is simply run.
    assert len(table) == len(after) == 8 and set(table["state"]) <= {"COMPLETE", "PRUNED"}
    # Finished trials are kept as they were.
    for n, t in finished_before.items():
        assert after[n].state == t.state and after[n].intermediate_values == t.intermediate_values
    # Trials that were running resumed as themselves (same trial of the study, curve continued), not anew.
    running = [n for n, t in before.items() if t.state == optuna.trial.TrialState.RUNNING]
    assert running
    for n in running:
        assert after[n].state.is_finished() and after[n].params == before[n].params
        assert before[n].intermediate_values.items() <= after[n].intermediate_values.items()


def narrowed(name, choices, archs_allowed=None):
    fn = spaces.get_space(name)
    return narrow_space(fn, inspect_space(fn, name), parse_choices(choices), archs_allowed)[0]


def test_choices_narrow_a_space_and_bad_ones_are_refused():
    space = narrowed("scratch", ["arch=resnet20,resnet32", "batch_size=128"])
    trials = sample_space(space, 12)
    assert {t.params["arch"] for t in trials} <= {"resnet20", "resnet32"}
    assert {t.params["batch_size"] for t in trials} == {128}  # typed like the space's own choices
    with pytest.raises(ValueError, match="not among its choices"):
        narrowed("scratch", ["arch=resnet21"])
    with pytest.raises(ValueError, match="not a categorical parameter"):
        narrowed("scratch", ["lr=0.1"])
    with pytest.raises(SearchError, match="NAME=VALUE"):
        parse_choices(["arch"])
    # The fine-tune space keeps only the architectures that have weights.
    space = narrowed("finetune", [], ["resnet18"])
    assert {t.params["arch"] for t in sample_space(space, 6)} == {"resnet18"}
    assert {t.params["arch"] for t in sample_space(narrowed("smoke", []), 2)} == {"resnet20"}
