"""``--time-budget`` for the whole command: stop the search while the retrain still fits.

The budget counts from the start of the command and covers the retrain and the report too. The
retrain trains the best config for ``retrain_epochs`` on train + validation with a trial's
resources, so its time is estimated from the trials' own measured images per second: the
median over every epoch reported so far. A Tune ``Stopper`` (public API) ends the experiment
once the time left is only that estimate (plus a margin for the test and the report), but
never before one trial has run every epoch: without a best config there is nothing to retrain,
and the search goes on to Tune's ``time_budget_s``, its hard cap. The driver then prints the
retrain's estimate against the time left, so a retrain that cannot fit is announced.
"""

from __future__ import annotations

import statistics
import time

from ray.tune import Callback, Stopper

REPORT_MARGIN_S = 20.0  # the test pass, the report and Ray's shutdown after the search


class RetrainDeadline(Stopper, Callback):
    """Stops all trials when ``now + estimated retrain >= deadline`` (``time.monotonic`` seconds).

    Also a Tune ``Callback``: Tune calls a callback's ``on_trial_complete`` only after the
    searcher has recorded the trial (COMPLETE in the study), so a stop that follows cannot lose
    the last result of the trial that made it possible.
    """

    def __init__(self, deadline: float, retrain_images: int, max_t: int, clock=time.monotonic) -> None:
        self.deadline, self.retrain_images, self.max_t, self.clock = deadline, retrain_images, max_t, clock
        self.speeds: list[float] = []
        self.completed = False  # a trial ran all max_t epochs: there is a config to retrain
        self.fired = False

    def retrain_seconds(self) -> float | None:
        """The retrain's estimated seconds, from the median images/s of the epochs so far."""
        if not self.speeds:
            return None
        return self.retrain_images / statistics.median(self.speeds) + REPORT_MARGIN_S

    def __call__(self, trial_id: str, result: dict) -> bool:
        if result.get("images_per_second"):
            self.speeds.append(float(result["images_per_second"]))
        return False

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        if result.get("training_iteration", 0) >= self.max_t and not result.get("diverged"):
            self.completed = True

    def stop_all(self) -> bool:
        estimate = self.retrain_seconds()
        if self.completed and estimate is not None and self.clock() + estimate >= self.deadline:
            self.fired = True
        return self.fired
