"""One compact progress display for a search, in place of Tune's repeated status table.

On a terminal it is one tqdm bar, redrawn in place: trials done of N (complete, pruned, failed),
running, best val_acc so far and its trial, trial-epochs spent, elapsed time and an estimated
time left. When the output is not a terminal (a log file, ``ray job logs``) it prints one plain
line per finished trial instead, and a summary line at the end in both cases.

Example::

    callbacks = progress_callbacks(num_samples=8, max_epochs=4, verbose=False, stream=sys.stdout,
                                   grace_period=2, reduction_factor=3)
    tune.Tuner(..., run_config=tune.RunConfig(callbacks=callbacks, verbose=0, ...))

The estimate assumes ASHA lets ``1/reduction_factor`` of the trials through each rung and that
every trial-epoch takes the mean epoch time measured so far, spread over as many trials at once
as have been seen running. It is printed with a "~" and "est." because both are guesses.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from typing import Callable, TextIO

from ray.tune import Callback
from tqdm import tqdm

from .constants import METRIC

COMPLETE, PRUNED, BUDGET, FAILED = "complete", "pruned", "cut by the time budget", "failed"
REDRAW_S = 1.0  # the bar's elapsed time and ETA are redrawn at most this often


def progress_callbacks(num_samples: int, max_epochs: int, verbose: bool = False, stream: TextIO | None = None, *,
                       grace_period: int | None = None, reduction_factor: float | None = None,
                       deadline_s: float | None = None, retrain=None) -> list[Callback]:
    """The callbacks to add to ``RunConfig(callbacks=...)``: ``[SearchProgress(...)]``, or ``[]`` when verbose.

    With ``verbose`` Tune's own table is wanted instead, and two displays would overwrite each other.
    ``grace_period``/``reduction_factor``: ASHA's, for the estimate (None: every trial runs
    ``max_epochs``). ``deadline_s``: the ``TuneConfig(time_budget_s=...)`` of the run, if any;
    ``retrain``: the ``RetrainDeadline`` that ends the search earlier, to keep time for the retrain.
    """
    if verbose:
        return []
    return [SearchProgress(num_samples, max_epochs, stream=stream, grace_period=grace_period,
                           reduction_factor=reduction_factor, deadline_s=deadline_s, retrain=retrain)]


def asha_rungs(max_epochs: int, grace_period: int | None, reduction_factor: float | None) -> list[int]:
    """The epochs at which ASHA decides to stop or continue a trial, below ``max_epochs``.

    The same milestones as Ray's ``ASHAScheduler`` (one bracket): ``grace * rf**k``.
    """
    if grace_period is None or reduction_factor is None or grace_period >= max_epochs:
        return []
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1)
    return [m for m in (grace_period * reduction_factor ** k for k in range(count)) if m < max_epochs]


def expected_epochs_left(done: int, max_epochs: int, rungs: list[int], reduction_factor: float | None) -> float:
    """Epochs a trial that has run ``done`` epochs is expected to still run.

    Past each rung ahead of it, only ``1/reduction_factor`` of the trials go on, so the epochs
    after the j-th rung ahead count ``reduction_factor**-j`` each.
    """
    left, start, weight = 0.0, done, 1.0
    for milestone in [r for r in rungs if r > done] + [max_epochs]:
        left += (milestone - start) * weight
        start = milestone
        weight /= reduction_factor or 1.0
    return max(left, 0.0)


def format_duration(seconds: float) -> str:
    """45s, 3m05s, 1h02m."""
    seconds = int(round(max(seconds, 0)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class SearchProgress(Callback):
    """A Tune ``Callback`` that keeps the search's counts and shows them (see the module docstring).

    It reads only what Tune hands every callback: trial ids, statuses and results
    (``training_iteration``, ``time_this_iter_s``, ``val_acc``, ``diverged``).
    """

    def __init__(self, num_samples: int, max_epochs: int, *, stream: TextIO | None = None,
                 grace_period: int | None = None, reduction_factor: float | None = None,
                 deadline_s: float | None = None, retrain=None, clock: Callable[[], float] = time.monotonic):
        self.num_samples, self.max_epochs = num_samples, max_epochs
        self.retrain = retrain  # search.deadline.RetrainDeadline, or None
        self.stream = stream if stream is not None else sys.stdout
        self.rungs = asha_rungs(max_epochs, grace_period, reduction_factor)
        self.reduction_factor = reduction_factor
        self.clock = clock
        self.deadline_s = deadline_s
        self.start = self.deadline = None
        self.setup()
        self.epochs: dict[str, int] = {}  # trial id -> epochs reported
        self.outcome: dict[str, str] = {}  # trial id -> COMPLETE/PRUNED/BUDGET/FAILED, once finished
        self.running: set[str] = set()
        self.peak_running = 0
        self.epoch_seconds, self.epochs_timed = 0.0, 0
        self.best: tuple[float, str] | None = None  # (val_acc, trial id)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = None
        self._drawn = -math.inf

    # -- Tune's hooks -----------------------------------------------------------------------

    def setup(self, **info):
        """Start the clocks; Tune calls this when the run (or a restored run) starts."""
        self.start = self.clock()
        self.deadline = None if self.deadline_s is None else self.start + self.deadline_s

    def __getstate__(self):
        # Tune pickles its callbacks with the experiment; a stream and a bar do not pickle.
        state = dict(self.__dict__, _bar=None)
        state["stream"] = None if state["stream"] in (sys.stdout, sys.stderr) else state["stream"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.stream is None:
            self.stream = sys.stdout

    def on_trial_start(self, iteration, trials, trial, **info):
        self._mark_running(trial.trial_id)
        self._draw(force=True)

    on_trial_restore = on_trial_start

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if trial.trial_id in self.outcome:
            return
        self._mark_running(trial.trial_id)
        if "training_iteration" in result:
            self.epochs[trial.trial_id] = int(result["training_iteration"])
        if result.get("time_this_iter_s") is not None:
            self.epoch_seconds += float(result["time_this_iter_s"])
            self.epochs_timed += 1
        value = result.get(METRIC)
        if value is not None and math.isfinite(value) and (self.best is None or value > self.best[0]):
            self.best = (float(value), trial.trial_id)
        self._draw()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, self._classify(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, FAILED)

    def on_step_end(self, iteration, trials, **info):
        self._draw()

    def on_experiment_end(self, trials, **info):
        # Trials that Tune ended at the time budget without a completion hook still count;
        # others left running (an interrupted search) are summed up as unfinished.
        for trial in trials:
            if trial.trial_id in self.running and self._budget_over():
                self._finish(trial, self._classify(trial))
        if self._bar is not None:
            self._draw(force=True)
            self._bar.close()
            self._bar = None
        print(self.summary_line(), file=self.stream, flush=True)

    # -- What is shown ----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        found = {k: 0 for k in (COMPLETE, PRUNED, BUDGET, FAILED)}
        for outcome in self.outcome.values():
            found[outcome] += 1
        return found

    def eta_seconds(self) -> float | None:
        """Estimated seconds until the search ends, or None before any epoch was timed."""
        if self.epochs_timed == 0:
            return None
        not_started = max(self.num_samples - len(self.outcome) - len(self.running), 0)
        work = sum(expected_epochs_left(self.epochs.get(t, 0), self.max_epochs, self.rungs, self.reduction_factor)
                   for t in self.running)
        work += not_started * expected_epochs_left(0, self.max_epochs, self.rungs, self.reduction_factor)
        # The trials left cannot use more slots than there are trials left.
        parallel = max(1, min(self.peak_running, len(self.running) + not_started))
        eta = work * (self.epoch_seconds / self.epochs_timed) / parallel
        end = self.search_end()
        if end is not None:
            eta = min(eta, max(end - self.clock(), 0.0))
        return eta

    def search_end(self) -> float | None:
        """When the time budget ends the search: Tune's cap, or earlier the moment the retrain still fits."""
        ends = [self.deadline] if self.deadline is not None else []
        if self.retrain is not None and self.retrain.completed and self.retrain.retrain_seconds() is not None:
            # RetrainDeadline stops the search only once a trial ran every epoch (something to retrain).
            ends.append(self.retrain.deadline - self.retrain.retrain_seconds())
        return min(ends) if ends else None

    def status_text(self) -> str:
        """done/N and running, elapsed time and the estimate, best, the outcomes, trial-epochs."""
        c = self.counts()
        # Most wanted first: a narrow terminal trims the line from the right.
        parts = [f"{len(self.outcome)}/{self.num_samples} trials done, {len(self.running)} running"]
        eta = self.eta_seconds()
        timing = f"{format_duration(self.clock() - self.start)} elapsed"
        if eta is None:
            timing += ", ETA after the first epoch"
        else:
            end = self.search_end()
            budget = end is not None and eta >= end - self.clock() - 1e-9
            timing += f", ETA ~{format_duration(eta)} (est.{', time budget' if budget else ''})"
        parts.append(timing)
        if self.best is not None:
            parts.append(f"best {METRIC} {self.best[0]:.4f} ({self.best[1]})")
        parts.append(f"{c[COMPLETE]} complete, {c[PRUNED]} pruned, {c[FAILED]} failed"
                     + (f", {c[BUDGET]} cut by budget" if c[BUDGET] else ""))
        parts.append(f"{sum(self.epochs.values())} trial-epochs")
        return " | ".join(parts)

    def trial_line(self, trial_id: str) -> str:
        """The plain line printed when a trial finishes, for output that is not a terminal."""
        outcome = self.outcome[trial_id]
        epochs = self.epochs.get(trial_id, 0)
        verb = {COMPLETE: "complete", PRUNED: "pruned by ASHA", BUDGET: "cut by the time budget",
                FAILED: "failed"}[outcome]
        return (f"[{format_duration(self.clock() - self.start):>6}] trial {trial_id} {verb} at epoch "
                f"{epochs}/{self.max_epochs} | {self.status_text()}")

    def summary_line(self) -> str:
        c = self.counts()
        best = f"; best {METRIC} {self.best[0]:.4f} ({self.best[1]})" if self.best else ""
        budget = f", {c[BUDGET]} cut by the time budget" if c[BUDGET] else ""
        unfinished = f", {len(self.running)} unfinished" if self.running else ""
        return (f"search ended after {format_duration(self.clock() - self.start)}: {len(self.outcome)}/"
                f"{self.num_samples} trials ({c[COMPLETE]} complete, {c[PRUNED]} pruned by ASHA{budget}, "
                f"{c[FAILED]} failed{unfinished}), {sum(self.epochs.values())} trial-epochs{best}")

    # -- Bookkeeping ------------------------------------------------------------------------

    def _mark_running(self, trial_id: str) -> None:
        if trial_id not in self.outcome:
            self.running.add(trial_id)
            self.peak_running = max(self.peak_running, len(self.running))

    def _classify(self, trial) -> str:
        result = getattr(trial, "last_result", None) or {}
        epochs = int(result.get("training_iteration", self.epochs.get(trial.trial_id, 0)))
        if getattr(trial, "status", None) == "ERROR" or result.get("diverged"):
            return FAILED
        if epochs >= self.max_epochs:
            return COMPLETE
        return BUDGET if self._budget_over() else PRUNED

    def _budget_over(self) -> bool:
        # Tune's own budget clock starts a moment after this one: a second of slack.
        return self.deadline is not None and self.clock() >= self.deadline - 1.0

    def _finish(self, trial, outcome: str) -> None:
        if trial.trial_id in self.outcome:
            return
        self.outcome[trial.trial_id] = outcome
        self.running.discard(trial.trial_id)
        if self.tty:
            self._draw(force=True)
        else:
            print(self.trial_line(trial.trial_id), file=self.stream, flush=True)

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = self.clock()
        if not force and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        # The terminal's size now (it may have been resized). tqdm's own probe can answer -1
        # (a pty with no size, as under `script`), and then it draws nothing.
        cols, rows = shutil.get_terminal_size((120, 24))
        if self._bar is None:
            self._bar = tqdm(total=self.num_samples, file=self.stream, leave=True, ncols=cols, nrows=rows,
                             bar_format="{bar:10}| {desc}")
        self._bar.ncols, self._bar.nrows = cols, rows
        self._bar.n = len(self.outcome)
        self._bar.set_description_str(self.status_text(), refresh=False)
        self._bar.refresh()
