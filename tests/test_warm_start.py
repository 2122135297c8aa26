"""The next run learns from the last (issue 34): ``--warm-start`` across what a cheaper search changes (the earlier
trials mapped into the new space, their results read at their fidelity, a warm start run as a user runs one), and
the retrain re-planned for its own length."""

import json

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.search_space import IntersectionSearchSpace

import spaces
from search.config import SearchConfig, trial_config
from search.driver import plan_space
from search.errors import SearchError
from search.retrain import retrain_run
from search.study import create_study, is_invalid_suggestion, is_warm_start, open_storage
from search.warm_start import DEFAULT_FIDELITY, WarmStart, apply_fidelity, load_warm_trials, map_trials
from spaces import budget
from spaces.asks import inspect_space, sample_space
from spaces.budget import Budget, plan_retrain
from spaces.definitions import SHORT_RECIPES
from tests._searches import run_search
from tests._tiny_run import make_run, tiny_image_folder

TrialState = optuna.trial.TrialState


def earlier_trial(params: dict, distributions: dict, *, value=0.5, state=TrialState.COMPLETE, epochs=2):
    curve = {e: value * e / epochs for e in range(1, epochs + 1)}
    return optuna.trial.create_trial(state=state, value=value if state == TrialState.COMPLETE else None,
                                     params=params, distributions=distributions, intermediate_values=curve)


def scratch_as_planned(max_epochs: int, train_images: int = 800):
    """The scratch space with --choices arch=resnet20, narrowed by the budget plan as a search would."""
    config = SearchConfig(space="scratch", choices={"arch": ["resnet20"]}, max_epochs=max_epochs)
    fn = spaces.get_space("scratch")
    return plan_space(config, fn, inspect_space(fn), None, train_images)[0]


def tpe_study(trials, db) -> optuna.Study:
    """A study in SQLite, as the search's: its storage refuses a categorical asked with other choices."""
    study = optuna.create_study(storage=f"sqlite:///{db}", direction="maximize", sampler=optuna.samplers.TPESampler(
        seed=0, multivariate=True, n_startup_trials=0))
    study.add_trials(trials)
    return study


def test_trials_of_a_shorter_plan_map_into_the_longer_plans_space_and_tpe_asks_it(tmp_path):
    # Issue 34: 1 epoch of 800 images keeps batch 64 only; 24 epochs keep 64 and 128.
    short, long = scratch_as_planned(1), scratch_as_planned(24)
    earlier = sample_space(short, 6, seed=1)
    assert {t.distributions["batch_size"].choices for t in earlier} == {(64,)}
    with pytest.raises(ValueError, match="dynamic value space"):  # the earlier trials as they were: today's failure
        tpe_study(earlier, tmp_path / "as-they-were.db").ask().suggest_categorical("batch_size", [64, 128])

    mapping = map_trials(earlier, long)
    assert len(mapping.trials) == 6 and not mapping.dropped and not mapping.left_out
    assert [t.params for t in mapping.trials] == [t.params for t in earlier]
    assert {t.distributions["batch_size"].choices for t in mapping.trials} == {(64, 128)}
    study = tpe_study(mapping.trials, tmp_path / "mapped.db")
    for _ in range(3):
        trial = study.ask()
        long(trial)
        study.tell(trial, 0.5)
    # Every parameter the new space always asks is in the space multivariate TPE models.
    assert set(IntersectionSearchSpace(include_pruned=True).calculate(study)) == inspect_space(long).always


def wide(trial):
    trial.suggest_categorical("batch_size", [64, 128])
    trial.suggest_float("lr", 0.01, 0.5, log=True)


EARLIER = {"batch_size": CategoricalDistribution([64, 128, 256]), "lr": FloatDistribution(1e-3, 1.0, log=True)}


def test_a_value_an_always_asked_parameter_cannot_hold_drops_the_trial(tmp_path):
    trials = [earlier_trial({"batch_size": 256, "lr": 0.1}, EARLIER),  # a choice the new space lacks
              earlier_trial({"batch_size": 64, "lr": 0.002}, EARLIER),  # out of the new range
              earlier_trial({"batch_size": 128, "lr": 0.05}, EARLIER)]
    mapping = map_trials(trials, wide)
    assert [t.params for t in mapping.trials] == [{"batch_size": 128, "lr": 0.05}]
    assert mapping.dropped == {"batch_size=256": 1, "lr=0.002": 1}
    # The kept trial holds every parameter: TPE's multivariate model keeps both.
    study = tpe_study(mapping.trials, tmp_path / "study.db")
    assert set(IntersectionSearchSpace(include_pruned=True).calculate(study)) == {"batch_size", "lr"}


