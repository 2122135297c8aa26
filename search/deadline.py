"""``--time-budget`` for the whole command: stop the search while the retrain still fits.

The budget counts from the start of the command and covers the retrain and the report too. The
retrain trains the best config on train + validation with a trial's resources, so its time is
estimated from the trials' own measured images per second: the median over every epoch
reported so far. A Tune ``Stopper`` (public API) ends the experiment once the time left is only
what is kept for the retrain (plus a margin for the test and the report), but never before one
trial has run every epoch: without a best config there is nothing to retrain, and the search
goes on to Tune's ``time_budget_s``, its hard cap.

What is kept is the larger of the retrain's estimate at ``--max-epochs`` and ``--retrain-share``
of the budget; the retrain then trains for as many epochs as that time affords
(``epochs_that_fit``). Why a share, not just ``--max-epochs``: at equal wall time, one run of the
paper's recipe for the whole budget beat a search whose retrain ran ``--max-epochs`` by 8 points
of test accuracy (README, "The default search against a hand-written Optuna script", 12 epochs
on 2,000 images, seed 0; with half the budget kept, by 1.2 points over 3 seeds), because a
short budget buys more from epochs than from configs. Li, Yumer & Ramanan ("Budgeted Training",
ICLR 2020) find the same of budget-aware schedules, which is what one-cycle, cosine and linear
decay over the retrain's own epochs are. The driver prints the
retrain's epochs and estimate against the time left, so a retrain that cannot fit is announced.
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

    def __init__(self, deadline: float, retrain_images: int, max_t: int, clock=time.monotonic,
                 reserve_s: float = 0.0) -> None:
        self.deadline, self.retrain_images, self.max_t, self.clock = deadline, retrain_images, max_t, clock
        self.reserve_s = reserve_s  # --retrain-share of the budget, kept even if the estimate is less
        self.speeds: list[float] = []
        self.completed = False  # a trial ran all max_t epochs: there is a config to retrain
        self.fired = False

    def seconds_for(self, images: int) -> float | None:
        """Seconds to train ``images`` images at the median images/s of the epochs so far, plus the margin."""
        if not self.speeds:
            return None
        return images / statistics.median(self.speeds) + REPORT_MARGIN_S

    def retrain_seconds(self) -> float | None:
        """The seconds kept for the retrain: its estimate at ``retrain_images``, or the reserve if more."""
        estimate = self.seconds_for(self.retrain_images)
        return None if estimate is None else max(estimate, self.reserve_s + REPORT_MARGIN_S)

    def epochs_that_fit(self, seconds_left: float, images_per_epoch: int, at_least: int) -> int:
        """Retrain epochs that the time kept affords at the trials' median speed; at least ``at_least``.

        The time kept, or ``seconds_left`` if less: a search that ended early, every trial done,
        leaves its spare time unspent rather than retraining for hours. The trials' speed is a
        lower bound for the retrain, which on one machine takes every core.
        """
        kept = self.retrain_seconds()
        if kept is None:
            return at_least
        fit = (min(seconds_left, kept) - REPORT_MARGIN_S) * statistics.median(self.speeds) / images_per_epoch
        return max(at_least, int(fit))

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
