"""How each trial's end becomes its Optuna state: every state change of a search is decided here.

- COMPLETE: the trial ran all ``max_t`` epochs; its value is its last val_acc.
- PRUNED: ASHA stopped it early, or ``--time-budget`` cut it short (user attr ``stopped_by``).
  Optuna keeps its curve and takes its value from the last epoch; TPE reads it as a partial result.
- FAIL: it diverged or crashed (``fail_reason``), or it is an orphan: a trial the driver asked
  Optuna for and died before Tune recorded it, so no Tune trial will ever finish it.

While Tune runs, ``PruneAwareOptunaSearch`` applies ``outcome`` to each trial Tune ends. When
Tune returns, ``settle`` ends the trials Tune left RUNNING, from the statuses ``TrialStatuses``
recorded in the study. Both change states through Optuna's public ``Study.tell``.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import TrialState
from ray.tune import Callback

TUNE_STATUSES = "tune_statuses"  # study user attr: {Tune trial id: its status when the experiment ended}
FINISHED_BY_TUNE = ("TERMINATED", "ERROR")
INTERRUPTED = "INTERRUPTED"  # recorded for a trial Tune stopped only because the search was interrupted


def outcome(result: dict | None, error: bool, metric: str, time_attr: str, max_t: int):
    """``(state, value, user attrs)`` of a trial Tune has ended, from its last result."""
    value = (result or {}).get(metric)
    iterations = (result or {}).get(time_attr, 0)
    attrs = {}
    if error or not result or result.get("diverged") or value is None or not math.isfinite(value):
        state, value = TrialState.FAIL, None
        attrs["fail_reason"] = "diverged" if result and result.get("diverged") else "error"
    elif iterations >= max_t:
        state = TrialState.COMPLETE
    else:
        # Optuna takes a pruned trial's value from its last intermediate value.
        state, value = TrialState.PRUNED, None
    if result:
        attrs.update(epochs=int(iterations), wall_seconds=float(result.get("time_total_s", 0.0)))
        attrs.update({key: result[key] for key in ("node", "node_ip") if key in result})
    return state, value, attrs


def finish(study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None = None,
           attrs: dict | None = None) -> None:
    """Set ``attrs`` on the RUNNING ``trial`` and tell the study it ended as ``state``."""
    for key, v in (attrs or {}).items():
        trial.set_user_attr(key, v)
    study.tell(trial, value, state=state)


class TrialStatuses(Callback):
    """Records every Tune trial's id and final status in the study when the experiment ends.

    A Tune ``Callback`` (public API) instead of ResultGrid's private trial list. It writes to the
    study rather than to itself because ``Tuner.restore`` runs an unpickled copy of it.
    """

    def __init__(self, storage_url: str, study_name: str) -> None:
        self.storage_url, self.study_name = storage_url, study_name
        self._started: set[str] = set()  # trials whose actor started in this run
        self._ended: set[str] = set()  # trials Tune itself ended in this run (completed, stopped or errored)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._started.add(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended.add(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended.add(trial.trial_id)

    def on_experiment_end(self, trials, **info):
        study = optuna.load_study(study_name=self.study_name, storage=self.storage_url)
        study.set_user_attr(TUNE_STATUSES, {t.trial_id: self._status(t) for t in trials})

    def _status(self, trial) -> str:
        # On SIGINT Tune's cleanup sets the trials still running to TERMINATED before this
        # callback sees them, though neither the searcher nor ASHA ended them and the experiment
        # snapshot (written before the cleanup) keeps them RUNNING: --resume continues them.
        if trial.status == "TERMINATED" and trial.trial_id in self._started and trial.trial_id not in self._ended:
            return INTERRUPTED
        return trial.status


def tune_statuses(study: optuna.Study) -> dict[str, str]:
    return dict(study.user_attrs.get(TUNE_STATUSES, {}))


def settle(study: optuna.Study, budget_hit: bool) -> set[str]:
    """End every trial still RUNNING that no Tune trial will finish; return the Tune trials left unfinished.

    Trials Tune did not finish (the search was interrupted, e.g. Ctrl-C) stay RUNNING so that
    ``--resume`` finishes them. When ``--time-budget`` ended the search, Tune's running trials are
    PRUNED with their curve so far, like an ASHA stop (and are never the best config), and nothing
    is left to resume. Every other RUNNING trial is an orphan: FAIL.
    """
    statuses = tune_statuses(study)
    unfinished = set() if budget_hit else {tid for tid, s in statuses.items() if s not in FINISHED_BY_TUNE}
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tune_id = t.user_attrs.get("ray_trial_id")
        if tune_id in unfinished:
            continue
        if budget_hit and tune_id in statuses:
            state, attrs = TrialState.PRUNED, {"stopped_by": "time_budget", "epochs": max(t.intermediate_values,
                                                                                       default=0)}
        else:
            state, attrs = TrialState.FAIL, {"fail_reason": "orphaned"}
        # Optuna reaches a trial by number only through tell; user attrs need a Trial handle,
        # which Optuna builds from the trial's id in its storage (FrozenTrial keeps it as _trial_id).
        finish(study, optuna.trial.Trial(study, t._trial_id), state, attrs=attrs)
    return unfinished
