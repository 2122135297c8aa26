"""Plain Optuna on the simulated clock: ``TPESampler`` and ``HyperbandPruner`` in an ask/tell loop.

What a user writes without this project (``benchmarks/plain_optuna.py`` is the same script on
real data): Optuna's default ``TPESampler(seed=...)``, ``HyperbandPruner(min_resource=1,
max_resource=max_t, reduction_factor=3)``, and an objective that reports each epoch's val_acc
with ``trial.report`` and stops when ``trial.should_prune()`` says so. Workers ask for a new
trial when they are free (``study.ask``) and tell it when it ends (``study.tell``): COMPLETE with
its last val_acc when it ran its planned epochs, PRUNED when the pruner stopped it, and, as
``plain_optuna.py``'s objective returns for a run whose loss went NaN, COMPLETE with 0.0 when it
diverged.

The loop is split into the two objects the simulator calls, on the methods Ray Tune's
``Searcher`` and ``TrialScheduler`` have: ``AskTellSearcher`` asks and tells, ``PrunerScheduler``
reports and asks the pruner.
"""

from __future__ import annotations

import optuna
from ray.tune.schedulers import TrialScheduler

from search.constants import METRIC
from search.study import CHECKPOINTS, DIVERGED, EPOCH, ran_all_epochs
from search.tune.searcher import STUDY_TRIAL, study_number


class AskTellSearcher:
    """``study.ask()`` for each new trial, ``study.tell()`` when it ends; no limit on the number of trials."""

    def __init__(self, study: optuna.Study, space, max_t: int) -> None:
        self.study, self.space, self.max_t = study, space, max_t
        self.trials: dict[str, optuna.trial.Trial] = {}

    def suggest(self, trial_id: str) -> dict:
        trial = self.study.ask()
        self.space(trial)
        self.trials[trial_id] = trial
        return {**trial.params, STUDY_TRIAL: {"number": trial.number, CHECKPOINTS: []}}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Nothing: the scheduler's ``trial.report`` already gave the pruner the epoch."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self.trials.pop(trial_id)
        if result.get(DIVERGED):
            self.study.tell(trial, 0.0)
        elif ran_all_epochs(result, self.max_t):
            self.study.tell(trial, result[METRIC])
        else:
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)


class PrunerScheduler:
    """Each epoch: ``trial.report(val_acc, epoch)``, then STOP if ``trial.should_prune()``."""

    def __init__(self, searcher: AskTellSearcher) -> None:
        self.searcher = searcher

    def on_trial_add(self, tune_controller, trial) -> None:
        pass

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(DIVERGED):
            return TrialScheduler.CONTINUE  # the objective returns 0.0 at once
        handle = self.searcher.trials[trial.trial_id]
        assert handle.number == study_number(trial)
        handle.report(result[METRIC], result[EPOCH])
        return TrialScheduler.STOP if handle.should_prune() else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        pass


def build(space, seed: int, max_t: int, reduction_factor: float = 3) -> tuple[AskTellSearcher, PrunerScheduler]:
    """The plain-Optuna study (in memory) and its two halves of the ask/tell loop."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_t,
                                                                      reduction_factor=reduction_factor))
    searcher = AskTellSearcher(study, space, max_t)
    return searcher, PrunerScheduler(searcher)
