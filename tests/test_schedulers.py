"""The study's searcher, scheduler and sampler (search/tune/, search/sampler.py), driven as Tune drives them.

No Ray cluster is needed: Tune's calls are made in Tune's order, on a study in a file, and a
"resume" is new objects over the same study, as a new process would build them.
"""

import random
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

import spaces
from search.config import SearchConfig
from search.sampler import make_sampler
from search.study import create_study, enqueue_recipes, open_storage
from search.tune.scheduler import PASSED_EARLY, StudyASHA, evidence
from search.tune.searcher import STUDY_TRIAL, StudySearcher, study_number, trial_params
from search.tune.tuner import make_scheduler


def open_search(tmp_path, num_samples=5, max_t=4, sampler="tpe", seed=0):
    """The study in ``tmp_path`` and a searcher over it, as a (new or resumed) search's driver builds them."""
    tmp_path.mkdir(exist_ok=True)
    storage = open_storage(tmp_path)
    study = create_study(storage, "smoke", make_sampler(sampler, seed, 4))
    searcher = StudySearcher(study, storage, spaces.get_space("smoke"), num_samples=num_samples, max_t=max_t)
    return study, searcher


def result(epoch, acc, **extra):
    return {"epoch": epoch, "val_acc": acc, "time_this_iter_s": 1.5, "node": "n1", **extra}


def test_the_study_records_how_each_trial_ended(tmp_path):
    study, searcher = open_search(tmp_path)
    for tid in "abcde":
        config = searcher.suggest(tid)
        assert set(trial_params(config)) == {"arch", "lr", "batch_size", "augment"}
    # a: ran all 4 epochs; b: stopped by ASHA after 2; c: diverged; d: crashed; e: full run, last result unseen
    for epoch, acc in [(1, 0.3), (2, 0.5), (3, 0.6)]:
        searcher.on_trial_result("a", result(epoch, acc))
    searcher.on_trial_complete("a", result(4, 0.7))
    searcher.on_trial_result("b", result(1, 0.2))
    searcher.on_trial_complete("b", result(2, 0.25))
    searcher.on_trial_complete("c", result(1, 0.0, diverged=True))
    searcher.on_trial_result("d", result(1, 0.4))
    searcher.on_trial_complete("d", None, error=True)
    searcher.on_trial_complete("e", result(4, 0.65))
    assert searcher.suggest("f") == Searcher.FINISHED  # five asked: --num-samples 5

    trials = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert trials["a"].state == TrialState.COMPLETE and trials["a"].value == 0.7
    assert trials["a"].intermediate_values == {1: 0.3, 2: 0.5, 3: 0.6, 4: 0.7}
    assert trials["a"].user_attrs["wall_seconds"] == 6.0 and trials["a"].user_attrs["epochs"] == 4
    assert trials["b"].state == TrialState.PRUNED and trials["b"].intermediate_values == {1: 0.2, 2: 0.25}
    assert trials["b"].value == 0.25 and trials["b"].user_attrs["epochs"] == 2
    assert trials["c"].state == TrialState.FAIL and trials["c"].user_attrs["fail_reason"] == "diverged"
    assert trials["c"].intermediate_values == {}  # a diverged epoch is no point of the curve
    assert trials["d"].state == TrialState.FAIL and trials["d"].intermediate_values == {1: 0.4}
    assert trials["e"].state == TrialState.COMPLETE and trials["e"].value == 0.65


def test_a_trial_that_plans_fewer_epochs_is_complete_at_its_last(tmp_path):
    # A space that searches the epochs themselves (the benchmark's ImageNet table): max_t is the most any trial runs.
    study, searcher = open_search(tmp_path, max_t=100)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_complete("a", result(40, 0.5, planned_epochs=40))
    searcher.on_trial_complete("b", result(40, 0.6, planned_epochs=100))  # stopped at 40 of its 100: by ASHA
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]


