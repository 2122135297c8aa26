"""``StudySearcher``: Ray Tune's ``Searcher`` interface over the Optuna study, which holds the whole search.

``suggest`` hands Tune, in order:

1. the study's RUNNING trials that no Tune trial of this run has: an interrupted search's, each
   continued from the checkpoint the study recorded for it, or from epoch 0 without one;
2. new trials asked of the study (``Study.ask``: the enqueued recipes first, then the sampler's),
   until ``num_samples`` have been asked;
3. then ``Searcher.FINISHED``.

Each epoch's result becomes an intermediate value of its trial (with its wall time and node), and
its end a ``Study.tell``: COMPLETE when it ran every epoch, PRUNED when ASHA stopped it earlier
(its curve kept, the result that made ASHA stop it included), FAIL when it diverged or crashed
(``search.study.outcome``).

Why not Ray's ``OptunaSearch``: it tells Optuna that every stopped trial is COMPLETE, with its
early accuracy, and its map of Tune trials to Optuna trials lives in the searcher, which only
Tune's experiment snapshot brings back after an interruption.
"""

from __future__ import annotations

import datetime as dt
import math
import sys

import optuna
from optuna.trial import TrialState
from ray.tune.result import TIME_THIS_ITER_S
from ray.tune.search import Searcher

from model.config import RunConfig

from ..constants import KEPT_CHECKPOINTS, METRIC, MODE
from ..errors import SearchError
from ..study import (CHECKPOINTS, DIVERGED, EPOCH, EPOCHS, FAIL_REASON, INVALID_SUGGESTION, NODE, NODE_IP,
                     RAY_TRIAL_ID, STARTED, WALL_SECONDS, StudyTrial, outcome, own_trials, recorded_checkpoints,
                     samples_taken)

# The config key of a Tune trial's trial of the study: {"number": N, "checkpoints": [URI, ...] newest first}.
STUDY_TRIAL = "study_trial"
MAX_BAD_SUGGESTIONS = 20  # in a row: the space is broken, not unlucky


def check_suggestion(params: dict) -> None:
    """What a trial would build, checked when it is suggested: a bad suggestion fails once, not in three retries
    of a trial. The search sets epochs, seed and device, so RunConfig's defaults stand in for them."""
    RunConfig.from_dict({**RunConfig().to_dict(), **params})


def study_number(trial) -> int | None:
    """The number of the study's trial that a Tune trial runs, from its config."""
    return ((getattr(trial, "config", None) or {}).get(STUDY_TRIAL) or {}).get("number")


def trial_params(config: dict) -> dict:
    """A Tune trial's config less the study's bookkeeping: the space's parameters."""
    return {k: v for k, v in config.items() if k != STUDY_TRIAL}


