"""``--time-budget`` for the whole command: stop the search while the retrain still fits.

The budget counts from the start of the command and covers the retrain and the report too. The
retrain trains the best config on train + validation with a trial's resources, so its time is
estimated from the trials' own measured images per second: the median over every epoch
reported so far. A Tune ``Stopper`` (public API) ends the experiment once the time left is only
what is kept for the retrain (plus a margin for the test and the report), but never before one
trial has run every epoch: without a best config there is nothing to retrain, and the search
goes on to Tune's ``time_budget_s``, its hard cap.

What is kept is the larger of the retrain's estimate at ``--max-epochs`` and a share of the
budget; the retrain then trains for as many epochs as that time affords (``epochs_that_fit``),
up to the paper's images seen. Why a share, not just ``--max-epochs``: at equal wall time, one
run of the paper's recipe for the whole budget beat a search whose retrain ran ``--max-epochs``,
and still beat one that kept half the budget for the retrain, because a short budget buys more
from epochs than from configs (benchmarks/README.md, "The default search against a hand-written
Optuna script", "Earlier runs"). Li, Yumer & Ramanan ("Budgeted Training", ICLR 2020) find the
same of budget-aware schedules, which is what one-cycle, cosine and linear decay over the
retrain's own epochs are.

The share (``retrain_share``, unless ``--retrain-share`` fixes it) is a function of the budget:
the search gets half of it, and less when that half affords fewer full trials than a search
needs before its sampler learns anything (its recipes and TPE's random start). In those runs
the search's half afforded fewer than half the full trials it needed, and its best was its
first recipe every time: its time bought nothing the retrain could not have used. With this
share the same comparison, rerun, beat both the paper's recipe alone and the hand-written script
in every seed (benchmarks/README.md, the same section, "Current numbers"; docs/time-budget.md
has the arithmetic). The driver prints the share and the retrain's epochs against the time
left, so a retrain that cannot fit is announced.
"""

from __future__ import annotations

import statistics
import time

from ray.tune import Stopper
from ray.tune.result import TIME_THIS_ITER_S

from .study import best_complete_trial

REPORT_MARGIN_S = 20.0  # the test pass, the report and Ray's shutdown after the search
SEARCH_SHARE = 0.5  # the most of --time-budget the search gets by default


def retrain_share(budget_s: float, trial_seconds: float, slots: int, trials_needed: int) -> float:
    """The share of ``budget_s`` kept for the retrain by default: half, more on a budget too short to search.

    ``trial_seconds``: one trial of ``--max-epochs`` as measured; ``slots``: trials at once;
    ``trials_needed``: the trials a search runs before its sampler models anything. The search's
    half then affords ``SEARCH_SHARE * budget_s * slots / trial_seconds`` full trials; when that
    is fewer than it needs, the search's share shrinks in proportion and the retrain gets the rest.
    """
    affordable = SEARCH_SHARE * budget_s * slots / trial_seconds
    return 1.0 - SEARCH_SHARE * min(1.0, affordable / max(1, trials_needed))