def test_a_resumed_search_runs_its_unfinished_trials_first_from_their_checkpoints(tmp_path):
    study, first = open_search(tmp_path, num_samples=4)
    enqueue_recipes(study, [{"arch": "resnet20", "lr": 0.1, "batch_size": 64, "augment": "flip"}], 4)
    configs = {tid: first.suggest(tid) for tid in ("a", "b", "c")}
    assert trial_params(configs["a"]) == {"arch": "resnet20", "lr": 0.1, "batch_size": 64, "augment": "flip"}
    first.on_trial_result("a", result(1, 0.3))
    for k in range(3):  # the study keeps the newest two, as Tune does
        first.record_checkpoint("a", f"s3://bucket/run/tune/trial-0000-a/checkpoint_00000{k}")
    first.on_trial_complete("b", result(4, 0.5))
    # The driver dies here: a has an epoch and a checkpoint, c was asked and never trained.

    study, resumed = open_search(tmp_path, num_samples=4)
    again = [resumed.suggest(tid) for tid in ("x", "y", "z")]
    assert [c[STUDY_TRIAL] for c in again[:2]] == [
        {"number": 0, "checkpoints": ["s3://bucket/run/tune/trial-0000-a/checkpoint_000002",
                                      "s3://bucket/run/tune/trial-0000-a/checkpoint_000001"]},
        {"number": 2, "checkpoints": []},
    ]
    assert trial_params(again[0]) == trial_params(configs["a"]) and trial_params(again[1]) == trial_params(configs["c"])
    assert again[2][STUDY_TRIAL] == {"number": 3, "checkpoints": []}  # then the search goes on
    assert resumed.suggest("w") == Searcher.FINISHED
    # The resumed trial reports its first epoch again (from its checkpoint it retrains none, but an
    # older one would): the study keeps what it had, and the curve goes on.
    resumed.on_trial_result("x", result(1, 0.99))
    resumed.on_trial_complete("x", result(2, 0.4))
    a = study.trials[0]
    assert a.state == TrialState.PRUNED and a.intermediate_values == {1: 0.3, 2: 0.4}
    assert a.user_attrs["ray_trial_id"] == "x" and a.user_attrs["wall_seconds"] == 3.0
    assert len(study.trials) == 4


def test_a_trial_killed_by_the_interruption_stays_running(tmp_path):
    from search.tune.callbacks import StopSearch

    study, searcher = open_search(tmp_path)
    searcher.stop = StopSearch()
    searcher.suggest("a")
    searcher.on_trial_result("a", result(1, 0.3))
    searcher.stop.request("SIGTERM")
    searcher.on_trial_complete("a", None, error=True)  # its worker died with the process group
    assert study.trials[0].state == TrialState.RUNNING and study.trials[0].intermediate_values == {1: 0.3}


def test_each_trial_draws_the_same_config_in_a_resumed_process(tmp_path):
    _, one = open_search(tmp_path / "one", num_samples=6, sampler="random", seed=3)
    straight = [trial_params(one.suggest(str(i))) for i in range(6)]
    _, first = open_search(tmp_path / "two", num_samples=6, sampler="random", seed=3)
    for i in range(2):
        first.suggest(str(i))
    _, resumed = open_search(tmp_path / "two", num_samples=6, sampler="random", seed=3)
    after = [trial_params(resumed.suggest(str(i))) for i in range(2, 8)]
    # The two unfinished trials first, then trials 2-5 as the uninterrupted search drew them.
    assert after == straight
    assert len({c["lr"] for c in straight}) == 6  # and they are not one draw repeated


def fake_trial(number):
    return SimpleNamespace(trial_id=f"t{number}", config={STUDY_TRIAL: {"number": number}})


def asha_pair(tmp_path, max_t=9, grace_period=1, reduction_factor=3):
    """StudyASHA on a study the searcher fills, and Ray's ASHAScheduler with the same settings."""
    study, searcher = open_search(tmp_path, num_samples=100, max_t=max_t)
    ours = StudyASHA(study, searcher.storage, max_t=max_t, grace_period=grace_period,
                     reduction_factor=reduction_factor)
    rays = ASHAScheduler(time_attr="epoch", metric="val_acc", mode="max", max_t=max_t, grace_period=grace_period,
                         reduction_factor=reduction_factor)
    return study, searcher, ours, rays