def conditional(trial):
    frozen = trial.suggest_int("frozen_stages", 0, 4)
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    if frozen < 4:
        trial.suggest_float("backbone_lr_mult", 0.1, 1.0, log=True)


def test_a_value_a_conditional_parameter_cannot_hold_drops_only_that_parameter():
    dists = {"frozen_stages": IntDistribution(0, 4), "lr": FloatDistribution(1e-4, 1e-1, log=True),
             "backbone_lr_mult": FloatDistribution(0.01, 1.0, log=True)}
    trials = [earlier_trial({"frozen_stages": 2, "lr": 0.01, "backbone_lr_mult": 0.02}, dists),
              earlier_trial({"frozen_stages": 1, "lr": 0.01, "backbone_lr_mult": 0.5}, dists)]
    mapping = map_trials(trials, conditional)
    assert [t.params for t in mapping.trials] == [{"frozen_stages": 2, "lr": 0.01},
                                                  {"frozen_stages": 1, "lr": 0.01, "backbone_lr_mult": 0.5}]
    assert mapping.left_out == {"backbone_lr_mult": 1} and not mapping.dropped


def test_a_parameter_the_new_space_no_longer_asks_is_left_out():
    dists = {**EARLIER, "augment": CategoricalDistribution(["none", "flip"])}
    mapping = map_trials([earlier_trial({"batch_size": 64, "lr": 0.1, "augment": "flip"}, dists)], wide)
    assert [t.params for t in mapping.trials] == [{"batch_size": 64, "lr": 0.1}]
    assert mapping.left_out == {"augment": 1}


def test_a_parameter_the_new_space_adds_is_filled_with_the_value_the_trial_ran_with():
    def smoothed(trial, low=0.0):
        wide(trial)
        trial.suggest_float("label_smoothing", low, 0.2)

    trials = [earlier_trial({"batch_size": 64, "lr": 0.1}, EARLIER)]
    mapping = map_trials(trials, smoothed, fills={"label_smoothing": 0.0})
    assert [t.params for t in mapping.trials] == [{"batch_size": 64, "lr": 0.1, "label_smoothing": 0.0}]
    assert mapping.filled == {"label_smoothing": 1}
    # A value it ran with that the new space cannot hold: no parameter of it to give TPE, so no trial.
    mapping = map_trials(trials, lambda t: smoothed(t, low=0.05), fills={"label_smoothing": 0.0})
    assert not mapping.trials and mapping.dropped == {"label_smoothing missing": 1}


def test_lower_fidelity_results_enter_as_partial_results():
    trials = [earlier_trial({"batch_size": 64, "lr": 0.1}, EARLIER, value=0.4),
              earlier_trial({"batch_size": 128, "lr": 0.1}, EARLIER, value=0.3, state=TrialState.PRUNED, epochs=1)]
    mapping = map_trials(trials, wide)

    def rule(name, same):
        return apply_fidelity(mapping, name, same_fidelity=same, k=4)

    lower, enqueued = rule("lower_rung", False)
    assert [t.state for t in lower] == [TrialState.PRUNED, TrialState.PRUNED] and not enqueued
    assert lower[0].value == 0.4 and lower[0].intermediate_values == trials[0].intermediate_values
    assert lower[0].user_attrs["source_state"] == "COMPLETE"
    assert [t.state for t in rule("lower_rung", True)[0]] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert [t.state for t in rule("as_is", False)[0]] == [TrialState.COMPLETE, TrialState.PRUNED]
    # top_k, the default: at the same fidelity the results enter as they are; at a lower one none does.
    assert DEFAULT_FIDELITY == "top_k"
    assert [t.state for t in rule("top_k", True)[0]] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert rule("top_k", False) == ([], [{"batch_size": 64, "lr": 0.1}])


