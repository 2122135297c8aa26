"""``PersistentASHA``: Ray Tune's ASHA scheduler, whose rungs and decisions survive a resumed search.

``Tuner.restore`` brings the scheduler back as it was pickled at the start, with empty rungs, so
after a resume ASHA would let every trial through its next rung (nothing to compare with). This
subclass writes its rungs and its stop decisions to a JSON file after every change and reads them
back when a restored search first uses it, so a resumed search stops exactly the trials the
interrupted one would have.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from model.checkpoint import write_json

from .internals import require_internals


class PersistentASHA(ASHAScheduler):
    """ASHA whose rung records and stop decisions survive a restore of the search."""

    def __init__(self, *args, state_path: str | os.PathLike, resume: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # What this class reads and writes of Ray's ASHA: its brackets and their rungs (the records
        # it saves and restores), its per-trial info, its stop count, and its time attribute and max_t.
        require_internals(self, "_brackets", "_trial_info", "_num_stopped", "_time_attr", "_max_t")
        require_internals(self._brackets[0], "_rungs", user=type(self).__name__)
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
        write_json(Path(self._state_path), {
            "brackets": [
                [{"milestone": milestone, "recorded": recorded} for milestone, recorded in bracket._rungs]
                for bracket in self._brackets
            ],
            "stopped_at": self._stopped_at,
            "num_stopped": self._num_stopped,
        })

    def rebuild(self, trials) -> int:
        """Rungs from the study's trials when the state file is lost; returns how many records were rebuilt.

        Each reported epoch is a trial's intermediate value, so every rung's record (the trial's
        val_acc at the milestone) is there; the searcher tags each trial with its Tune id.
        """
        records = 0
        for bracket in self._brackets:
            for milestone, recorded in bracket._rungs:
                for t in trials:
                    value = t.intermediate_values.get(int(milestone))
                    if "ray_trial_id" in t.user_attrs and value is not None:
                        recorded[t.user_attrs["ray_trial_id"]] = value
                        records += 1
        # ASHA counts a STOP for every trial it pruned and every one that reached max_t.
        self._num_stopped = sum(t.state.name == "COMPLETE" or (t.state.name == "PRUNED" and "stopped_by" not in
                                                                t.user_attrs) for t in trials)
        self._save()
        return records

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