def play(searcher, schedulers, trial, epoch, acc, searcher_first=False):
    """One result through Tune's order: the schedulers decide, then the searcher hears it (or its end).

    ``searcher_first``: the other order, which Tune does not promise against; no decision may change.
    """
    res = result(epoch, acc)
    if searcher_first:
        searcher.on_trial_result(trial.trial_id, res)
    decisions = {s.on_trial_result(None, trial, dict(res)) for s in schedulers}
    assert len(decisions) == 1, "the schedulers disagree"
    (decision,) = decisions
    if decision == TrialScheduler.STOP:
        for s in schedulers:
            s.on_trial_complete(None, trial, res)
        searcher.on_trial_complete(trial.trial_id, res)
    else:
        searcher.on_trial_result(trial.trial_id, res)
    return decision


@pytest.mark.parametrize("searcher_first", [False, True], ids=["scheduler-first", "searcher-first"])
@pytest.mark.parametrize("seed", range(5))
def test_study_asha_stops_exactly_the_trials_rays_asha_stops(tmp_path, seed, searcher_first):
    rng = random.Random(seed)
    _, searcher, ours, rays = asha_pair(tmp_path)
    trials, epochs, stopped = [], {}, set()
    for step in range(120):  # trials arrive and report in a random interleaving, as with several workers
        if len(trials) < 12 and (not trials or rng.random() < 0.3):
            config = searcher.suggest(f"t{len(trials)}")
            trial = fake_trial(config[STUDY_TRIAL]["number"])
            for s in (ours, rays):
                s.on_trial_add(None, trial)
            trials.append(trial)
        live = [t for t in trials if t.trial_id not in stopped and epochs.get(t.trial_id, 0) < 9]
        if not live:
            continue
        trial = rng.choice(live)
        epochs[trial.trial_id] = epochs.get(trial.trial_id, 0) + 1
        if play(searcher, (ours, rays), trial, epochs[trial.trial_id], rng.random(),
                searcher_first) == TrialScheduler.STOP:
            stopped.add(trial.trial_id)
    assert 0 < len([t for t in stopped if epochs[t] < 9]) < len(trials)  # some pruned, not all


def test_after_a_resume_asha_decides_as_the_interrupted_search_would_have(tmp_path):
    study, searcher, _, _ = asha_pair(tmp_path)
    first = StudyASHA(study, searcher.storage, max_t=9, grace_period=1, reduction_factor=3)
    trials = [fake_trial(searcher.suggest(f"t{i}")[STUDY_TRIAL]["number"]) for i in range(6)]
    decisions = [play(searcher, (first,), t, 1, acc) for t, acc in zip(trials, [0.9, 0.8, 0.7, 0.2, 0.85, 0.1])]
    # Each is compared with the 2/3 quantile of the values at the rung before it.
    assert [t.trial_id for t, d in zip(trials, decisions) if d == TrialScheduler.CONTINUE] == ["t0", "t4"]
    assert [t.state for t in study.trials].count(TrialState.PRUNED) == 4

    # A new process: a scheduler that knows nothing but the study.
    study, searcher = open_search(tmp_path, num_samples=100, max_t=9)
    resumed = StudyASHA(study, searcher.storage, max_t=9, grace_period=1, reduction_factor=3)
    # Its searcher hands out the two trials that passed the rung and were still training, first.
    assert [study_number(fake_trial(searcher.suggest(f"r{i}")[STUDY_TRIAL]["number"])) for i in range(2)] == [0, 4]
    # A trial that passed the rung before the interruption, re-run from an older checkpoint, goes on...
    assert resumed.on_trial_result(None, trials[0], result(1, 0.05)) == TrialScheduler.CONTINUE
    # ...and a new trial meets the rung the interrupted search recorded: stopped, as it would have been.
    late = fake_trial(searcher.suggest("t6")[STUDY_TRIAL]["number"])
    assert resumed.on_trial_result(None, late, result(1, 0.3)) == TrialScheduler.STOP
    # Ray's own ASHA, rebuilt in a new process, has lost its rungs and lets it through.
    rays = ASHAScheduler(time_attr="epoch", metric="val_acc", mode="max", max_t=9, grace_period=1, reduction_factor=3)
    rays.on_trial_add(None, late)
    assert rays.on_trial_result(None, late, result(1, 0.3)) == TrialScheduler.CONTINUE