def test_top_k_runs_the_k_best_complete_configs_first_their_run_length_left_to_the_sampler(tmp_path):
    dists = {"epochs": IntDistribution(1, 30), "lr": FloatDistribution(1e-3, 1.0, log=True)}

    def space(trial):
        trial.suggest_int("epochs", 1, 30)
        trial.suggest_float("lr", 1e-3, 1.0, log=True)

    values = [0.2, 0.7, 0.5, 0.9, 0.6]
    earlier = [earlier_trial({"epochs": 5 + i, "lr": 0.01 * (i + 1)}, dists, value=v) for i, v in enumerate(values)]
    earlier.append(earlier_trial({"epochs": 3, "lr": 0.5}, dists, value=0.95, state=TrialState.PRUNED, epochs=1))
    mapping = map_trials(earlier, space, always=frozenset(dists))  # a table's space, as the curve benchmark maps
    trials, enqueued = apply_fidelity(mapping, "top_k", same_fidelity=False, k=3)
    assert not trials  # no short result enters TPE's model
    assert enqueued == [{"lr": 0.04}, {"lr": 0.02}, {"lr": 0.05}]  # 0.9, 0.7, 0.6; the PRUNED one is no candidate

    # Into a study after two recipes, as search.driver adds them: the next asks hand them out, epochs drawn anew.
    study = create_study(open_storage(tmp_path), "scratch", optuna.samplers.RandomSampler(seed=0))
    for params in ({"epochs": 30, "lr": 0.1}, {"epochs": 30, "lr": 0.3}):
        study.enqueue_trial(params)
    warm = WarmStart(source="earlier", enqueued=enqueued)
    warm.add_to(study, room=2)
    assert warm.describe()["enqueued"] == 2 and "room for 2 of the 3" in warm.notes[-1]
    asked = [study.ask() for _ in range(5)]
    for t in asked:
        space(t)
    assert [t.params["lr"] for t in asked[:4]] == [0.1, 0.3, 0.04, 0.02]  # room for 2 of the 3
    assert all(1 <= t.params["epochs"] <= 30 for t in asked)
    assert not any(is_warm_start(t) for t in study.trials)  # real trials of this search: they count and may win


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A finished smoke search (arch, lr, batch_size 32/64, augment none/flip), written without Ray."""
    root = tmp_path_factory.mktemp("warm")
    return make_run(root / "run", tiny_image_folder(root / "data"), n_complete=3, n_pruned=2, n_failed=1)


def warm_start(run_dir, space, **config):
    data = json.loads((run_dir / "search.json").read_text())["data"]
    config = {"max_epochs": 4, **config}
    return load_warm_trials(SearchConfig(space="my_spaces.py:wide", **config), run_dir, data, space)


def test_a_warm_start_from_another_space_maps_its_shared_parameters(smoke_run):
    def shared(trial):
        trial.suggest_categorical("batch_size", [32, 64])
        trial.suggest_float("lr", 1e-3, 0.5, log=True)

    warm = warm_start(smoke_run, shared)
    assert len(warm.trials) == 5 and warm.finished == 5  # the failed trial is not finished
    assert all(set(t.params) == {"batch_size", "lr"} for t in warm.trials)
    assert "5 of 5 finished trials" in warm.notes[0]
    assert any("arch" in n and "augment" in n for n in warm.notes)  # left out: the new space does not ask them
    # The same epochs and data: results this search would measure again enter TPE's model as they are.
    assert warm.describe()["fidelity"] == "top_k" and not warm.enqueued

    longer = warm_start(smoke_run, shared, max_epochs=8, num_samples=20)  # a lower fidelity: a prior only
    assert not longer.trials and len(longer.enqueued) == 3  # the 3 COMPLETE of 5, within k = 20 // 4
    assert "its best 3 configs run first, at this search's fidelity" in longer.notes[0]
    assert longer.describe()["enqueued"] == 3


def test_refuses_an_earlier_search_that_shares_no_parameter(smoke_run):
    def other(trial):
        trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)

    with pytest.raises(SearchError, match="share no parameter with this search's space"):
        warm_start(smoke_run, other)


def test_refuses_an_earlier_search_whose_shared_parameters_hold_none_of_the_new_values(smoke_run):
    def bigger(trial):
        trial.suggest_categorical("batch_size", [128, 256])

    with pytest.raises(SearchError, match="none of its values of batch_size lies in this search's space"):
        warm_start(smoke_run, bigger)


def test_refuses_an_earlier_search_none_of_whose_trials_fits(smoke_run):
    def narrow(trial):
        trial.suggest_categorical("arch", ["resnet20"])
        trial.suggest_categorical("batch_size", [128])

    with pytest.raises(SearchError, match=r"none of its 5 finished trials fits .*batch_size="):
        warm_start(smoke_run, narrow)


@pytest.mark.slow
def test_a_longer_search_warm_starts_from_a_short_one(image_folder, tmp_path):
    # Issue 34's two commands on the test images: 1 epoch of 800 images keeps only batch 64, 24 epochs
    # keep 64 and 128 (spaces/budget.py MIN_STEPS), so the two spaces ask batch_size with other choices.
    common = ["--space", "scratch", "--choices", "arch=resnet20", "--data", str(image_folder), "--val-size", "200",
              "--cpus-per-trial", "1", "--no-retrain", "--no-report"]
    quick, long = tmp_path / "quick", tmp_path / "long"
    first = run_search(*common, "--max-epochs", "1", "--num-samples", "2", "--out", str(quick))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    second = run_search(*common, "--max-epochs", "24", "--num-samples", "3", "--warm-start", str(quick),
                        "--time-budget", "90s", "--out", str(long))
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    study = optuna.load_study(study_name="scratch", storage=f"sqlite:///{long / 'study.db'}")
    new = study.trials
    assert not [t for t in new if is_warm_start(t)]  # 1-epoch results are a prior only: none in TPE's model
    assert not [t.number for t in new if is_invalid_suggestion(t)]
    assert any(t.intermediate_values for t in new), second.stderr[-3000:]  # new trials ran epochs
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in new)
    # The earlier search's best config ran again, at 24 epochs, in the new space's distributions.
    earlier = optuna.load_study(study_name="scratch", storage=f"sqlite:///{quick / 'study.db'}")
    best = max(earlier.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)
    again = [t for t in new if t.params == best.params]
    assert again and again[0].distributions["batch_size"] != best.distributions["batch_size"], second.stderr[-3000:]
    assert "--warm-start: 2 of 2 finished trials" in second.stderr, second.stderr[-3000:]
    assert "configs run first, at this search's fidelity" in second.stderr


# The retrain's own budget (spaces/budget.py plan_retrain): a recipe the trials ran at half its batch for lack of
# steps runs at the batch the retrain's steps afford.
def scratch_categorical():
    return inspect_space(spaces.get_space("scratch")).categorical


def test_the_retrain_replans_a_recipe_halved_for_the_trials_length():
    # The case: 4 epochs of 10,000 images ran the first short recipe at batch 64, lr 0.05 (312 steps at
    # batch 128 < RECIPE_MIN_STEPS); the retrain of 20 epochs of 12,000 images takes 1,875 steps at 128.
    recipe = {**SHORT_RECIPES[0], "batch_size": 64, "lr": 0.05}
    plan = plan_retrain("scratch", recipe, scratch_categorical(), Budget(4, 10_000), Budget(20, 12_000))
    assert plan["params"] == SHORT_RECIPES[0]
    assert plan["changed"] == {"batch_size": [64, 128], "lr": [0.05, 0.1]}
    assert "1875" in plan["reasons"][0] and plan["epochs"] == 20


@pytest.mark.parametrize("case", ["tpe's own config", "batch fixed by --choices", "retrain as short", "finetune"])
def test_the_retrain_keeps_what_no_length_rule_set(case):
    halved = {**SHORT_RECIPES[0], "batch_size": 64, "lr": 0.05}
    space, params, fixed, retrain = "scratch", halved, set(), Budget(20, 12_000)
    if case == "tpe's own config":
        params = {**halved, "lr": 0.0731}
    elif case == "batch fixed by --choices":
        fixed = {"batch_size"}
    elif case == "retrain as short":
        retrain = Budget(4, 10_000)
    else:
        space = "finetune"
    plan = plan_retrain(space, params, scratch_categorical(), Budget(4, 10_000), retrain, fixed)
    assert plan["params"] == params and not plan["changed"] and not plan["reasons"]


@pytest.mark.slow
def test_the_retrain_runs_and_records_its_own_plan(tmp_path, monkeypatch):
    # The test images give few steps: RECIPE_MIN_STEPS at 5 makes the trials' epoch of 200 images short (1 step at
    # batch 128) and a retrain of 3 epochs of 300 long enough (7 steps).
    monkeypatch.setattr(budget, "RECIPE_MIN_STEPS", 5)
    config = SearchConfig(space="scratch", data=str(tiny_image_folder(tmp_path / "data")), val_size=100, max_epochs=1,
                          out=str(tmp_path / "run"))
    out = config.out_dir()
    out.mkdir()
    data = config.search_data()
    # The search's record, in search.json and in the study's user attributes.
    record = {"config": config.to_dict(), "data": data.describe()}
    (out / "search.json").write_text(json.dumps(record))
    study = create_study(open_storage(out), config.study_name)
    for key, value in record.items():
        study.set_user_attr(key, value)
    params = {**SHORT_RECIPES[0], "batch_size": 64, "lr": 0.05}
    (out / "best").mkdir()
    (out / "best" / "config.json").write_text(json.dumps(
        {"trial": 0, "val_acc": 0.5, "params": params,
         "config": trial_config(config.base_run_config("cpu"), params).to_dict()}))

    assert (len(data.train_labels), len(data.val_labels)) == (200, 100)
    metrics = retrain_run(out, epochs=3, data=data, cpus=1)
    assert (metrics["config"]["batch_size"], metrics["config"]["lr"]) == (128, 0.1)
    plan = optuna.load_study(study_name="scratch", storage=f"sqlite:///{out / 'study.db'}").user_attrs["retrain_plan"]
    assert plan["changed"] == {"batch_size": [64, 128], "lr": [0.05, 0.1]} and plan["epochs"] == 3
    assert json.loads((out / "search.json").read_text())["retrain_plan"] == plan
