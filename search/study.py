"""The Optuna study is the search: every trial's params, learning curve, state and checkpoint, in ``OUT/study.db``.

Everything else derives from it: the Tune run that executes the trials (``search/tune/``), the
progress line, ``trials.csv``, ``search.json`` and the report. ``--resume`` reads it and runs
what is unfinished; nothing of Tune's is kept, copied or repaired.

A trial of the study is, in Optuna's states (changed only through the public ``Study.tell``):

- WAITING: a recipe enqueued when the search was created, not yet handed to Tune.
- RUNNING: handed to Tune and not finished. Its curve so far is its intermediate values (one per
  epoch) and its whole checkpoints, newest first, are ``user_attrs["checkpoints"]``: a resume
  continues it from the newest that loads, or from epoch 0 without one.
- COMPLETE: it ran all its epochs (``ran_all_epochs``); its value is its last epoch's val_acc.
- PRUNED: ASHA stopped it, or ``--time-budget`` cut it (``stopped_by``); Optuna takes its value
  from its last epoch, and TPE reads it as a partial result.
- FAIL: it diverged, crashed after ``--max-failures`` retries, or its suggestion was invalid
  (``fail_reason``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .constants import METRIC, study_url

# What each Tune result carries: the trial's own epoch (a resumed trial's first result in a new Tune
# run is not Tune's training_iteration 1), the epochs it is to run, its val_acc, and whether the loss
# went non-finite.
EPOCH = "epoch"
EPOCHS_PARAM = "epochs"  # the RunConfig field that plans a trial's epochs when a space searches it
PLANNED_EPOCHS = "planned_epochs"  # --max-epochs for this project's trials; a space that searches epochs, its own
DIVERGED = "diverged"

# The study's user attributes of a trial, written by the searcher and read by everything else.
RAY_TRIAL_ID = "ray_trial_id"  # the Tune trial that last ran it (a resumed trial gets a new one)
CHECKPOINTS = "checkpoints"  # URIs of its whole checkpoints Tune keeps, newest first, on local or remote storage
OLD_CHECKPOINT = "checkpoint"  # the newest alone, as studies before "checkpoints" recorded it
EPOCHS = "epochs"  # epochs it ran, the diverged one included
WALL_SECONDS = "wall_seconds"  # Tune's time of its epochs, summed over the runs that trained it
STARTED = "started"  # when its first epoch began (ISO time): the timeline's start, not when it was asked
NODE, NODE_IP = "node", "node_ip"  # the Ray node that last ran it
FAIL_REASON = "fail_reason"
ERROR, DIVERGED_RUN = "error", "diverged"  # fail_reason of a trial that crashed after its retries, or diverged
STOPPED_BY, TIME_BUDGET = "stopped_by", "time_budget"  # PRUNED by --time-budget, not by ASHA
ORIGIN, WARM_START = "origin", "warm_start"  # trials --warm-start copied from an earlier search
INVALID_SUGGESTION = "invalid suggestion"  # fail_reason prefix of a suggestion RunConfig refused

# How a finished trial ended, as the progress line, the summary and the report all say it.
COMPLETE, PRUNED, BUDGET, FAILED = "complete", "pruned by ASHA", "cut by the time budget", "failed"


def open_storage(out: Path) -> optuna.storages.RDBStorage:
    """The storage of ``OUT/study.db``; the search keeps it to reach trials by number (``StudyTrial``)."""
    return optuna.storages.RDBStorage(study_url(out))


def create_study(storage: optuna.storages.BaseStorage, study_name: str, sampler=None) -> optuna.Study:
    """The study in ``storage``, created (or loaded) so that it names its metric."""
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize",
                                load_if_exists=True, sampler=sampler)
    # optuna-dashboard and every Optuna plot then say val_acc, not "Objective 0". Experimental
    # since Optuna 3.2 and unchanged since; its warning would only clutter the console.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([METRIC])
    return study


class StudyTrial:
    """One trial of the study, reached by number through the storage's public methods: report epochs, set attributes.

    ``Study.ask`` hands out a ``Trial`` only for a new trial, and Optuna asks users not to build
    one; a trial asked by an earlier run (a resume) is reached here instead, and so, for one way
    of doing it, is every trial the search runs.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, study: optuna.Study, number: int) -> None:
        self.storage, self.number = storage, number
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(study.study_name), number)

    @property
    def user_attrs(self) -> dict:
        return self.storage.get_trial(self.trial_id).user_attrs

    def set_user_attr(self, key: str, value) -> None:
        self.storage.set_trial_user_attr(self.trial_id, key, value)

    def report(self, value: float, step: int) -> None:
        self.storage.set_trial_intermediate_value(self.trial_id, step, value)


def ran_all_epochs(result: dict | None, max_t: int) -> bool:
    """The one rule for a COMPLETE trial: its last result is its last planned epoch (``max_t`` unless the result
    says less) and did not diverge."""
    return bool(result) and not result.get(DIVERGED) and result.get(EPOCH, 0) >= result.get(PLANNED_EPOCHS, max_t)