class StudySearcher(Searcher):
    """The study's trials, handed to Tune and told back (see the module docstring).

    ``space``: the define-by-run function, called on each new ``optuna.Trial``; ``validate``:
    raises for a suggestion the trial could not run (``check_suggestion``), so that it fails
    once, here; ``stop``: the run's ``StopSearch``, after which a trial Tune ends in error (its
    worker killed by the same signal) is left RUNNING for ``--resume`` rather than told FAIL.
    """

    def __init__(self, study: optuna.Study, storage: optuna.storages.BaseStorage, space, *, num_samples: int,
                 max_t: int, validate=None, stop=None) -> None:
        super().__init__(metric=METRIC, mode=MODE)
        self.study, self.storage, self.space, self.validate = study, storage, space, validate
        self.num_samples, self.max_t, self.stop = num_samples, max_t, stop
        self._trials: dict[str, StudyTrial] = {}  # Tune trial id -> the study's trial it runs
        self._steps: dict[str, set[int]] = {}  # Tune trial id -> the epochs its trial already holds
        self._bad_in_a_row = 0

    # -- Tune's Searcher interface ----------------------------------------------------------

    def suggest(self, trial_id: str) -> dict | str | None:
        trials = own_trials(self.study)
        handed = {t.number for t in self._trials.values()}
        for t in trials:
            if t.state == TrialState.RUNNING and t.number not in handed:
                return self._hand_out(trial_id, t.number, t.params, recorded_checkpoints(t),
                                      set(t.intermediate_values))
        if samples_taken(trials) >= self.num_samples:
            return Searcher.FINISHED
        trial = self.study.ask()
        try:
            self.space(trial)
            if self.validate is not None:
                self.validate(trial.params)
        except (Exception, SystemExit) as e:  # a user's space that breaks mid-search
            self._fail_suggestion(trial, e)
            return None  # Tune asks again: the next suggestion is a new trial of the study
        self._bad_in_a_row = 0
        return self._hand_out(trial_id, trial.number, trial.params, [], set())

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._trials:
            self._record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        trial = self._trials.get(trial_id)
        if trial is None:
            return
        if (error and self.stop is not None and self.stop.reason) or (result is None and not error):
            # Killed by the interruption, or removed before it ran: it stays RUNNING, and --resume runs it.
            self._forget(trial_id)
            return
        if result and not result.get(DIVERGED):
            # Tune hands the result that made ASHA stop a trial only to on_trial_complete: it is
            # the learning curve's last point.
            self._record(trial_id, result)
        state, value, attrs = outcome(result, error, self.max_t)
        for key, v in attrs.items():
            trial.set_user_attr(key, v)
        self.study.tell(trial.number, value, state=state, skip_if_finished=True)
        self._forget(trial_id)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study is this searcher's state, and a resume reads it (no ``Tuner.restore``)."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see ``save``)."""

    # -- The study's side --------------------------------------------------------------------

    def record_checkpoint(self, trial_id: str, uri: str) -> None:
        """A new whole checkpoint of the trial Tune runs as ``trial_id``, for a resume to continue from: the study
        keeps the ``KEPT_CHECKPOINTS`` newest, as Tune does, so that a damaged newest one has a whole one behind it."""
        trial = self._trials.get(trial_id)
        if trial is not None:
            kept = [uri, *(u for u in trial.user_attrs.get(CHECKPOINTS, []) if u != uri)]
            trial.set_user_attr(CHECKPOINTS, kept[:KEPT_CHECKPOINTS])

    def _hand_out(self, trial_id: str, number: int, params: dict, checkpoints: list[str], steps: set[int]) -> dict:
        trial = StudyTrial(self.storage, self.study, number)
        trial.set_user_attr(RAY_TRIAL_ID, trial_id)
        self._trials[trial_id], self._steps[trial_id] = trial, steps
        return {**params, STUDY_TRIAL: {"number": trial.number, CHECKPOINTS: checkpoints}}

    def _forget(self, trial_id: str) -> None:
        self._trials.pop(trial_id, None)
        self._steps.pop(trial_id, None)

    def _record(self, trial_id: str, result: dict) -> None:
        """An epoch's result on the study's trial: its val_acc, wall time and node, once per epoch.

        A trial resumed from a checkpoint older than its curve reports those epochs again; the
        study keeps what it first recorded.
        """
        epoch, trial, steps = result.get(EPOCH), self._trials[trial_id], self._steps[trial_id]
        if epoch is None or epoch in steps:
            return
        value = result.get(METRIC)
        if not result.get(DIVERGED) and value is not None and math.isfinite(value):
            trial.report(value, epoch)
            steps.add(epoch)
        seconds = float(result.get(TIME_THIS_ITER_S) or 0.0)  # Tune's time of the epoch, checkpoint included
        attrs = trial.user_attrs
        if STARTED not in attrs:
            trial.set_user_attr(STARTED, (dt.datetime.now() - dt.timedelta(seconds=seconds)).isoformat())
        trial.set_user_attr(EPOCHS, int(epoch))
        trial.set_user_attr(WALL_SECONDS, float(attrs.get(WALL_SECONDS, 0.0)) + seconds)
        for key in (NODE, NODE_IP):
            if key in result and attrs.get(key) != result[key]:
                trial.set_user_attr(key, result[key])

    def _fail_suggestion(self, trial: optuna.trial.Trial, e: BaseException) -> None:
        """Tell the study the suggestion FAILed, with why, in one line on the terminal."""
        reason = f"{INVALID_SUGGESTION}: {e.__class__.__name__}: {e}"
        trial.set_user_attr(FAIL_REASON, reason)
        self.study.tell(trial, state=TrialState.FAIL)
        print(f"error: trial {trial.number} FAIL, {reason}; the search goes on", file=sys.stderr, flush=True)
        self._bad_in_a_row += 1
        if self._bad_in_a_row >= MAX_BAD_SUGGESTIONS:
            raise SearchError(f"the space's last {MAX_BAD_SUGGESTIONS} suggestions all failed (last: {reason}); "
                              "fix the space") from None
