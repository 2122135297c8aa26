"""One compact progress display for a search, in place of Tune's repeated status table.

On a terminal it is one tqdm bar, redrawn in place: trials done of N (complete, pruned, failed),
running, best val_acc so far and its trial, trial-epochs spent, elapsed time and an estimated
time left, and where the running trials are inside their epochs. When the output is not a
terminal (a log file, ``ray job logs``) it prints one plain line per finished trial instead, and
a status line when nothing was printed for a minute; a summary line ends both.

Example::

    callbacks = progress_callbacks(study, num_samples=8, max_epochs=4, verbose=False, stream=sys.stdout,
                                   grace_period=2, reduction_factor=3)
    tune.Tuner(..., run_config=tune.RunConfig(callbacks=callbacks, verbose=0, ...))

The estimate assumes ASHA lets ``1/reduction_factor`` of the trials through each rung and that
every trial-epoch takes the mean epoch time measured so far (before the first, the plan's
measured speed), spread over as many trials at once as have been seen running. It is printed
with a "~" and "est." because both are guesses.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from typing import Callable, TextIO

from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.result import TIME_THIS_ITER_S
from tqdm import tqdm

from .constants import METRIC
from .study import (BUDGET, COMPLETE, FAILED, PRUNED, EPOCH, EPOCHS, best_complete_trial, count_trials,
                    is_sample, label, outcome, own_trials)
from .tune.scheduler import asha_rungs
from .tune.searcher import study_number

REDRAW_S = 1.0  # the bar's elapsed time and ETA are redrawn at most this often
HEARTBEAT_S = 60.0  # in a log, a status line when nothing else was printed for this long while trials train


def progress_callbacks(study, num_samples: int, max_epochs: int, verbose: bool = False,
                       stream: TextIO | None = None, *, grace_period: int | None = None,
                       reduction_factor: float | None = None, deadline_s: float | None = None,
                       retrain=None, plan=None) -> list[Callback]:
    """The callbacks to add to ``RunConfig(callbacks=...)``: ``[SearchProgress(...)]``, or ``[]`` when verbose.

    With ``verbose`` Tune's own table is wanted instead, and two displays would overwrite each other.
    ``study``: the search's, whose finished trials (a resumed search's) are counted from the start;
    ``plan``: the search's ``search.plan.Plan``, whose measured speed places the first epochs.
    ``grace_period``/``reduction_factor``: ASHA's, for the estimate (None: every trial runs
    ``max_epochs``). ``deadline_s``: the ``TuneConfig(time_budget_s=...)`` of the run, if any;
    ``retrain``: the ``RetrainDeadline`` that ends the search earlier, to keep time for the retrain.
    """
    if verbose:
        return []
    return [SearchProgress(num_samples, max_epochs, study=study, stream=stream, grace_period=grace_period,
                           reduction_factor=reduction_factor, deadline_s=deadline_s, retrain=retrain,
                           planned_epoch_s=plan.epoch_seconds() if plan is not None else None)]


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

    It reads what Tune hands every callback (trials, their statuses and results: ``epoch``,
    ``time_this_iter_s``, ``val_acc``, ``diverged``) and, given the ``study``, how each trial
    ended there, and the trials an interrupted search had finished before this run. Trials are
    named by their number in the study, as ``trials.csv`` and the report name them.
    """

    def __init__(self, num_samples: int, max_epochs: int, *, study=None, stream: TextIO | None = None,
                 grace_period: int | None = None, reduction_factor: float | None = None,
                 deadline_s: float | None = None, retrain=None, planned_epoch_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.num_samples, self.max_epochs, self.study = num_samples, max_epochs, study
        self.retrain = retrain  # search.deadline.RetrainDeadline, or None
        self.stream = stream if stream is not None else sys.stdout
        self.rungs = asha_rungs(max_epochs, grace_period, reduction_factor)
        self.reduction_factor = reduction_factor
        # An epoch's seconds as the plan estimated them from its measured speed, until epochs are timed.
        self.planned_epoch_s = planned_epoch_s
        self.clock = clock
        self.deadline_s = deadline_s
        self.start = self.deadline = None
        self.epochs: dict[int | str, int] = {}  # trial -> epochs reported
        self.outcome: dict[int | str, str] = {}  # trial -> COMPLETE/PRUNED/BUDGET/FAILED, once finished
        self.running: dict[int | str, float] = {}  # trial -> when its current epoch began
        self.peak_running = 0
        self.epoch_seconds, self.epochs_timed = 0.0, 0
        self.best: tuple[float, int | str] | None = None  # (val_acc of a COMPLETE trial, the trial)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar = None
        self._drawn = self._printed = -math.inf
        self.setup()

    # -- Tune's hooks -----------------------------------------------------------------------

    def setup(self, **info):
        """Start the clocks and count what the study already finished; Tune calls this when the run starts."""
        self.start = self._printed = self.clock()
        self.deadline = None if self.deadline_s is None else self.start + self.deadline_s
        if self.study is not None:
            for t in own_trials(self.study):
                if is_sample(t) and label(t) is not None:
                    self.outcome[t.number] = label(t)
                    self.epochs[t.number] = int(t.user_attrs.get(EPOCHS, len(t.intermediate_values)))
            best = best_complete_trial(self.study)
            self.best = (best.value, best.number) if best is not None else None

    def __getstate__(self):
        # Tune pickles its callbacks with the run's config (tuner.pkl); a stream and a bar do not pickle.
        state = dict(self.__dict__, _bar=None)
        state["stream"] = None if state["stream"] in (sys.stdout, sys.stderr) else state["stream"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.stream is None:
            self.stream = sys.stdout

    def on_trial_start(self, iteration, trials, trial, **info):
        self._mark_running(self._key(trial))
        self._draw(force=True)

    on_trial_restore = on_trial_start

    def on_trial_result(self, iteration, trials, trial, result, **info):
        key = self._key(trial)
        if key in self.outcome:
            return
        self._mark_running(key)
        if EPOCH in result:
            self.epochs[key] = int(result[EPOCH])
        if result.get(TIME_THIS_ITER_S) is not None:
            self.epoch_seconds += float(result[TIME_THIS_ITER_S])
            self.epochs_timed += 1
        self._draw()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, error=True)

    def on_step_end(self, iteration, trials, **info):
        self._draw()
        if not self.tty and self.running and self.clock() - self._printed >= HEARTBEAT_S:
            self._say(f"[{format_duration(self.clock() - self.start):>6}] {self.status_text()}")

    def on_experiment_end(self, trials, **info):
        # Trials that Tune ended at the time budget without a completion hook are cut by it;
        # others left running (an interrupted search) are summed up as unfinished.
        if self._budget_over():
            # Every trial the budget left unfinished is cut by it, those asked but not yet started included,
            # as the study then records them (search.study.prune_cut_by_budget).
            waiting = [t.number for t in own_trials(self.study, states=(TrialState.RUNNING,))] if self.study else []
            for key in [*self.running, *(n for n in waiting if n not in self.running and n not in self.outcome)]:
                self._record(key, BUDGET)
        if self._bar is not None:
            self._draw(force=True)
            self._bar.close()
            self._bar = None
        print(self.summary_line(), file=self.stream, flush=True)

    # -- What is shown ----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        found = {k: 0 for k in (COMPLETE, PRUNED, BUDGET, FAILED)}
        for ended in self.outcome.values():
            found[ended] += 1
        return found

    def eta_seconds(self) -> float | None:
        """Estimated seconds until the search ends, or None before any epoch was timed (or planned)."""
        if self.epoch_time() is None:
            return None
        not_started = max(self.num_samples - len(self.outcome) - len(self.running), 0)
        work = sum(expected_epochs_left(self.epochs.get(t, 0), self.max_epochs, self.rungs, self.reduction_factor)
                   for t in self.running)
        work += not_started * expected_epochs_left(0, self.max_epochs, self.rungs, self.reduction_factor)
        # The trials left cannot use more slots than there are trials left.
        parallel = max(1, min(self.peak_running, len(self.running) + not_started))
        eta = work * self.epoch_time() / parallel
        end = self.search_end()
        if end is not None:
            eta = min(eta, max(end - self.clock(), 0.0))
        return eta

    def epoch_time(self) -> float | None:
        """Seconds of one epoch: the mean measured so far, or before any, the plan's estimate."""
        if self.epochs_timed:
            return self.epoch_seconds / self.epochs_timed
        return self.planned_epoch_s

    def search_end(self) -> float | None:
        """When the time budget ends the search: Tune's cap, or earlier the moment the retrain still fits."""
        ends = [self.deadline] if self.deadline is not None else []
        if self.retrain is not None and self.retrain.completed and self.retrain.retrain_seconds() is not None:
            # RetrainDeadline stops the search only once a trial ran every epoch (something to retrain).
            ends.append(self.retrain.deadline - self.retrain.retrain_seconds())
        return min(ends) if ends else None

    def in_epoch(self) -> str:
        """Where the running trials are inside their epochs: ``trial 3 epoch 2/30 ~40%`` (est.), or ""."""
        seconds = self.epoch_time()
        parts = []
        for key, began in sorted(self.running.items(), key=lambda kv: str(kv[0]))[:4]:
            epoch = self.epochs.get(key, 0) + 1
            if epoch > self.max_epochs:
                continue
            done = f" ~{min(0.99, (self.clock() - began) / seconds):.0%}" if seconds else ""
            parts.append(f"{self._name(key)} epoch {epoch}/{self.max_epochs}{done}")
        return ", ".join(parts)

    def status_text(self) -> str:
        """done/N and running, elapsed time and the estimate, best, the outcomes, trial-epochs, the epochs under way."""
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
            parts.append(f"best {METRIC} {self.best[0]:.4f} ({self._name(self.best[1])})")
        parts.append(f"{c[COMPLETE]} complete, {c[PRUNED]} pruned, {c[FAILED]} failed"
                     + (f", {c[BUDGET]} cut by budget" if c[BUDGET] else ""))
        parts.append(f"{sum(self.epochs.values())} trial-epochs")
        under_way = self.in_epoch()
        if under_way:
            parts.append(under_way)
        return " | ".join(parts)

    def trial_line(self, key) -> str:
        """The plain line printed when a trial finishes, for output that is not a terminal."""
        return (f"[{format_duration(self.clock() - self.start):>6}] {self._name(key)} {self.outcome[key]} at epoch "
                f"{self.epochs.get(key, 0)}/{self.max_epochs} | {self.status_text()}")

    def summary_line(self) -> str:
        c = self.counts()
        best = f"; best {METRIC} {self.best[0]:.4f} ({self._name(self.best[1])})" if self.best else ""
        budget = f", {c[BUDGET]} {BUDGET}" if c[BUDGET] else ""
        unfinished = f", {len(self.running)} unfinished" if self.running else ""
        # Suggestions no trial could run are no trials (search.study.TrialCounts); Tune never saw them.
        invalid = count_trials(self.study).invalid if self.study is not None else 0
        invalid = f"; {invalid} invalid suggestion{'s' if invalid != 1 else ''} not run" if invalid else ""
        return (f"search ended after {format_duration(self.clock() - self.start)}: {len(self.outcome)}/"
                f"{self.num_samples} trials ({c[COMPLETE]} {COMPLETE}, {c[PRUNED]} {PRUNED}{budget}, "
                f"{c[FAILED]} {FAILED}{unfinished}{invalid}), {sum(self.epochs.values())} trial-epochs{best}")

    # -- Bookkeeping ------------------------------------------------------------------------

    @staticmethod
    def _key(trial) -> int | str:
        """The trial's number in the study; its Tune id for a trial that carries none (a bare Tune run)."""
        number = study_number(trial)
        return trial.trial_id if number is None else number

    @staticmethod
    def _name(key) -> str:
        return f"trial {key}"

    def _mark_running(self, key) -> None:
        if key not in self.outcome and key not in self.running:
            self.running[key] = self.clock()
            self.peak_running = max(self.peak_running, len(self.running))
        elif key in self.running:
            self.running[key] = self.clock()  # a result: the next epoch begins

    def _budget_over(self) -> bool:
        """Whether --time-budget ended the search: the deadline that keeps time for the retrain fired, or Tune's cap
        passed (its clock starts a moment after this one: a second of slack)."""
        if self.retrain is not None and self.retrain.fired:
            return True
        return self.deadline is not None and self.clock() >= self.deadline - 1.0

    def _finish(self, trial, error: bool) -> None:
        """How the trial ended: as the study recorded it (Tune calls this after the searcher told it)."""
        key = self._key(trial)
        if key in self.outcome:
            return
        if self.study is not None and isinstance(key, int):
            frozen = next((t for t in self.study.get_trials(deepcopy=False) if t.number == key), None)
            ended = label(frozen) if frozen is not None else None
            if ended is None:
                return  # the study keeps it RUNNING (an interruption): --resume continues it
        else:  # no study: the study's rule on Tune's last result
            state, _, _ = outcome(getattr(trial, "last_result", None), error, self.max_epochs)
            ended = {"COMPLETE": COMPLETE, "FAIL": FAILED}.get(state.name, BUDGET if self._budget_over() else PRUNED)
        result = getattr(trial, "last_result", None) or {}
        if ended == COMPLETE and (self.best is None or result.get(METRIC, -math.inf) > self.best[0]):
            self.best = (float(result[METRIC]), key)
        self._record(key, ended)

    def _record(self, key, ended: str) -> None:
        self.outcome[key] = ended
        self.running.pop(key, None)
        if self.tty:
            self._draw(force=True)
        else:
            self._say(self.trial_line(key))

    def _say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
        self._printed = self.clock()

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
