"""The search's quality features, each in a real (small) search: the recipe goes first, a warm
start informs the sampler without counting, a time budget ends the search consistently."""

import json
import re

import optuna
import pandas as pd
import pytest

from search import report
from search.deadline import retrain_share
from search.sampler import make_sampler, n_startup_trials
from spaces.definitions import SHORT_RECIPES
from tests._searches import SEARCH, load_study, run_search

TrialState = optuna.trial.TrialState


def test_tpe_startup_scales_with_the_budget():
    assert n_startup_trials(10) == 4  # not Optuna's 10, which would make it random search
    assert n_startup_trials(32) == 8
    assert n_startup_trials(100) == 25
    assert n_startup_trials(100, 3) == 3


def test_random_fraction_draws_that_share_of_tpes_trials_at_random_and_the_rest_by_tpe():
    # A candidate of issue 33 (benchmarks/README.md), not the default: BOHB's random fraction.
    def xs(kind, **kw):
        study = optuna.create_study(sampler=make_sampler(kind, 7, 4, **kw))
        study.optimize(lambda t: -(t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2, n_trials=12)
        return [t.params["x"] for t in study.trials]

    random, tpe = xs("random"), xs("tpe")
    assert tpe[:4] == random[:4] and tpe[4:] != random[4:]  # the same start-up draws, then TPE's own
    assert xs("tpe", random_fraction=1.0) == random  # every trial at random, each by its own seed
    half = xs("tpe", random_fraction=0.5)
    assert half[:4] == random[:4] and 0 < sum(a == b for a, b in zip(half[4:], random[4:])) < 8


def test_tpe_independent_models_that_share_of_trials_one_by_one_each_chosen_by_the_trials_seed():
    def objective(t):
        return (t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2 + (t.suggest_float("y", 0.0, 1.0) - 0.6) ** 2

    def run(share):
        study = optuna.create_study(sampler=make_sampler("tpe", 7, 4, independent_share=share))
        study.optimize(objective, n_trials=24)
        return study, [(t.params["x"], t.params["y"]) for t in study.trials]

    def joint(study, share):
        # The model each trial drew with, asked of a sampler made afresh (a resume): multivariate TPE models x and y
        # together (its relative search space), the one-by-one model neither.
        fresh = make_sampler("tpe", 7, 4, independent_share=share)
        return [bool(fresh.infer_relative_search_space(study, t)) for t in study.trials]

    (all_joint, points0), (none_joint, points1), (half, points_half) = run(0.0), run(1.0), run(0.5)
    assert joint(all_joint, 0.0) == [True] * 24 and joint(none_joint, 1.0) == [False] * 24
    mixed = joint(half, 0.5)
    assert 4 <= sum(mixed[4:]) <= 16  # about half of TPE's 20 trials, chosen per trial
    assert points0[:4] == points1[:4] == points_half[:4]  # the same random start
    # Up to the first trial whose model differs, the mixed search is the all-joint one, then it is not.
    first = mixed.index(False, 4)
    assert points_half[:first] == points0[:first] and points_half[first] != points0[first]


@pytest.mark.slow
def test_a_scratch_search_starts_with_the_budgets_recipes(image_folder, tmp_path):
    out = tmp_path / "scratch"
    proc = run_search("--space", "scratch", "--choices", "arch=resnet20", "--data", str(image_folder), "--out", str(out),
                      "--val-size", "200", "--cpus-per-trial", "1", "--num-samples", "2", "--max-epochs", "1",
                      "--grace-period", "1", "--no-retrain", "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = optuna.load_study(study_name="scratch", storage=f"sqlite:///{out / 'study.db'}")
    first, second = sorted(study.trials, key=lambda t: t.number)
    # A 1-epoch run on 800 images: the budget's one-cycle recipe first, at the only batch size it keeps.
    # Its batch 128 halved to 64, with half the lr, for the steps (spaces/budget.py RECIPE_MIN_STEPS).
    halved = [{**r, "batch_size": 64, "lr": r["lr"] / 2} for r in SHORT_RECIPES]
    assert first.params == halved[0]
    assert second.params == halved[1]
    assert study.metric_names == ["val_acc"]
    plan = json.loads((out / "search.json").read_text())["budget_plan"]
    assert plan["choices"]["batch_size"] == [64] and plan["recipes"] == halved


@pytest.mark.slow
def test_warm_start_adds_earlier_trials_marked_and_uncounted(image_folder, tmp_path):
    common = [*SEARCH, "--data", str(image_folder), "--max-epochs", "2", "--no-retrain", "--no-report"]
    first = run_search(*common, "--out", str(tmp_path / "a"), "--num-samples", "3")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    earlier = {t.number: t for t in load_study(tmp_path / "a").trials}

    second = run_search(*common, "--out", str(tmp_path / "b"), "--num-samples", "2", "--warm-start", str(tmp_path / "a"))
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "--warm-start: 3 of 3 finished trials" in second.stderr
    study = load_study(tmp_path / "b")
    warm = [t for t in study.trials if t.user_attrs.get("origin") == "warm_start"]
    new = [t for t in study.trials if t.user_attrs.get("origin") != "warm_start"]
    assert len(warm) == 3 and len(new) == 2  # --num-samples counts only the new ones
    for t in warm:
        source = earlier[t.user_attrs["source_number"]]
        assert (t.state, t.params, t.intermediate_values) == (source.state, source.params, source.intermediate_values)
    table = pd.read_csv(tmp_path / "b" / "trials.csv")
    assert sorted(table["origin"]) == ["search", "search", "warm_start", "warm_start", "warm_start"]
    summary = json.loads((tmp_path / "b" / "search.json").read_text())
    assert summary["warm_start_trials"] == 3 and summary["completed"] + summary["pruned"] == 2
    best = json.loads((tmp_path / "b" / "best" / "config.json").read_text())
    assert best["trial"] in {t.number for t in new}
    # The report's history draws them as a series of their own; the other plots leave them out.
    figures = report.make_figures(study)
    series = {d["name"] for d in figures["optimization_history"].to_dict()["data"] if d.get("mode") == "markers"}
    assert any("warm start" in name for name in series), series
    if not isinstance(figures["intermediate_values"], str):
        assert len(figures["intermediate_values"].to_dict()["data"]) <= len(new)
    assert set(report.leaderboard(study)["origin"]) == {"search", "warm_start"}


@pytest.mark.slow
def test_time_budget_ends_the_search_consistently(image_folder, tmp_path):
    out = tmp_path / "budget"
    proc = run_search(*SEARCH, "--data", str(image_folder), "--out", str(out), "--num-samples", "200",
                      "--max-epochs", "2", "--grace-period", "2", "--time-budget", "60s", "--no-report")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "--time-budget 60s reached" in proc.stderr
    summary = json.loads((out / "search.json").read_text())
    study = load_study(out)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and len(states) < 200
    assert summary["time_budget_hit"] and summary["completed"] >= 1
    longest_epoch = max(v for t in study.trials for v in [t.user_attrs.get("wall_seconds") or 0]) / 2
    assert summary["wall_seconds"] <= 60 + longest_epoch + 15  # the budget, one epoch, Tune's clean-up
    cut = [t for t in study.trials if t.user_attrs.get("stopped_by") == "time_budget"]
    assert all(t.state == TrialState.PRUNED for t in cut)
    best = json.loads((out / "best" / "config.json").read_text())
    assert study.trials[best["trial"]].state == TrialState.COMPLETE
    # The retrain followed, with the epochs that the share kept for it afforded, as announced: smoke's
    # recipe and 50 random trials come first, and two at a time the search's half affords fewer.
    announced = re.search(r"note: the retrain of (\d+) epochs should take about .*"
                          r"(\d\d)% of the budget kept for it: the search's half afforded", proc.stderr)
    assert announced, proc.stderr[-3000:]
    split = summary["time_split"]
    assert split["trials_needed"] == 1 + 50 and split["slots"] == 2 and not split["share_fixed"]
    assert 0.5 < split["retrain_share"] == pytest.approx(retrain_share(60, split["trial_seconds"], 2, 51))
    assert int(announced[2]) == round(100 * split["retrain_share"])
    assert json.loads((out / "best" / "metrics.json").read_text())["epochs"] == int(announced[1]) >= 2