class RetrainDeadline(Stopper):
    """Stops all trials when ``now + kept for the retrain >= deadline`` (``time.monotonic`` seconds).

    ``retrain_images``: what the retrain must train at least (``--max-epochs`` or
    ``--retrain-epochs`` of train + validation); ``max_images``: the most it may train. With
    ``budget_s`` (the whole ``--time-budget``), a share of it is kept for the retrain even when
    the estimate is less: ``share``, or by default ``retrain_share`` of the trials' measured time.

    It stops nothing before the ``study`` holds a COMPLETE trial of this search, of this run or of
    one before a ``--resume``: that is the config to retrain. Read from the study, not from Tune's
    calls, the stop cannot come before the searcher has recorded that trial, whatever order Tune
    tells its searcher and its callbacks in.
    """

    def __init__(self, deadline: float, retrain_images: int, max_t: int, clock=time.monotonic, *, study=None,
                 budget_s: float | None = None, share: float | None = None, slots: int = 1,
                 trials_needed: int = 1, max_images: int | None = None) -> None:
        self.deadline, self.retrain_images, self.max_t, self.clock = deadline, retrain_images, max_t, clock
        self.budget_s, self.share, self.slots, self.trials_needed = budget_s, share, slots, trials_needed
        self.max_images = max_images
        self.speeds: list[float] = []  # training images/s of every epoch reported
        self.epoch_seconds: list[float] = []  # wall seconds of every epoch: training, validation, checkpoint
        self.study = study
        self._completed = False
        self.fired = False

    @property
    def completed(self) -> bool:
        """Whether the study holds a COMPLETE trial of this search: a config to retrain."""
        if not self._completed and self.study is not None:
            self._completed = best_complete_trial(self.study) is not None
        return self._completed

    def seconds_for(self, images: int) -> float | None:
        """Seconds to train ``images`` images at the median images/s of the epochs so far, plus the margin."""
        if not self.speeds:
            return None
        return images / statistics.median(self.speeds) + REPORT_MARGIN_S

    def share_kept(self) -> float | None:
        """The share of the budget kept for the retrain: ``share``, or ``retrain_share`` once an epoch was timed."""
        if self.budget_s is None or self.share is not None:
            return self.share
        if not self.epoch_seconds:
            return None
        trial_seconds = self.max_t * statistics.median(self.epoch_seconds)
        return retrain_share(self.budget_s, trial_seconds, self.slots, self.trials_needed)

    def retrain_seconds(self) -> float | None:
        """The seconds kept for the retrain: its estimate at ``retrain_images``, or its share if more.

        The share is capped at what ``max_images`` take: past them the search keeps the time.
        """
        estimate = self.seconds_for(self.retrain_images)
        if estimate is None:
            return None
        share = self.share_kept() or 0.0
        kept = share * self.budget_s + REPORT_MARGIN_S if self.budget_s else 0.0
        if self.max_images is not None:
            kept = min(kept, self.seconds_for(self.max_images))
        return max(estimate, kept)

    def epochs_that_fit(self, seconds_left: float, images_per_epoch: int, at_least: int) -> int:
        """Retrain epochs that the time kept affords at the trials' median speed; at least ``at_least``.

        The time kept, or ``seconds_left`` if less: a search that ended early, every trial done,
        leaves its spare time unspent rather than retraining for hours. The trials' speed is a
        lower bound for the retrain, which on one machine takes every core.
        """
        kept = self.retrain_seconds()
        if kept is None:
            return at_least
        fit = int((min(seconds_left, kept) - REPORT_MARGIN_S) * statistics.median(self.speeds) / images_per_epoch)
        if self.max_images is not None:
            fit = min(fit, self.max_images // images_per_epoch)
        return max(at_least, fit)

    def describe(self) -> dict:
        """What ``search.json`` records of the split: the share kept and what it was computed from."""
        return {"retrain_share": self.share_kept(), "share_fixed": self.share is not None,
                "trial_seconds": self.max_t * statistics.median(self.epoch_seconds) if self.epoch_seconds else None,
                "slots": self.slots, "trials_needed": self.trials_needed}

    def split_note(self) -> str:
        """``; 85% of the budget kept for it: ...`` for the retrain's note, or "" when no share applies."""
        share, split = self.share_kept(), self.describe()
        if not share or self.budget_s is None:
            return ""
        if self.share is not None:
            return f"; {share:.0%} of the budget kept for it (--retrain-share)"
        affordable = SEARCH_SHARE * self.budget_s * self.slots / split["trial_seconds"]
        return (f"; {share:.0%} of the budget kept for it: the search's half afforded about {affordable:.1f} full "
                f"trials of the {self.trials_needed} it needs before TPE models them (--retrain-share sets it)")

    def __call__(self, trial_id: str, result: dict) -> bool:
        if result.get("images_per_second"):
            self.speeds.append(float(result["images_per_second"]))
        if result.get(TIME_THIS_ITER_S):  # Tune's own timing of the epoch
            self.epoch_seconds.append(float(result[TIME_THIS_ITER_S]))
        return False

    def stop_all(self) -> bool:
        estimate = self.retrain_seconds()
        if self.completed and estimate is not None and self.clock() + estimate >= self.deadline:
            self.fired = True
        return self.fired
