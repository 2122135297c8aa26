"""``PruneAwareOptunaSearch``: Ray Tune's OptunaSearch, telling Optuna how each trial really ended.

Ray's stock ``OptunaSearch.on_trial_complete`` tells Optuna every trial that stopped with a
result as COMPLETE, so a trial that ASHA stopped after 2 of 30 epochs enters the study as a
*finished* trial with its early, low accuracy. TPE then models those as real outcomes of their
configs, and every Optuna plot (history, importances, slice) mixes 2-epoch and 30-epoch
accuracies. Here a trial that reports fewer than ``max_t`` iterations is told PRUNED (Optuna
keeps its intermediate values, and TPE treats pruned trials by how far they got), only trials
that ran the whole budget are COMPLETE, and a diverged or crashed trial is FAIL
(``search.states.outcome`` decides which).
"""

from __future__ import annotations

import math
import sys

import optuna
from ray.tune.search.optuna import OptunaSearch

from model.config import RunConfig

from .errors import SearchError
from .internals import require_internals
from .states import finish, outcome


MAX_BAD_SUGGESTIONS = 20  # in a row: the space is broken, not unlucky


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records early-stopped trials as PRUNED and failures as FAIL."""

    def __init__(self, *args, max_t: int, time_attr: str = "training_iteration", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # What this class reads and writes of Ray's OptunaSearch: its Optuna trial per Tune trial,
        # the Tune trials already told, and its study (set up now or by set_search_properties).
        require_internals(self, "_ot_trials", "_completed_trials", "_ot_study")
        self._max_t = max_t
        self._time_attr = time_attr

    def suggest(self, trial_id: str) -> dict | None:
        try:
            config = super().suggest(trial_id)
            if config is not None:
                # What the trial would build, checked now: a bad suggestion fails here once, not in
                # three retries of a trial. The search sets epochs, seed and device, so defaults do.
                RunConfig.from_dict({**RunConfig().to_dict(), **config})
        except (Exception, SystemExit) as e:  # a user's space that breaks mid-search
            self._fail_suggestion(trial_id, e)
            return None  # Tune asks again: the next suggestion is a new Optuna trial
        self._bad_in_a_row = 0
        # Lets the driver tie each Optuna trial to its Tune trial (trials.csv, clean-up).
        self._ot_trials[trial_id].set_user_attr("ray_trial_id", trial_id)
        return config

    def _fail_suggestion(self, trial_id: str, e: BaseException) -> None:
        """Tell the study the suggestion for ``trial_id`` FAILed, with why, in one line on the terminal."""
        reason = f"invalid suggestion: {e.__class__.__name__}: {e}"
        ot_trial = self._ot_trials.pop(trial_id, None)
        if ot_trial is not None:
            finish(self._ot_study, ot_trial, optuna.trial.TrialState.FAIL, attrs={"fail_reason": reason})
        number = f"trial {ot_trial.number}" if ot_trial is not None else "a trial"
        print(f"error: {number} FAIL, {reason}; the search goes on", file=sys.stderr, flush=True)
        self._bad_in_a_row = getattr(self, "_bad_in_a_row", 0) + 1
        if self._bad_in_a_row >= MAX_BAD_SUGGESTIONS:
            raise SearchError(f"the space's last {MAX_BAD_SUGGESTIONS} suggestions all failed (last: {reason}); "
                              "fix the space") from None

    def _stored(self, ot_trial: optuna.Trial) -> optuna.trial.FrozenTrial:
        """The trial as the study holds it now (it may have been told before the driver died)."""
        trials, n = self._ot_study.get_trials(deepcopy=False), ot_trial.number
        return trials[n] if n < len(trials) and trials[n].number == n else next(t for t in trials if t.number == n)

    def _report(self, ot_trial: optuna.Trial, result: dict, reported: dict) -> None:
        value, step = result.get(self.metric), result.get(self._time_attr)
        if value is not None and math.isfinite(value) and step is not None and step not in reported:
            ot_trial.report(value, step)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        stored = self._stored(ot_trial)
        if stored.state.is_finished():
            # A trial re-run after a resume, already told before the driver died.
            self._completed_trials.add(trial_id)
            return
        self._report(ot_trial, result, stored.intermediate_values)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        self._completed_trials.add(trial_id)
        stored = self._stored(ot_trial)
        if stored.state.is_finished():
            return
        if result and not result.get("diverged"):
            # Tune hands the result that made ASHA stop a trial (and a trial's last one) only
            # to on_trial_complete: it is the learning curve's last point.
            self._report(ot_trial, result, stored.intermediate_values)
        state, value, attrs = outcome(result, error, self.metric, self._time_attr, self._max_t)
        finish(self._ot_study, ot_trial, state, value, attrs)
