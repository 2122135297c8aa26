"""The searcher and scheduler fixes (search/searcher.py, search/asha.py), driven directly (no Ray cluster needed)."""

import json
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

import spaces
from search.asha import PersistentASHA
from search.internals import RayInternalsError
from search.searcher import PruneAwareOptunaSearch


def make_searcher(tmp_path, max_t=4):
    return PruneAwareOptunaSearch(
        spaces.get_space("smoke"), metric="val_acc", mode="max",
        sampler=optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True),
        storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}"), study_name="smoke", max_t=max_t,
    )


def result(it, acc, **extra):
    return {"training_iteration": it, "val_acc": acc, "time_total_s": float(it), "node": "n1", **extra}


def test_optuna_states_follow_how_the_trial_ended(tmp_path):
    searcher = make_searcher(tmp_path)
    for tid in "abcde":
        assert set(searcher.suggest(tid)) == {"arch", "lr", "batch_size", "augment"}
    # a: ran all 4 epochs; b: stopped by ASHA after 2; c: diverged; d: crashed; e: full run, last result unseen
    for it, acc in [(1, 0.3), (2, 0.5), (3, 0.6)]:
        searcher.on_trial_result("a", result(it, acc))
    searcher.on_trial_complete("a", result(4, 0.7))
    searcher.on_trial_result("b", result(1, 0.2))
    # What Tune snapshots of the searcher (Searcher.save) before the driver dies, with b still running.
    searcher.save(str(tmp_path / "searcher.pkl"))
    searcher.on_trial_complete("b", result(2, 0.25))
    searcher.on_trial_complete("c", result(1, 0.0, diverged=True))
    searcher.on_trial_result("d", result(1, 0.4))
    searcher.on_trial_complete("d", None, error=True)
    searcher.on_trial_complete("e", result(4, 0.65))

    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{tmp_path / 'study.db'}")
    trials = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert trials["a"].state == TrialState.COMPLETE and trials["a"].value == 0.7
    assert trials["a"].intermediate_values == {1: 0.3, 2: 0.5, 3: 0.6, 4: 0.7}
    assert trials["b"].state == TrialState.PRUNED and trials["b"].intermediate_values == {1: 0.2, 2: 0.25}
    assert trials["b"].value == 0.25 and trials["b"].user_attrs["epochs"] == 2
    assert trials["c"].state == TrialState.FAIL and trials["c"].user_attrs["fail_reason"] == "diverged"
    assert trials["d"].state == TrialState.FAIL and trials["d"].intermediate_values == {1: 0.4}
    assert trials["e"].state == TrialState.COMPLETE and trials["e"].value == 0.65
    # After a resume, the restored searcher re-runs b from its checkpoint: b was told before the
    # driver died, so its results and its end change nothing.
    restored = make_searcher(tmp_path)
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_result("b", result(2, 0.9))
    restored.on_trial_complete("b", result(4, 0.9))
    b = optuna.load_study(study_name="smoke", storage=f"sqlite:///{tmp_path / 'study.db'}").trials[1]
    assert b.state == TrialState.PRUNED and b.intermediate_values == {1: 0.2, 2: 0.25} and b.value == 0.25


def fake_trial(tid):
    return SimpleNamespace(trial_id=tid)


def asha(tmp_path, resume=False):
    return PersistentASHA(time_attr="training_iteration", metric="val_acc", mode="max", max_t=9, grace_period=1,
                          reduction_factor=3, state_path=tmp_path / "asha.json", resume=resume)


def test_asha_rungs_and_decisions_survive_a_restore(tmp_path):
    first = asha(tmp_path)
    trials = [fake_trial(f"t{i}") for i in range(6)]
    for t in trials:
        first.on_trial_add(None, t)
    decisions = {}
    for t, acc in zip(trials, [0.9, 0.8, 0.7, 0.2, 0.85, 0.1]):
        decisions[t.trial_id] = first.on_trial_result(None, t, {"training_iteration": 1, "val_acc": acc})
    # Each result is compared with the 2/3 quantile of those recorded at the rung before it.
    assert [t for t, d in decisions.items() if d == TrialScheduler.CONTINUE] == ["t0", "t4"]
    saved = json.loads((tmp_path / "asha.json").read_text())
    assert saved["stopped_at"] == {"t1": 1, "t2": 1, "t3": 1, "t5": 1}

    # What Tuner.restore gives: a scheduler as it was at the start, told to read its state.
    restored = asha(tmp_path, resume=True)
    (tmp_path / "elsewhere").mkdir()
    fresh = asha(tmp_path / "elsewhere")
    late = fake_trial("t6")
    for s in (restored, fresh):
        for t in trials + [late]:
            s.on_trial_add(None, t)
    # A trial stopped before the interruption and re-run from an older checkpoint stops again.
    assert restored.on_trial_result(None, trials[3], {"training_iteration": 1, "val_acc": 0.95}) == TrialScheduler.STOP
    # A new trial is compared with the rung recorded before the interruption...
    assert restored.on_trial_result(None, late, {"training_iteration": 1, "val_acc": 0.3}) == TrialScheduler.STOP
    # ...where a scheduler that lost its rungs would have let it through.
    assert fresh.on_trial_result(None, late, {"training_iteration": 1, "val_acc": 0.3}) == TrialScheduler.CONTINUE


def test_asha_refuses_state_written_for_other_settings(tmp_path):
    first = asha(tmp_path)
    first.on_trial_add(None, fake_trial("a"))
    first.on_trial_result(None, fake_trial("a"), {"training_iteration": 1, "val_acc": 0.5})
    other = PersistentASHA(time_attr="training_iteration", metric="val_acc", mode="max", max_t=16, grace_period=2,
                           reduction_factor=2, state_path=tmp_path / "asha.json", resume=True)
    with pytest.raises(ValueError, match="other ASHA settings"):
        other.on_trial_add(None, fake_trial("b"))


@pytest.mark.parametrize("ray_class, attr, build", [
    ("AsyncHyperBandScheduler", "_brackets", lambda tmp_path: asha(tmp_path)),
    ("OptunaSearch", "_ot_study", make_searcher),
])
def test_a_ray_without_the_internals_we_extend_is_refused_in_one_line(monkeypatch, tmp_path, ray_class, attr, build):
    from ray.tune.schedulers import AsyncHyperBandScheduler
    from ray.tune.search.optuna import OptunaSearch

    cls = {"AsyncHyperBandScheduler": AsyncHyperBandScheduler, "OptunaSearch": OptunaSearch}[ray_class]
    original = cls.__init__

    def renamed(self, *args, **kwargs):
        original(self, *args, **kwargs)
        setattr(self, f"_renamed{attr}", self.__dict__.pop(attr))  # as a Ray release might rename it

    monkeypatch.setattr(cls, "__init__", renamed)
    with pytest.raises(RayInternalsError, match=rf"{ray_class} has no {attr}, which the search's .* relies on; "
                                                r"install the tested Ray: pip install 'ray\[tune\]==2\.60\.\*'"):
        build(tmp_path)
