"""Ray Tune's OptunaSearch and ASHA, with the two fixes this project needs.

``PruneAwareOptunaSearch``: Ray's stock ``OptunaSearch.on_trial_complete`` tells Optuna every
trial that stopped with a result as COMPLETE, so a trial that ASHA stopped after 2 of 30 epochs
enters the study as a *finished* trial with its early, low accuracy. TPE then models those as
real outcomes of their configs, and every Optuna plot (history, importances, slice) mixes
2-epoch and 30-epoch accuracies. Here a trial that reports fewer than ``max_t`` iterations
is told PRUNED (Optuna keeps its intermediate values, and TPE treats pruned trials by how far
they got), only trials that ran the whole budget are COMPLETE, and a diverged or crashed trial
is FAIL.

``PersistentASHA``: ``Tuner.restore`` brings the scheduler back as it was pickled at the start,
with empty rungs, so after a resume ASHA would let every trial through its next rung (nothing to
compare with). This subclass writes its rungs and its stop decisions to a JSON file after
every change and reads them back when a restored search first uses it, so a resumed search
stops exactly the trials the interrupted one would have.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import optuna
from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

logger = logging.getLogger(__name__)
TESTED_RAY = "2.60"


class RayInternalsError(RuntimeError):
    """The installed Ray lacks an internal these subclasses build on."""


def require_internals(obj, *names: str) -> None:
    """Fail at once, in one line, if this Ray's ``obj`` lacks attributes the subclass relies on.

    Both subclasses extend Ray's classes through their private state (Ray has no public hook
    for either fix). A Ray release that renames it must refuse to start, not corrupt a study.
    """
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        import ray

        raise RayInternalsError(
            f"ray {ray.__version__}: {type(obj).__mro__[1].__name__} has no {', '.join(missing)}, which "
            f"search.schedulers relies on; install the tested Ray: pip install 'ray[tune]=={TESTED_RAY}.*'")


class PruneAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that records early-stopped trials as PRUNED and failures as FAIL."""

    def __init__(self, *args, max_t: int, time_attr: str = "training_iteration", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        require_internals(self, "_ot_trials", "_completed_trials", "_setup_study")
        self._max_t = max_t
        self._time_attr = time_attr

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        # Lets the driver tie each Optuna trial to its Tune trial (trials.csv, clean-up).
        self._ot_trials[trial_id].set_user_attr("ray_trial_id", trial_id)
        return config

    def _stored(self, ot_trial: optuna.Trial) -> optuna.trial.FrozenTrial:
        return self._ot_study._storage.get_trial(ot_trial._trial_id)

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
        value = (result or {}).get(self.metric)
        iterations = (result or {}).get(self._time_attr, 0)
        if result and not result.get("diverged"):
            # Tune hands the result that made ASHA stop a trial (and a trial's last one) only
            # to on_trial_complete: it is the learning curve's last point.
            self._report(ot_trial, result, stored.intermediate_values)
        if error or not result or result.get("diverged") or value is None or not math.isfinite(value):
            state, value = TrialState.FAIL, None
            ot_trial.set_user_attr("fail_reason", "diverged" if result and result.get("diverged") else "error")
        elif iterations >= self._max_t:
            state = TrialState.COMPLETE
        else:
            # Optuna takes a pruned trial's value from its last intermediate value.
            state, value = TrialState.PRUNED, None
        if result:
            ot_trial.set_user_attr("epochs", int(iterations))
            ot_trial.set_user_attr("wall_seconds", float(result.get("time_total_s", 0.0)))
            for key in ("node", "node_ip"):
                if key in result:
                    ot_trial.set_user_attr(key, result[key])
        self._ot_study.tell(ot_trial, value, state=state)


class PersistentASHA(ASHAScheduler):
    """ASHA whose rung records and stop decisions survive a restore of the search."""

    def __init__(self, *args, state_path: str | os.PathLike, resume: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        require_internals(self, "_brackets", "_trial_info", "_num_stopped", "_time_attr", "_max_t")
        require_internals(self._brackets[0], "_rungs")
        self._state_path = str(Path(state_path).resolve())
        self._stopped_at: dict[str, int] = {}  # trial id -> the rung at which ASHA stopped it
        self._loaded = not resume

    def __setstate__(self, state: dict) -> None:
        # Only ``Tuner.restore`` unpickles the scheduler: read back the rungs and decisions
        # persisted since the search started (public API only; no reach into the tuner).
        self.__dict__.update(state)
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        if not os.path.exists(self._state_path):
            return
        with open(self._state_path) as f:
            state = json.load(f)
        for bracket, rungs in zip(self._brackets, state["brackets"]):
            for (milestone, recorded), saved in zip(bracket._rungs, rungs):
                if float(saved["milestone"]) != float(milestone):
                    raise ValueError(f"{self._state_path} was written for other ASHA settings; resume with the same ones")
                recorded.update(saved["recorded"])
        self._stopped_at.update(state["stopped_at"])
        self._num_stopped = state["num_stopped"]

    def _save(self) -> None:
        state = {
            "brackets": [
                [{"milestone": milestone, "recorded": recorded} for milestone, recorded in bracket._rungs]
                for bracket in self._brackets
            ],
            "stopped_at": self._stopped_at,
            "num_stopped": self._num_stopped,
        }
        tmp = self._state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self._state_path)

    def on_trial_add(self, tune_controller, trial) -> None:
        if not self._loaded:
            self._load()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if not self._loaded:
            self._load()
        stopped_at = self._stopped_at.get(trial.trial_id)
        if stopped_at is not None and result.get(self._time_attr, 0) >= stopped_at:
            # Re-run from an older checkpoint after a resume: the decision was already made.
            return TrialScheduler.STOP
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and result[self._time_attr] < self._max_t:
            self._stopped_at[trial.trial_id] = int(result[self._time_attr])
        self._save()
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if trial.trial_id not in self._trial_info:
            return  # already completed before a resume
        super().on_trial_complete(tune_controller, trial, result)
        self._save()