def test_the_baseline_flags_build_random_search_without_early_stopping(tmp_path):
    from ray.tune.schedulers import FIFOScheduler

    default = SearchConfig(space="smoke", max_epochs=12)
    baseline = SearchConfig(space="smoke", sampler="random", scheduler="fifo")
    storage = open_storage(tmp_path)
    study = create_study(storage, "smoke")
    asha = make_scheduler(default, study, storage)
    assert isinstance(asha, StudyASHA) and asha.rung_epochs == [6] and default.grace_period == 6
    assert type(make_scheduler(baseline, study, storage)) is FIFOScheduler
    for kind in ("tpe", "random"):
        trial = optuna.create_study(sampler=make_sampler(kind, 0, 4)).ask()
        assert 1e-3 <= trial.suggest_float("lr", 1e-3, 1.0, log=True) <= 1.0


def test_study_asha_refuses_another_searchers_trials_and_another_metric_or_mode(tmp_path):
    study, searcher, ours, _ = asha_pair(tmp_path)
    with pytest.raises(ValueError, match="runs only the trials of a StudySearcher"):
        ours.on_trial_add(None, SimpleNamespace(trial_id="x", config={"lr": 0.1}))  # e.g. OptunaSearch's trial
    assert ours.set_search_properties(None, None) and ours.set_search_properties("val_acc", "max")
    for metric, mode in (("val_loss", None), (None, "min"), ("train_acc", "max")):
        with pytest.raises(ValueError, match=r"decides on the study's val_acc \(max\)"):
            ours.set_search_properties(metric, mode)


def epochs_space(trial):
    """A space that plans each trial's epochs (as opda's tables do): ``epochs`` is a RunConfig field."""
    trial.suggest_int("epochs", 10, 100, step=10)
    trial.suggest_float("lr", 1e-3, 1.0, log=True)


def open_epochs_search(tmp_path, plans):
    """A search whose trials plan ``plans`` epochs, in that order (enqueued), of at most 100."""
    tmp_path.mkdir(exist_ok=True)
    storage = open_storage(tmp_path)
    study = create_study(storage, "epochs_space", make_sampler("random", 0, 4))
    if not study.trials:
        for e in plans:
            study.enqueue_trial({"epochs": e, "lr": 0.1})
    return study, StudySearcher(study, storage, epochs_space, num_samples=100, max_t=100)