def outcome(result: dict | None, error: bool, max_t: int) -> tuple[TrialState, float | None, dict]:
    """``(state, value, user attrs)`` of a trial Tune has ended, from its last result."""
    value = (result or {}).get(METRIC)
    if error or not result or result.get(DIVERGED) or value is None or not math.isfinite(value):
        reason = DIVERGED_RUN if result and result.get(DIVERGED) else ERROR
        return TrialState.FAIL, None, {FAIL_REASON: reason}
    if ran_all_epochs(result, max_t):
        return TrialState.COMPLETE, value, {}
    return TrialState.PRUNED, None, {}  # Optuna takes a pruned trial's value from its last epoch


def label(trial: optuna.trial.FrozenTrial) -> str | None:
    """How a finished trial ended (COMPLETE, PRUNED, BUDGET or FAILED); None while it runs or waits."""
    if trial.state == TrialState.COMPLETE:
        return COMPLETE
    if trial.state == TrialState.PRUNED:
        return BUDGET if trial.user_attrs.get(STOPPED_BY) == TIME_BUDGET else PRUNED
    if trial.state == TrialState.FAIL:
        return FAILED
    return None


def recorded_checkpoints(t: optuna.trial.FrozenTrial) -> list[str]:
    """The URIs of the trial's whole checkpoints, newest first, as the study recorded them."""
    if CHECKPOINTS in t.user_attrs:
        return list(t.user_attrs[CHECKPOINTS])
    return [t.user_attrs[OLD_CHECKPOINT]] if t.user_attrs.get(OLD_CHECKPOINT) else []


def is_warm_start(t: optuna.trial.FrozenTrial) -> bool:
    return t.user_attrs.get(ORIGIN) == WARM_START


def is_invalid_suggestion(t: optuna.trial.FrozenTrial) -> bool:
    return str(t.user_attrs.get(FAIL_REASON, "")).startswith(INVALID_SUGGESTION)


def own_trials(study: optuna.Study, states=None) -> list[optuna.trial.FrozenTrial]:
    """This search's trials (not those --warm-start copied in), in the order they were asked."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if not is_warm_start(t)]


def is_sample(t: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial of this search uses one of ``--num-samples``: asked, and not an invalid suggestion (never run)."""
    return t.state != TrialState.WAITING and not is_invalid_suggestion(t)


def samples_taken(trials: list[optuna.trial.FrozenTrial]) -> int:
    """How many of ``--num-samples`` these trials use (``is_sample``)."""
    return sum(map(is_sample, trials))


@dataclass(frozen=True)
class TrialCounts:
    """How a search's trials count, the one definition that the progress line, search.json and the report use.

    A *trial* is one of this search's own trials in the study: not one ``--warm-start`` copied in
    (``warm_start``), which no Tune trial ran here. A *sample* is a trial that counts against
    ``--num-samples``: asked of the study and handed to Tune; an invalid suggestion is not one, as
    no trial could run it (``invalid``). A *failure* is a sample that crashed after its retries or
    diverged (``failed``). A finished sample is ``complete``, ``pruned`` (by ASHA), ``budget``
    (cut by ``--time-budget``) or ``failed``; ``running`` ones are left for ``--resume``.
    """

    samples: int
    complete: int
    pruned: int
    budget: int
    failed: int
    running: int
    invalid: int
    warm_start: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.budget + self.failed


def count_trials(study: optuna.Study) -> TrialCounts:
    """The study's trials counted as ``TrialCounts`` defines them."""
    trials = study.get_trials(deepcopy=False)
    own = [t for t in trials if not is_warm_start(t)]
    samples = [t for t in own if is_sample(t)]
    labels = [label(t) for t in samples]
    return TrialCounts(samples=len(samples), complete=labels.count(COMPLETE), pruned=labels.count(PRUNED),
                       budget=labels.count(BUDGET), failed=labels.count(FAILED),
                       running=sum(t.state == TrialState.RUNNING for t in samples),
                       invalid=sum(is_invalid_suggestion(t) for t in own), warm_start=len(trials) - len(own))


def curve(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Validation accuracy per epoch, NaNs dropped."""
    values = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
    return [v for v in values if not math.isnan(v)]


def best_complete_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best trial of this search that ran every epoch, by its last val_acc (warm-start trials are no candidates)."""
    complete = own_trials(study, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: t.value) if complete else None


def prune_cut_by_budget(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """``--time-budget`` ended the search: its RUNNING trials are PRUNED with their curve so far; returns how many.

    As an ASHA stop would: TPE and the plots read them as partial results, and they are never
    the best config. A trial asked but not yet trained is cut at epoch 0.
    """
    running = own_trials(study, states=(TrialState.RUNNING,))
    for t in running:
        handle = StudyTrial(storage, study, t.number)
        handle.set_user_attr(STOPPED_BY, TIME_BUDGET)
        handle.set_user_attr(EPOCHS, t.user_attrs.get(EPOCHS, 0))
        study.tell(t.number, state=TrialState.PRUNED)
    return len(running)


def enqueue_recipes(study: optuna.Study, recipes: list[dict], num_samples: int) -> None:
    """The recipes, the search's first trials, put in the study as WAITING: ``Study.ask`` hands them out first.

    No more than ``num_samples``, so that the study never holds more trials than the search runs.
    """
    for params in recipes[:num_samples]:
        study.enqueue_trial(params)
