"""The search as one object: SearchConfig, its flags, search.json, and the Python API run_search."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import optuna
import pytest

from model.flags import flag_name
from search import SearchConfig, SearchResult, run_search
from search.cli import config_from_args, get_args_parser
from search.errors import SearchError
from search.report import build_report
from search.retrain import retrain_run
from tests._searches import ROOT, started_and_finished


def test_every_setting_is_one_flag_with_the_fields_default_said_once():
    parser = get_args_parser()
    help_text = parser.format_help()
    blocks = {b.split()[0]: b for b in re.split(r"\n  (?=--)", help_text.split("options:")[1])}
    assert set(blocks) == {"-h,", "--resume"} | {flag_name(f) for f in dataclasses.fields(SearchConfig)}
    assert all(block.count("(default:") <= 1 for block in blocks.values())
    assert "(default: 32)" in blocks["--num-samples"] and "(default: --seed)" in blocks["--split-seed"]
    # The flags' defaults are the fields'.
    assert config_from_args(parser.parse_args(["--space", "smoke"])) == SearchConfig(space="smoke")
    flipped = config_from_args(parser.parse_args(["--space", "smoke", "--no-amp", "--compile", "--no-retrain"]))
    assert (flipped.amp, flipped.compile, flipped.retrain) == (False, True, False)


def test_search_config_checks_its_values_and_round_trips_through_json(tmp_path):
    with pytest.raises(SearchError, match="--grace-period 5 is larger than --max-epochs 2"):
        SearchConfig(space="smoke", grace_period=5, max_epochs=2)
    with pytest.raises(SearchError, match="unknown sampler 'grid'; valid: tpe, random"):
        SearchConfig(space="smoke", sampler="grid")
    with pytest.raises(SearchError, match="like 90m"):
        SearchConfig(space="smoke", time_budget="soon")
    with pytest.raises(SearchError, match=r"--tpe-independent must be in \[0, 1\], got 1.5"):
        SearchConfig(space="smoke", tpe_independent=1.5)
    config = SearchConfig(space="smoke", choices={"batch_size": [32]}, amp=False, time_budget="1h30m")
    assert config.choices == {"batch_size": ["32"]} and config.time_budget_s == 5400
    (tmp_path / "search.json").write_text(json.dumps({"config": config.to_dict()}))
    assert SearchConfig.from_run(tmp_path) == config
    with pytest.raises(SearchError, match="unknown SearchConfig fields"):
        SearchConfig.from_dict({**config.to_dict(), "learning_rate": 0.1})


def test_a_search_json_from_before_search_config_still_loads(tmp_path):
    args = {"space": "smoke", "data": "images", "num_samples": 8, "no_amp": True, "no_recipe": False,
            "no_retrain": True, "no_report": False, "choices": ["arch=resnet20"], "resume": True, "split_seed": None}
    (tmp_path / "search.json").write_text(json.dumps({"args": args}))
    assert SearchConfig.from_run(tmp_path) == SearchConfig(space="smoke", data="images", num_samples=8, amp=False,
                                                           retrain=False, choices={"arch": ["resnet20"]})


@pytest.mark.slow
def test_run_search_then_resume_retrain_and_report_from_the_saved_config(image_folder, tmp_path):
    out = tmp_path / "api"
    config = SearchConfig(space="smoke", data=str(image_folder), val_size=200, num_samples=6, max_epochs=3,
                          grace_period=1, reduction_factor=2, cpus_per_trial=1, split_seed=1, out=str(out),
                          retrain=False, report=False)
    # run_search in a process of its own, killed (SIGKILL) once some trials finished and one runs.
    code = f"from search import SearchConfig, run_search; run_search(SearchConfig.from_dict({config.to_dict()!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # polling the study, not sleeping blindly
        states = started_and_finished(out / "study.db")
        if sum(s in ("COMPLETE", "PRUNED") for s in states.values()) >= 2 and "RUNNING" in states.values():
            break
        assert proc.poll() is None, "the search ended before it could be interrupted"
        time.sleep(0.5)
    else:
        pytest.fail("the search did not get far enough to be interrupted")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    # Everything below reads the run folder alone, and search.json is no part of it: the study is the search.
    (out / "search.json").unlink(missing_ok=True)
    saved = SearchConfig.from_run(out)
    assert saved == dataclasses.replace(config, out=str(out.resolve()))
    result = run_search(saved, resume=True)
    assert isinstance(result, SearchResult) and not result.interrupted and result.out == out.resolve()
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{out / 'study.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # The study is the search: the resume finished the trials SIGKILL left RUNNING (or asked and never
    # started) and asked the rest, so it holds exactly the 6 trials of --num-samples, none lost or doubled.
    assert len(result.trials) == 6 and sorted(result.trials["number"]) == list(range(6))
    assert set(result.trials["state"]) <= {"COMPLETE", "PRUNED", "FAIL"}
    assert result.best_val_acc == max(t.value for t in complete) and result.test_acc is None
    assert result.best_config["epochs"] == 3 and result.best_config["lr"] == study.trials[result.best_trial].params["lr"]

    searched = json.loads((out / "search.json").read_text())  # written again, from the study
    assert searched["completed"] == len(complete) and searched["interrupted"] is False
    (out / "search.json").unlink()  # a finished search without its summary: the retrain, report, warm start
    assert SearchResult.from_run(out).config == saved and not SearchResult.from_run(out).interrupted
    metrics = retrain_run(out)
    assert metrics["data"] == searched["data"] and searched["data"]["seed"] == 1
    assert metrics["epochs"] == 3  # the saved --max-epochs
    assert f"{metrics['test_acc']:.4f}" in build_report(out).read_text()
    assert SearchResult.from_run(out).test_acc == metrics["test_acc"]
    with pytest.raises(SearchError, match="is complete"):  # a --resume of it is refused, as with search.json
        run_search(saved, resume=True)
    warm = run_search(dataclasses.replace(saved, out=str(tmp_path / "warm"), warm_start=str(out), num_samples=2,
                                          max_epochs=1))
    # A search at another --max-epochs: the earlier best config runs first after the recipe (docs/warm-start.md).
    warmed = json.loads((warm.out / "search.json").read_text())
    assert warmed["warm_start"]["finished"] == len(
        [t for t in study.trials if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL])
    assert warmed["warm_start"]["enqueued"] == 1 and warmed["warm_start_trials"] == 0
    recipe, first = optuna.load_study(study_name=saved.study_name, storage=f"sqlite:///{warm.out / 'study.db'}").trials
    assert first.params == max(complete, key=lambda t: t.value).params