@pytest.mark.parametrize("fractional", [True, False], ids=["fraction", "epochs"])
def test_rungs_on_the_fraction_of_each_trials_planned_epochs(tmp_path, fractional):
    # Grace 50 of max_t 100, R = 3: one rung, at epoch 50 of a 100-epoch trial.
    study, searcher = open_epochs_search(tmp_path, [100, 100, 20, 40, 20])
    asha = StudyASHA(study, searcher.storage, max_t=100, grace_period=50, reduction_factor=3, fractional=fractional)
    trials = [fake_trial(searcher.suggest(f"t{i}")[STUDY_TRIAL]["number"]) for i in range(5)]
    plans = [100, 100, 20, 40, 20]

    def report(i, epoch, acc):
        res = result(epoch, acc, planned_epochs=plans[i])
        decision = asha.on_trial_result(None, trials[i], dict(res))
        if decision == TrialScheduler.STOP:
            searcher.on_trial_complete(trials[i].trial_id, res)
        else:
            searcher.on_trial_result(trials[i].trial_id, res)
        return decision

    assert report(0, 50, 0.6) == TrialScheduler.CONTINUE  # the first at its rung
    assert report(1, 50, 0.3) == TrialScheduler.STOP  # below the top third of [0.6]
    if fractional:
        # A 20-epoch trial meets the rung at its epoch 10, a 40-epoch one at 20, each against the others'
        # values at half of their own epochs: [0.6, 0.3] -> cutoff 0.5; then [0.6, 0.3, 0.55] -> 0.567.
        assert report(2, 10, 0.55) == TrialScheduler.CONTINUE
        assert report(3, 10, 0.2) == TrialScheduler.CONTINUE  # not its rung
        assert report(3, 20, 0.4) == TrialScheduler.STOP
        assert report(4, 10, 0.58) == TrialScheduler.CONTINUE  # [0.3, 0.4, 0.55, 0.6] -> 0.55
        assert asha.rung_epochs == [50] and "0.5 of each trial's epochs" in asha.debug_string()
    else:
        # Ray's rungs: a trial that plans fewer than 50 epochs is never judged, whatever its value.
        assert report(2, 10, 0.55) == report(3, 20, 0.01) == report(4, 10, 0.02) == TrialScheduler.CONTINUE
        return

    # A new process over the same study decides as the first would have: the rungs are the study's.
    study, searcher = open_epochs_search(tmp_path, [])
    resumed = StudyASHA(study, searcher.storage, max_t=100, grace_period=50, reduction_factor=3, fractional=True)
    handed = [study_number(fake_trial(searcher.suggest(f"r{i}")[STUDY_TRIAL]["number"])) for i in range(3)]
    assert handed == [0, 2, 4]  # the three still training
    assert resumed.on_trial_result(None, trials[2], result(10, 0.1, planned_epochs=20)) == TrialScheduler.CONTINUE
    late = fake_trial(searcher.suggest("t5")[STUDY_TRIAL]["number"])  # asked now: plans its own epochs (random)
    planned = study.trials[late.config[STUDY_TRIAL]["number"]].params["epochs"]
    at = -(-planned // 2)
    # 0.56 is under the cutoff of [0.6, 0.3, 0.55, 0.4, 0.58] (0.57); 0.59 is over that of the six (0.567).
    assert resumed.on_trial_result(None, late, result(at, 0.56, planned_epochs=planned)) == TrialScheduler.STOP
    other = fake_trial(searcher.suggest("t6")[STUDY_TRIAL]["number"])
    planned = study.trials[other.config[STUDY_TRIAL]["number"]].params["epochs"]
    assert resumed.on_trial_result(None, other, result(-(-planned // 2), 0.59, planned_epochs=planned)) \
        == TrialScheduler.CONTINUE


def short_epochs_space(trial):
    trial.suggest_int("epochs", 1, 9)
    trial.suggest_float("lr", 1e-3, 1.0, log=True)


def test_a_short_trial_meeting_two_rungs_at_one_epoch_must_pass_both(tmp_path):
    # max_t 9, grace 1, R 3: rungs at 1/9 and 3/9 of each trial's epochs; a 2-epoch trial meets both at epoch 1.
    storage = open_storage(tmp_path)
    study = create_study(storage, "short_epochs_space", make_sampler("random", 0, 4))
    for e in (9, 9, 2):
        study.enqueue_trial({"epochs": e, "lr": 0.1})
    searcher = StudySearcher(study, storage, short_epochs_space, num_samples=10, max_t=9)
    asha = StudyASHA(study, storage, max_t=9, grace_period=1, reduction_factor=3, fractional=True)
    a, b, c = (fake_trial(searcher.suggest(f"t{i}")[STUDY_TRIAL]["number"]) for i in range(3))
    for trial, epoch, acc in ((a, 1, 0.5), (a, 3, 0.9), (b, 1, 0.6), (b, 3, 0.95)):
        res = result(epoch, acc, planned_epochs=9)
        assert asha.on_trial_result(None, trial, dict(res)) == TrialScheduler.CONTINUE
        searcher.on_trial_result(trial.trial_id, res)
    # 0.7 passes the first rung ([0.5, 0.6]: cutoff 0.567) but not the second ([0.9, 0.95]: 0.933).
    assert asha.on_trial_result(None, c, result(1, 0.7, planned_epochs=2)) == TrialScheduler.STOP


def nine_epochs_space(trial):
    trial.suggest_float("lr", 1e-3, 1.0, log=True)


@pytest.mark.parametrize("best_ranked_low_early", [False, True], ids=["early-ranks-hold", "early-ranks-fail"])
def test_an_early_rung_stops_trials_only_once_the_best_finished_trials_would_all_have_passed_it(
        tmp_path, best_ranked_low_early):
    # max_t 9, grace 3, R 3: the rung at epoch 3, and one early rung below it, at epoch 1. Ten trials stopped at
    # epoch 3, five finished; the finished ones' values at epoch 1 decide whether the early rung may stop trials.
    storage = open_storage(tmp_path)
    study = create_study(storage, "nine_epochs_space", make_sampler("random", 0, 4))
    searcher = StudySearcher(study, storage, nine_epochs_space, num_samples=100, max_t=9)

    def scheduler():  # a new one over the same study, as a resumed search builds it
        return StudyASHA(study, storage, max_t=9, grace_period=3, reduction_factor=3, fractional=True, early_rungs=1)

    asha = scheduler()

    def earned() -> bool:  # whether the early rung may stop trials, from the study as it is now
        return asha.early_rung_earned(asha.values_at(asha.early, 0))

    # At R = 3 five finished trials must pass: a rung that knew nothing would pass them all with chance 1/243.
    assert asha.early == [1.0] and asha.milestones == [3] and asha.evidence == evidence(3) == 5
    stopped = [0.1, 0.2, 0.3, 0.15, 0.25, 0.12, 0.18, 0.22, 0.28, 0.14]  # at epochs 1-3, all under the finished
    finished = {0.9: 0.2 if best_ranked_low_early else 0.75, 0.85: 0.7, 0.8: 0.65, 0.78: 0.6, 0.76: 0.55}
    curves = [[(e, v) for e in (1, 2, 3)] for v in stopped]
    curves += [[(1, first), *((e, final) for e in range(2, 10))] for final, first in finished.items()]
    for i, curve in enumerate(curves):
        assert earned() is False  # fewer than five finished trials: it may stop nobody
        searcher.suggest(f"t{i}")
        for epoch, acc in curve[:-1]:
            searcher.on_trial_result(f"t{i}", result(epoch, acc))
        searcher.on_trial_complete(f"t{i}", result(*curve[-1]))
    assert sorted(t.value for t in study.trials if t.state == TrialState.COMPLETE) == sorted(finished)
    assert not any(t.user_attrs.get(PASSED_EARLY) for t in study.trials)

    # Three more trials reach epoch 1 while running together, each decision read from the study in Tune's order;
    # the second by a new scheduler over the same study, as a resumed search would decide it.
    decisions = []
    for i, (decider, acc) in enumerate(zip((asha, scheduler(), asha), (0.35, 0.8, 0.45))):
        trial = fake_trial(searcher.suggest(f"late{i}")[STUDY_TRIAL]["number"])
        decisions.append(decider.on_trial_result(None, trial, result(1, acc)))
        if decisions[-1] == TrialScheduler.STOP:
            searcher.on_trial_complete(f"late{i}", result(1, acc))
        else:
            searcher.on_trial_result(f"late{i}", result(1, acc))
    late = study.trials[len(curves):]
    if best_ranked_low_early:
        # The best finished trial was 0.2 at epoch 1: the rung would have stopped it, so it stops nobody.
        assert earned() is False
        assert decisions == [TrialScheduler.CONTINUE] * 3
        assert [t.state for t in late] == [TrialState.RUNNING] * 3
    else:
        # Each is cut at the top third of the others' values at epoch 1: 0.383 of the fifteen before it stops
        # 0.35; 0.8 goes on; 0.483 of the seventeen stops 0.45.
        assert earned() is True
        assert decisions == [TrialScheduler.STOP, TrialScheduler.CONTINUE, TrialScheduler.STOP]
        assert [t.state for t in late] == [TrialState.PRUNED, TrialState.RUNNING, TrialState.PRUNED]
        assert [t.user_attrs.get(PASSED_EARLY) for t in late] == [None, [0], None]
